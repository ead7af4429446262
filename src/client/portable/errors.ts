/**
 * An error answer from the server (`{"error":{"code","message",...}}`), or a failure on the way
 * there. Client-side failures have `status` 0 and one of these codes:
 * `CONNECTION_FAILED` (no node could be reached), `TIMEOUT` (no answer within `timeoutMs`),
 * `INVALID_RESPONSE` (the answer was not the API's JSON), `INVALID_VALUE` (a param cannot be
 * encoded, e.g. NaN), `INVALID_URL`, `INVALID_OPTIONS`, `SIGNING_UNAVAILABLE` (`sign` was asked
 * for but the runtime has no Web Crypto).
 */
export class LitebaseClientError extends Error {
  readonly code: string;
  /** The HTTP status, or 0 when no answer came from the server. */
  readonly status: number;
  /** Everything in the error body besides code and message, e.g. `statement` (its index). */
  readonly details: Record<string, unknown>;
  /** Seconds to wait before trying again, from `Retry-After` (sent with 503). */
  readonly retryAfter: number | undefined;

  constructor(
    code: string,
    message: string,
    options: { status?: number; details?: Record<string, unknown>; retryAfter?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LitebaseClientError';
    this.code = code;
    this.status = options.status ?? 0;
    this.details = options.details ?? {};
    this.retryAfter = options.retryAfter;
  }
}

/** An answer read whole. */
export interface RawResponse {
  status: number;
  body: unknown;
  text: string;
  contentType: string;
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function describeBody(response: RawResponse): string {
  const snippet = response.text.slice(0, 200).replace(/\s+/g, ' ').trim();
  return `HTTP ${response.status}${response.contentType ? ` (${response.contentType})` : ''}${snippet ? `: ${snippet}` : ''}`;
}

/** `Retry-After` in seconds: a number of seconds or an HTTP date. */
export function parseRetryAfter(header: string | null | undefined, now = Date.now()): number | undefined {
  if (header === undefined || header === null) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim());
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - now) / 1000));
}

export function errorFromResponse(response: RawResponse, retryAfterHeader: string | null | undefined): LitebaseClientError {
  const retryAfter = parseRetryAfter(retryAfterHeader);
  const error = isRecord(response.body) ? response.body.error : undefined;
  if (isRecord(error) && typeof error.code === 'string') {
    const { code, message, ...details } = error;
    return new LitebaseClientError(code, typeof message === 'string' ? message : code, {
      status: response.status,
      details,
      ...(retryAfter === undefined ? {} : { retryAfter }),
    });
  }
  // Not the API's error shape: a proxy, a load balancer, or not a Litebase server at all.
  return new LitebaseClientError(`HTTP_${response.status}`, `unexpected answer: ${describeBody(response)}`, {
    status: response.status,
    ...(retryAfter === undefined ? {} : { retryAfter }),
  });
}

/**
 * Codes of system errors raised while connecting: the request never left the client, so sending
 * it to another node cannot apply it twice. (Node's fetch keeps them in `cause.code`; browsers
 * say only "Failed to fetch", which is then treated as an unknown outcome.)
 */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET_CONNECT',
  'ConnectionRefused',
]);

/** The system error code in a fetch failure's cause chain, if any. */
function causeCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && typeof current === 'object' && current !== null; depth++) {
    if ('code' in current && typeof current.code === 'string') return current.code;
    current = 'cause' in current ? current.cause : undefined;
  }
  return undefined;
}

/** Transport failures after which the request certainly never reached the node. */
const notSent = new WeakSet<LitebaseClientError>();

/** Whether a failed request may have reached a node (and so may have been applied). */
export function mayHaveBeenSent(error: LitebaseClientError): boolean {
  return !notSent.has(error);
}

/** A fetch that threw, as TIMEOUT or CONNECTION_FAILED. */
export function transportError(error: unknown, method: string, url: string, timeoutMs: number): LitebaseClientError {
  if (error instanceof LitebaseClientError) return error;
  const name = error instanceof Error ? error.name : '';
  if (name === 'TimeoutError' || name === 'AbortError') {
    return new LitebaseClientError('TIMEOUT', `${method} ${url}: no answer within ${timeoutMs} ms`, { cause: error });
  }
  const code = causeCode(error instanceof Error ? error.cause : undefined);
  const cause = error instanceof Error ? error.cause : undefined;
  const reason = code ?? (cause instanceof Error ? cause.message : error instanceof Error ? error.message : String(error));
  const failure = new LitebaseClientError('CONNECTION_FAILED', `cannot reach ${url}: ${reason}`, { cause: error });
  if (code !== undefined && NOT_SENT_CODES.has(code)) notSent.add(failure);
  return failure;
}
