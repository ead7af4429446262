import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { LitebaseClient, type LitebaseClientOptions } from '../client/client.js';
import type { ErrorCodeIn } from '../error-codes.js';

/** Where a command writes. The real streams in `main`; tests may pass their own. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

export const processIo: CliIo = {
  out: (text) => void process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  err: (text) => void process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
};

/** A mistake in how the command was invoked (exit code 2), as opposed to a failure (exit code 1). */
export class CliUsageError extends Error {
  constructor(
    readonly code: ErrorCodeIn<'cli'>,
    message: string,
  ) {
    super(message);
    this.name = 'CliUsageError';
  }
}

export const DEFAULT_URL = 'http://127.0.0.1:8080';

export interface ConnectionOptions {
  url: string;
  key?: string;
  sign?: boolean;
  ca?: string;
}

/** `--url`, `--key`, `--sign` and `--ca`, shared by every command that talks to a server. */
export function withConnectionOptions(command: Command): Command {
  return command
    .addOption(new Option('--url <url>', 'URL of any Litebase node').env('LITEBASE_URL').default(DEFAULT_URL))
    .addOption(new Option('--key <key>', 'access key').env('LITEBASE_KEY'))
    .addOption(new Option('--sign', 'sign each request with the key instead of sending it (env LITEBASE_SIGN=1)'))
    .addOption(new Option('--ca <file>', 'PEM CA certificate to trust for https:// URLs').env('LITEBASE_CA'));
}

/**
 * A client for the connection flags. LITEBASE_SIGN is read here rather than by commander, which
 * would turn any value of a boolean flag's variable on, "0" and "false" included.
 */
export function connect(options: ConnectionOptions, extra: Pick<LitebaseClientOptions, 'timeoutMs' | 'fetch'> = {}): LitebaseClient {
  const sign = options.sign ?? /^(1|true|yes|on)$/i.test(process.env.LITEBASE_SIGN ?? '');
  let ca: Buffer | undefined;
  if (options.ca) {
    try {
      ca = readFileSync(options.ca);
    } catch (error) {
      throw new CliUsageError('CA_UNREADABLE', `cannot read the CA file ${options.ca}: ${(error as Error).message}`);
    }
  }
  return new LitebaseClient({
    url: options.url,
    ...(options.key ? { key: options.key } : {}),
    ...(sign ? { sign } : {}),
    ...(ca ? { ca } : {}),
    ...extra,
  });
}
