import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController } from 'fastify';
import { ROOT_PRINCIPAL } from './access-keys.js';
import { secretMatcher } from './root-key.js';
import { RequestSigning } from './request-signing.js';
import { parseJsonBody, type JsonTextParser } from './json-body.js';
import { BodyBudget, LARGE_BODY_BYTES } from './body-budget.js';
import { SIGNATURE_HEADERS } from '../client/signing.js';
import { keyRoutes } from './routes/keys.js';
import { requirePermission, type App, type AppContext } from './context.js';
import { keySelfRoutes } from './routes/key-self.js';
import { consoleRoutes, isConsolePath } from './console.js';
import { registerOperationalMetrics } from './operational-metrics.js';
import { hranaRoutes, isHranaProbe } from './hrana/routes.js';
import { ERRORS } from '../errors.js';
import { answer, answerClientError, toErrorResponse } from './error-response.js';
import { archiveRoutes } from './routes/archive.js';
import { backupRoutes } from './routes/backup.js';
import { clusterRoutes } from './routes/cluster.js';
import { databaseRoutes } from './routes/databases.js';
import { queryRoutes } from './routes/query.js';
import { statementRoutes } from './routes/statements.js';

/** Routes that answer without a key: liveness only, it reveals nothing. */
const PUBLIC_ROUTES = new Set(['/healthz']);

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
    // parameter) and broken HTTP framing get the API's error shape too (test/integration/server/hostile-input).
    frameworkErrors: (error, _request, reply) => {
      const { status, body } = toErrorResponse(error);
      reply.raw.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(body));
    },
    clientErrorHandler: answerClientError,
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as App;

  // JSON bodies are read as bytes; BLOB params are decoded from them, the rest parsed by fastify's
  // own JSON parser (json-body.ts: a 10 MiB body of BLOBs leaves no large strings behind).
  const parseJsonText = app.getDefaultJsonParser('error', 'error') as unknown as JsonTextParser;
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) =>
    parseJsonBody(body as Buffer, parseJsonText, done),
  );

  // Node answers an Expect header it does not support with a bare 417: give it the API's shape.
  app.server.on('checkExpectation', (_request: import('node:http').IncomingMessage, response: import('node:http').ServerResponse) => {
    const body = JSON.stringify(answer('EXPECTATION_FAILED', 'the only Expect supported is 100-continue').body);
    response
      .writeHead(ERRORS.EXPECTATION_FAILED.status, { 'content-type': 'application/json; charset=utf-8', connection: 'close' })
      .end(body);
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
    reply
      .status(ERRORS.ROUTE_NOT_FOUND.status)
      .send(answer('ROUTE_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`).body),
  );

  app.decorateRequest('principal', null);
  // Before any other preParsing hook reads a body (request signing does): a large body is read only
  // once it fits in the budget (body-budget.ts). Callback style: every request passes here.
  const bodies = new BodyBudget(config.limits.bodyMemoryBytes);
  app.addHook('preParsing', (request, reply, payload, done) => {
    const length = Number(request.headers['content-length']);
    if (!(length >= LARGE_BODY_BYTES && length <= config.limits.bodyLimitBytes) || bodies.limit === 0) return done(null, payload);
    const ticket = bodies.request(length);
    reply.raw.once('close', ticket.release);
    void ticket.admitted.then(() => done(null, payload));
  });
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
    const route = request.url.split('?')[0] ?? '';
    if (PUBLIC_ROUTES.has(route) || isConsolePath(request.url) || isHranaProbe(route)) return;
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
      return reply
        .status(ERRORS.INVALID_KEY.status)
        .send(answer('INVALID_KEY', 'the access key is not valid (unknown, wrong or revoked)').body);
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
  app.register(statementRoutes(context));
  app.register(clusterRoutes(context));
  app.register(archiveRoutes(context));
  app.register(backupRoutes(context));
  app.register(keyRoutes(context));
  app.register(keySelfRoutes(context));
  app.register(consoleRoutes());
  registerOperationalMetrics(app, context);
  app.register(hranaRoutes(context));
  return app;
}
