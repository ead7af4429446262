import type { FastifyError } from 'fastify';
import { ERRORS, LitebaseError, type ErrorCodeWithStatus, type WireErrorCode } from '../errors.js';

/*
 * The API's error shape (docs/API.md "Errors", docs/ERRORS.md): whatever is thrown becomes
 * `{ error: { code, message, ...details } }` with its status, and Retry-After where it has one.
 * Apart from app.ts so that routes which answer errors in their own envelope (Hrana) can use it.
 */

export interface ErrorBody {
  error: { code: WireErrorCode; message: string; [detail: string]: unknown };
}

/** An answer with one of our codes and the status the table gives it. */
export function answer(code: ErrorCodeWithStatus<number>, message: string): { status: number; body: ErrorBody } {
  return { status: ERRORS[code].status, body: { error: { code, message } } };
}

/** Turn anything thrown into the API's error shape; never leak a stack trace. */
export function toErrorResponse(error: unknown): { status: number; body: ErrorBody; retryAfter?: number } {
  if (error instanceof LitebaseError) {
    return {
      status: error.status,
      body: { error: { code: error.code, message: error.message, ...error.details } },
      ...(error.retryAfterSeconds !== undefined ? { retryAfter: error.retryAfterSeconds } : {}),
    };
  }
  const fastifyError = error as Partial<FastifyError>;
  if (fastifyError.validation) {
    return answer('INVALID_REQUEST', fastifyError.message ?? 'invalid request');
  }
  const byCode: Record<string, ErrorCodeWithStatus<number>> = {
    FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
    FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
    FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'INVALID_CONTENT_LENGTH',
    FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID_JSON',
    FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID_JSON',
    FST_ERR_BAD_URL: 'INVALID_URL',
    FST_ERR_MAX_PARAM_LENGTH: 'URL_TOO_LONG',
  };
  const known = fastifyError.code ? byCode[fastifyError.code] : undefined;
  if (known) return answer(known, fastifyError.message ?? known);
  if (error instanceof SyntaxError || (fastifyError.statusCode === 400 && fastifyError.message)) {
    return answer('INVALID_JSON', fastifyError.message ?? 'malformed body');
  }
  if (typeof fastifyError.statusCode === 'number' && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    // The framework's own 4xx keeps its status and its FST_ERR_* code (BAD_REQUEST without one).
    return {
      status: fastifyError.statusCode,
      body: {
        error: {
          code: (fastifyError.code as `FST_ERR_${string}` | undefined) ?? 'BAD_REQUEST',
          message: fastifyError.message ?? 'bad request',
        },
      },
    };
  }
  return answer('INTERNAL_ERROR', 'internal error; see the server log');
}

/** Broken HTTP framing (node's parser refused the bytes): answer in the API's error shape and close. */
export function answerClientError(error: Error & { code?: string }, socket: import('node:net').Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [reason, code, message]: [string, ErrorCodeWithStatus<number>, string] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? ['Request Header Fields Too Large', 'HEADERS_TOO_LARGE', 'the request headers are too large']
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? ['Request Timeout', 'REQUEST_TIMEOUT', 'the request did not arrive in time']
        : ['Bad Request', 'MALFORMED_REQUEST', 'the request is not valid HTTP/1.1'];
  const status = ERRORS[code].status;
  const body = JSON.stringify({ error: { code, message } });
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}
