import { LitebaseClientError, mayHaveBeenSent } from './errors.js';

export interface RetryOptions {
  /** How many times a request is tried in all, the first try included (default 5; 1 turns retrying off). */
  attempts?: number;
  /** The longest wait before one retry, in ms (default 10 000): a longer Retry-After is cut to it. */
  maxDelayMs?: number;
}

export interface RetryPolicy {
  attempts: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, maxDelayMs: 10_000 };

/** The wait when a 503 says nothing. */
const DEFAULT_DELAY_MS = 1_000;

/**
 * 503 codes after which a write may or may not have been applied (the Primary changed while it
 * had the request, or the log failed while persisting it): sent again only when the request is
 * idempotent. Every other 503 means the node refused the request before running it.
 */
export const OUTCOME_UNKNOWN_CODES: ReadonlySet<string> = new Set([
  'PRIMARY_CHANGED',
  'PRIMARY_NO_ANSWER',
  'LOG_UNAVAILABLE',
  'WAL_READ_FAILED',
]);

export function retryPolicy(options: RetryOptions | false | undefined): RetryPolicy {
  if (options === false) return { ...DEFAULT_RETRY, attempts: 1 };
  const attempts = options?.attempts ?? DEFAULT_RETRY.attempts;
  const maxDelayMs = options?.maxDelayMs ?? DEFAULT_RETRY.maxDelayMs;
  if (!Number.isInteger(attempts) || attempts < 1 || !(maxDelayMs >= 0)) {
    throw new LitebaseClientError(
      'INVALID_OPTIONS',
      `retry: attempts must be an integer >= 1 and maxDelayMs >= 0, got ${JSON.stringify(options)}`,
    );
  }
  return { attempts, maxDelayMs };
}

export interface FailedTry {
  error: LitebaseClientError;
  /** 1 for the first try. */
  attempt: number;
  /** How many nodes this request has not yet failed to reach. */
  reachableNodes: number;
  /** Whether sending the request twice does no harm. */
  idempotent: boolean;
}

/**
 * Whether to try again after a failed try, and after how many ms (undefined: give up). A 503 is
 * retried after its Retry-After, on the next node; a node that could not be reached is left for
 * the next one at once, until every node failed to connect. A failure whose outcome is
 * unknown (a timeout, a connection cut after sending, PRIMARY_CHANGED) is retried only for
 * idempotent requests, since the first try may have been applied.
 */
export function retryDelay(failure: FailedTry, policy: RetryPolicy): number | undefined {
  const { error, attempt, reachableNodes, idempotent } = failure;
  if (attempt >= policy.attempts) return undefined;
  if (error.status === 503) {
    if (OUTCOME_UNKNOWN_CODES.has(error.code) && !idempotent) return undefined;
    return Math.min((error.retryAfter ?? DEFAULT_DELAY_MS / 1000) * 1000, policy.maxDelayMs);
  }
  if (error.status === 0 && (error.code === 'CONNECTION_FAILED' || error.code === 'TIMEOUT')) {
    if (mayHaveBeenSent(error) && !idempotent) return undefined;
    // The next node at once; once every node failed to connect, give up: a node that is down
    // stays down for longer than a caller should be kept waiting.
    return reachableNodes > 0 ? 0 : undefined;
  }
  return undefined;
}
