import { errorFromResponse, LitebaseClientError, transportError, type RawResponse } from './errors.js';
import { retryDelay, type RetryPolicy } from './retry.js';
import { signatureHeaders, type Subtle } from './signing.js';

export interface TransportOptions {
  /** Base URLs of the nodes, without a trailing slash, in order of preference. */
  nodes: string[];
  /** Sent as `Authorization: Bearer <key>` unless `sign` is set. */
  key: string | undefined;
  sign: { key: string; keyId: string | undefined; subtle: Subtle | undefined } | undefined;
  fetch: typeof fetch;
  timeoutMs: number;
  retry: RetryPolicy;
}

export interface SendOptions {
  body?: unknown;
  /** The Accept header; JSON by default. */
  accept?: string;
  /** Statuses whose body is a normal answer rather than an error (e.g. 503 from /readyz). */
  acceptStatuses?: number[];
  /** Sending it twice does no harm: retried even when a try's outcome is unknown. */
  idempotent?: boolean;
  /** Send to this node only, once (an interactive transaction lives on the node that opened it). */
  node?: string;
}

/** An answer whose body is still unread, and the node that sent it. */
export interface OpenAnswer {
  response: Response;
  node: string;
  url: string;
}

export interface Answer extends RawResponse {
  headers: Headers;
  node: string;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Sends requests to a list of nodes: to the node that answered last, moving on to the next one
 * when a node cannot be reached or answers 503, and waiting as `retryDelay` says. Every try is
 * signed afresh (its own date, its own node's URL).
 */
export class Transport {
  /** Index of the node requests go to first. */
  private current = 0;

  constructor(private readonly options: TransportOptions) {}

  get nodes(): readonly string[] {
    return this.options.nodes;
  }

  /** Send a request and answer with the response, its body unread; error answers are thrown. */
  async open(method: string, path: string, options: SendOptions = {}): Promise<OpenAnswer> {
    const pinned = options.node !== undefined;
    const attempts = pinned ? 1 : this.options.retry.attempts;
    const unreachable = new Set<string>();
    for (let attempt = 1; ; attempt++) {
      const index = this.current;
      const node = options.node ?? this.options.nodes[index] ?? '';
      const url = node + path;
      let failure: LitebaseClientError;
      try {
        const response = await this.fetchOnce(method, url, options);
        if (response.ok || options.acceptStatuses?.includes(response.status)) {
          if (!pinned) this.current = index;
          return { response, node, url };
        }
        failure = errorFromResponse(await this.readWhole(method, url, response), response.headers.get('retry-after'));
      } catch (error) {
        failure = transportError(error, method, url, this.options.timeoutMs);
        unreachable.add(node);
      }
      const delay = retryDelay(
        { error: failure, attempt, reachableNodes: this.options.nodes.length - unreachable.size, idempotent: options.idempotent === true },
        { ...this.options.retry, attempts },
      );
      if (delay === undefined) throw failure;
      // Another node next time, and for the requests after this one too.
      if (this.current === index) this.current = (index + 1) % this.options.nodes.length;
      if (delay > 0) await sleep(delay);
    }
  }

  /** Send a request and read its answer whole (JSON parsed when it is JSON). */
  async send(method: string, path: string, options: SendOptions = {}): Promise<Answer> {
    const { response, node, url } = await this.open(method, path, options);
    return { ...(await this.readWhole(method, url, response)), headers: response.headers, node };
  }

  private async fetchOnce(method: string, url: string, options: SendOptions): Promise<Response> {
    const headers: Record<string, string> = { accept: options.accept ?? 'application/json' };
    const { key, sign } = this.options;
    if (key !== undefined && sign === undefined) headers.authorization = `Bearer ${key}`;
    let payload: string | undefined;
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(options.body);
    }
    if (sign !== undefined) {
      // Signed over the URL as fetch sends it (normalized by the URL parser) and the exact body.
      Object.assign(
        headers,
        await signatureHeaders({
          key: sign.key,
          keyId: sign.keyId,
          method,
          url,
          body: payload,
          ...(sign.subtle ? { subtle: sign.subtle } : {}),
        }),
      );
    }
    const signal = this.options.timeoutMs > 0 ? AbortSignal.timeout(this.options.timeoutMs) : undefined;
    // Called detached: a browser's fetch throws "Illegal invocation" when `this` is another object.
    const fetchImpl = this.options.fetch;
    return fetchImpl(url, {
      method,
      headers,
      ...(payload === undefined ? {} : { body: payload }),
      ...(signal === undefined ? {} : { signal }),
    });
  }

  /** Read an answer whole; JSON is parsed, a body that says JSON but is not is INVALID_RESPONSE. */
  async readWhole(method: string, url: string, response: Response): Promise<RawResponse> {
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw transportError(error, method, url, this.options.timeoutMs);
    }
    const contentType = response.headers.get('content-type') ?? '';
    let body: unknown;
    if (text !== '' && /\bjson\b/i.test(contentType)) {
      try {
        body = JSON.parse(text);
      } catch (error) {
        throw new LitebaseClientError('INVALID_RESPONSE', `${method} ${url}: the answer is not valid JSON`, {
          status: response.status,
          cause: error,
        });
      }
    }
    return { status: response.status, body, text, contentType };
  }
}
