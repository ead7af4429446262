import { ERRORS, isErrorCode, type ErrorCode, type ErrorCodeWithStatus, type ErrorSpec, type SqliteErrorCode } from './error-codes.js';

export * from './error-codes.js';

/**
 * Every error a user can see carries a stable `code` from the table in error-codes.ts (or SQLite's
 * own code, passed through). The HTTP layer maps `status` straight to the response; other callers
 * (CLI, engine) switch on `code`, never on message text.
 */
export class LitebaseError extends Error {
  readonly code: ErrorCode | SqliteErrorCode;
  readonly status: number;
  readonly details: Record<string, unknown>;
  /** Seconds a client should wait before retrying (sent as Retry-After with 503). */
  readonly retryAfterSeconds: number | undefined;

  /**
   * `status` and `retryAfterSeconds` default to the code's row in the table (500 for a code no
   * server answers with, and for SQLite's codes, whose status the caller gives); a site passes them
   * only where it must differ (the table's meaning says so).
   */
  constructor(
    code: ErrorCode | SqliteErrorCode,
    message: string,
    options: {
      status?: number;
      details?: Record<string, unknown>;
      cause?: unknown;
      retryAfterSeconds?: number;
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LitebaseError';
    const spec: ErrorSpec | undefined = isErrorCode(code) ? ERRORS[code] : undefined;
    this.code = code;
    this.status = options.status ?? spec?.status ?? 500;
    this.details = options.details ?? {};
    this.retryAfterSeconds = options.retryAfterSeconds ?? spec?.retryAfterSeconds;
  }
}

// The helpers take only codes whose row has their status, so a helper never contradicts the table.

export const badRequest = (code: ErrorCodeWithStatus<400>, message: string, details?: Record<string, unknown>): LitebaseError =>
  new LitebaseError(code, message, details ? { details } : {});

export const notFound = (code: ErrorCodeWithStatus<404>, message: string): LitebaseError => new LitebaseError(code, message);

export const conflict = (code: ErrorCodeWithStatus<409>, message: string): LitebaseError => new LitebaseError(code, message);

/** A 503 with the row's Retry-After. */
export const unavailable = (code: ErrorCodeWithStatus<503>, message: string, cause?: unknown): LitebaseError =>
  new LitebaseError(code, message, { cause });

/** Node's system errors (ENOSPC, EEXIST, ...) carry a string `code`. */
export function systemErrorCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
