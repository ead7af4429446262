import { readFileSync } from 'node:fs';
import type { LitebaseClient } from '../../client/client.js';
import { fetchTrustingCa } from '../../client/tls.js';
import { CliUsageError, connect, type ConnectionOptions } from '../common.js';

/**
 * Ctrl-C in the shell stops waiting for the answer to the running statement: every request the
 * client sends carries the signal of the current AbortController, and `cancel()` aborts it (and
 * arms a fresh one for the requests after). The client itself stays as it is: the cancelling is a
 * `fetch` wrapped around the one it would use.
 */
export class RequestCanceller {
  private controller = new AbortController();

  /** The signal requests started now carry; after a failure, `aborted` tells it was Ctrl-C. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  cancel(): void {
    this.controller.abort(new Error('cancelled'));
    this.controller = new AbortController();
  }
}

/**
 * A client for the connection flags whose requests `canceller` can abort. No per-request time
 * limit: the server's statement time limit ends a runaway statement, and Ctrl-C ends the wait.
 */
export function connectCancellable(options: ConnectionOptions, canceller: RequestCanceller): LitebaseClient {
  let base: typeof fetch = globalThis.fetch;
  if (options.ca) {
    let ca: Buffer;
    try {
      ca = readFileSync(options.ca);
    } catch (error) {
      throw new CliUsageError('CA_UNREADABLE', `cannot read the CA file ${options.ca}: ${(error as Error).message}`);
    }
    base = fetchTrustingCa(ca);
  }
  const cancellable = ((input: Parameters<typeof fetch>[0], init: RequestInit = {}) => {
    const signal = init.signal ? AbortSignal.any([init.signal, canceller.signal]) : canceller.signal;
    return base(input, { ...init, signal });
  }) as typeof fetch;
  // The CA is in `base` already; the client ignores `ca` when it is given a fetch.
  return connect({ ...options, ca: undefined }, { fetch: cancellable, timeoutMs: 0 });
}
