import type { FastifyError } from 'fastify';
import { LitebaseError } from '../errors.js';

/*
 * The API's error shape (docs/API.md "Errors", docs/ERRORS.md): whatever is thrown becomes
 * `{ error: { code, message, ...details } }` with its status, and Retry-After where it has one.
 * Apart from app.ts so that routes which answer errors in their own envelope (Hrana) can use it.
 */

export interface ErrorBody {
  error: { code: string; message: string; [detail: string]: unknown };
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
    return { status: 400, body: { error: { code: 'INVALID_REQUEST', message: fastifyError.message ?? 'invalid request' } } };
  }
  const byCode: Record<string, [number, string]> = {
    FST_ERR_CTP_BODY_TOO_LARGE: [413, 'BODY_TOO_LARGE'],
    FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'UNSUPPORTED_MEDIA_TYPE'],
    FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'INVALID_CONTENT_LENGTH'],
    FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'INVALID_JSON'],
    FST_ERR_CTP_INVALID_JSON_BODY: [400, 'INVALID_JSON'],
    FST_ERR_BAD_URL: [400, 'INVALID_URL'],
    FST_ERR_MAX_PARAM_LENGTH: [414, 'URL_TOO_LONG'],
  };
  const known = fastifyError.code ? byCode[fastifyError.code] : undefined;
  if (known) return { status: known[0], body: { error: { code: known[1], message: fastifyError.message ?? known[1] } } };
  if (error instanceof SyntaxError || (fastifyError.statusCode === 400 && fastifyError.message)) {
    return { status: 400, body: { error: { code: 'INVALID_JSON', message: fastifyError.message ?? 'malformed body' } } };
  }
  if (typeof fastifyError.statusCode === 'number' && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    return {
      status: fastifyError.statusCode,
      body: { error: { code: fastifyError.code ?? 'BAD_REQUEST', message: fastifyError.message ?? 'bad request' } },
    };
  }
  return { status: 500, body: { error: { code: 'INTERNAL_ERROR', message: 'internal error; see the server log' } } };
}

/** Broken HTTP framing (node's parser refused the bytes): answer in the API's error shape and close. */
export function answerClientError(error: Error & { code?: string }, socket: import('node:net').Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, reason, code, message] =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'HEADERS_TOO_LARGE', 'the request headers are too large']
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'REQUEST_TIMEOUT', 'the request did not arrive in time']
        : [400, 'Bad Request', 'MALFORMED_REQUEST', 'the request is not valid HTTP/1.1'];
  const body = JSON.stringify({ error: { code, message } });
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy(error);
}

