/**
 * Every error a user can see carries a stable `code`. The HTTP layer maps `status` straight to the
 * response; other callers (CLI, engine) switch on `code`, never on message text.
 */
export class LitebaseError extends Error {
  readonly code: string;
  readonly status: number;
  readonly details: Record<string, unknown>;
  /** Seconds a client should wait before retrying (sent as Retry-After with 503). */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: string,
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
    this.code = code;
    this.status = options.status ?? 500;
    this.details = options.details ?? {};
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export const badRequest = (code: string, message: string, details?: Record<string, unknown>): LitebaseError =>
  new LitebaseError(code, message, { status: 400, ...(details ? { details } : {}) });

export const notFound = (code: string, message: string): LitebaseError =>
  new LitebaseError(code, message, { status: 404 });

export const conflict = (code: string, message: string): LitebaseError =>
  new LitebaseError(code, message, { status: 409 });

export const unavailable = (code: string, message: string, cause?: unknown): LitebaseError =>
  new LitebaseError(code, message, { status: 503, retryAfterSeconds: 1, cause });

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
