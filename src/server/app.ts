import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyError, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { ERRORS, LitebaseError, type ErrorCodeWithStatus, type WireErrorCode } from '../errors.js';
import { ROOT_PRINCIPAL } from './access-keys.js';
import { secretMatcher } from './root-key.js';
import { RequestSigning } from './request-signing.js';
import { SIGNATURE_HEADERS } from '../client/signing.js';
import { keyRoutes } from './routes/keys.js';
import { requirePermission, type App, type AppContext } from './context.js';

import { archiveRoutes } from './routes/archive.js';
import { backupRoutes } from './routes/backup.js';
import { clusterRoutes } from './routes/cluster.js';
import { databaseRoutes } from './routes/databases.js';
import { queryRoutes } from './routes/query.js';

/** Routes that answer without a key: liveness only, it reveals nothing. */
const PUBLIC_ROUTES = new Set(['/healthz']);

interface ErrorBody {
  error: { code: WireErrorCode; message: string; [detail: string]: unknown };
}

/** An answer with one of our codes and the status the table gives it. */
function answer(code: ErrorCodeWithStatus<number>, message: string): { status: number; body: ErrorBody } {
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
      body: { error: { code: (fastifyError.code as `FST_ERR_${string}` | undefined) ?? 'BAD_REQUEST', message: fastifyError.message ?? 'bad request' } },
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
    socket.write(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy(error);
}

export function buildApp(context: AppContext): App {
  const { config, metrics, rootKey } = context;
  const isRootKey = secretMatcher(rootKey);
  const app = Fastify({
    loggerInstance: context.logger,
    bodyLimit: config.limits.bodyLimitBytes,
    // Per-request log lines would cost more than the request at benchmark rates; errors are logged.
    logController: new LogController({ disableRequestLogging: true }),
    // Values are never coerced: "1" stays a string, so a bad body is refused, not reinterpreted.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    return503OnClosing: true,
    ...(context.tls ? { https: { cert: context.tls.cert, key: context.tls.key } } : {}),
    // No per-request child logger: errors are logged with their URL, and a child per request
    // costs about a microsecond on every query.
    childLoggerFactory: (logger) => logger,
    // What fastify answers before any route or hook runs (a malformed %-escape, an overlong path
    // parameter) and broken HTTP framing get the API's error shape too (test/integration/hostile-input).
    frameworkErrors: (error, _request, reply) => {
      const { status, body } = toErrorResponse(error);
      reply.raw.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
    },
    clientErrorHandler: answerClientError,
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as App;

  // Node answers an Expect header it does not support with a bare 417: give it the API's shape.
  app.server.on('checkExpectation', (_request: import('node:http').IncomingMessage, response: import('node:http').ServerResponse) => {
    const body = JSON.stringify(answer('EXPECTATION_FAILED', 'the only Expect supported is 100-continue').body);
    response.writeHead(ERRORS.EXPECTATION_FAILED.status, { 'content-type': 'application/json; charset=utf-8', connection: 'close' }).end(body);
  });

  app.setErrorHandler((error, request, reply) => {
    const { status, body, retryAfter } = toErrorResponse(error);
    // 503s are expected while the cluster elects or a log is unavailable: a line, not a stack.
    if (status === 503) request.log.warn({ code: body.error.code, url: request.url }, body.error.message);
    else if (status >= 500) request.log.error({ err: error, url: request.url }, 'request failed');
    if (retryAfter !== undefined) void reply.header('retry-after', String(retryAfter));
    return reply.status(status).send(body);
  });

  app.setNotFoundHandler((request, reply) =>
    reply.status(ERRORS.ROUTE_NOT_FOUND.status).send(answer('ROUTE_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`).body),
  );

  app.decorateRequest('principal', null);
  const signing = RequestSigning.register(app, {
    keys: context.keys,
    rootKey,
    settings: config.signing,
    bodyLimitBytes: config.limits.bodyLimitBytes,
  });
  app.addHook('onRequest', async (request, reply) => {
    if (config.authDisabled) {
      request.principal = ROOT_PRINCIPAL;
      return;
    }
    if (PUBLIC_ROUTES.has(request.url.split('?')[0] ?? '')) return;
    const header = request.headers.authorization;
    const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match?.[1]) {
      // No bearer key: a signed request (docs/SECURITY.md) is checked by the signing hooks.
      if (header === undefined && request.headers[SIGNATURE_HEADERS.signature] !== undefined) return signing.begin(request);
      return reply
        .status(ERRORS.UNAUTHENTICATED.status)
        .header('www-authenticate', 'Bearer')
        .send(answer('UNAUTHENTICATED', 'send an access key as "Authorization: Bearer <key>"').body);
    }
    const principal = isRootKey(match[1]) ? ROOT_PRINCIPAL : await context.keys.authenticate(match[1]);
    if (!principal) {
      return reply.status(ERRORS.INVALID_KEY.status).send(answer('INVALID_KEY', 'the access key is not valid (unknown, wrong or revoked)').body);
    }
    request.principal = principal;
  });

  // One counter child per (route, status), looked up by a string key: prom-client's own label
  // lookup costs more than the rest of the hook.
  const requestCounters = new Map<string, { inc(): void }>();
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const key = `${route} ${reply.statusCode}`;
    let counter = requestCounters.get(key);
    if (!counter) {
      counter = metrics.httpRequests.labels(route, String(reply.statusCode));
      requestCounters.set(key, counter);
    }
    counter.inc();
  });

  app.get('/healthz', async () => ({ status: 'ok' }));

  // An authenticated no-op: checks a key and the network path without touching a database. The
  // benchmarks use it as the HTTP ceiling for requests shaped like queries.
  app.post('/v1/ping', async () => ({ ok: true, node: config.nodeId }));

  app.get('/readyz', async (_request, reply) => {
    const ready = await context.databases.allReady();
    return reply.status(ready ? 200 : 503).send({ status: ready ? 'ready' : 'recovering' });
  });

  app.get('/metrics', async (request, reply) => {
    requirePermission(request, 'cluster');
    return reply.header('content-type', metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  app.register(databaseRoutes(context));
  app.register(queryRoutes(context));
  app.register(clusterRoutes(context));
  app.register(archiveRoutes(context));
  app.register(backupRoutes(context));
  app.register(keyRoutes(context));
  return app;
}
