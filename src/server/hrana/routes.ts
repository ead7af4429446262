import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { PrimaryDatabase } from '../../engine/primary-database.js';
import type { Engine } from '../../node/node-databases.js';
import { LitebaseError } from '../../errors.js';
import { requirePermission, type AppContext, type ClusterView } from '../context.js';
import { toErrorResponse } from '../error-response.js';
import { forwardToPrimary } from '../forward.js';
import { DatabaseParams } from '../schemas.js';
import { cursorEntryJson, pipelineResponseJson } from './json.js';
import { parseCursorBody, parsePipelineBody, statementCount } from './parse.js';
import type { CursorRequestBody, PipelineRequestBody, StreamRequest } from './protocol.js';
import { NeedsPrimary, StreamSession } from './session.js';
import { BatonError, StreamTable, type HranaStream } from './streams.js';
import { HranaRequestError } from './values.js';

/**
 * Hrana over HTTP (docs/HRANA.md) per database, at the base URL /v1/databases/<db>/: the v2 and
 * v3 JSON pipelines, the v3 cursor and the version probes. Keys, permissions, statement guards and
 * limits are those of /v1 (the same engine calls); answers carry `x-litebase-position` and a
 * request's `x-litebase-min-position` is waited for, as `minPosition` on /v1 query.
 */

/** A stream without a request for this long is closed and its transaction rolled back. */
export const STREAM_IDLE_MS = 10_000;

/** The version probes answer without a key: libSQL clients probe before they authenticate. */
const PROBE = /^\/v1\/databases\/[^/]+\/v[23]\/?$/;
export const isHranaProbe = (path: string): boolean => PROBE.test(path);

const POSITION_HEADER = 'x-litebase-position';
const MIN_POSITION_HEADER = 'x-litebase-min-position';

/** Hrana's error body ({message, code}), with the API's `error` object beside it. */
function errorBody(code: string, message: string, details: Record<string, unknown> = {}): string {
  return JSON.stringify({ message, code, error: { code, message, ...details } });
}

/** The text is already JSON: a reply serializer that passes it on as it is. */
const asIs = (payload: unknown): string => payload as string;

/**
 * libSQL clients parse an error body only when the content type is exactly application/json.
 * fastify adds "; charset=utf-8" to a JSON string it sends, unless the reply has a serializer of
 * its own; a string (not bytes) then goes out in one write with the headers.
 */
function sendJson(reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply.status(status).header('content-type', 'application/json').serializer(asIs).send(body);
}

export function hranaRoutes(context: AppContext): FastifyPluginAsync {
  const { config, databases, cluster } = context;
  const maxStatements = config.limits.maxStatementsPerRequest;
  const forwardTimeoutMs = config.limits.waitTimeoutMs + 5000;
  const streams = new StreamTable(config.nodeId, STREAM_IDLE_MS, (stream) => void rollBack(stream));
  /**
   * Per database, the newest position a write this node forwarded reached: a Replica answers later
   * reads only once it has applied it, so a libSQL client that cannot send positions (its reads and
   * writes are separate streams) still reads its own writes through the node it talks to.
   */
  const forwardedUpTo = new Map<string, bigint>();

  async function forwarded(request: FastifyRequest, reply: FastifyReply, sent: Promise<FastifyReply>): Promise<FastifyReply> {
    const answered = await sent;
    const position = reply.getHeader(POSITION_HEADER);
    const database = (request.params as { db?: string }).db;
    if (typeof position === 'string' && /^\d+$/.test(position) && database !== undefined) {
      const reached = BigInt(position);
      if (reached > (forwardedUpTo.get(database) ?? 0n)) forwardedUpTo.set(database, reached);
    }
    return answered;
  }

  /** An idle or failed stream gives back what it holds: its write transaction is rolled back. */
  async function rollBack(stream: HranaStream): Promise<void> {
    const transaction = stream.transaction;
    stream.transaction = undefined;
    stream.closed = true;
    if (transaction?.kind !== 'write') return;
    const engine = await databases.get(stream.database).catch(() => undefined);
    if (engine instanceof PrimaryDatabase && engine.hasTransaction(transaction.id)) {
      await engine
        .rollbackTransaction(transaction.id)
        .catch((error: unknown) => context.logger.warn({ err: error }, 'rollback of an idle Hrana stream failed'));
    }
  }

  /** Forward the request to the node whose baton it carries (the stream lives there). */
  async function forwardToOwner(request: FastifyRequest, reply: FastifyReply, baton: string): Promise<FastifyReply> {
    const owner = streams.nodeOf(baton);
    if (owner === undefined || owner === config.nodeId) throw new BatonError('BATON_INVALID', 'the baton is not valid');
    // Forwarded once already (a moved stream's signed request keeps the old baton): no second hop.
    if (request.headers['x-litebase-forwarded-by'] !== undefined) {
      throw new BatonError('BATON_INVALID', `the baton names a stream on node ${owner}, and this request was already forwarded once`);
    }
    const address = (await cluster.member.nodes()).find((node) => node.nodeId === owner)?.address;
    if (address === undefined)
      throw new BatonError('BATON_INVALID', `the baton's stream lived on node ${owner}, which is not in the cluster now`);
    const toOwner: ClusterView = {
      nodeId: cluster.nodeId,
      role: () => cluster.role(),
      primaryAddress: () => address,
      member: cluster.member,
      ...(cluster.fetch ? { fetch: cluster.fetch } : {}),
    };
    return forwarded(request, reply, forwardToPrimary(request, reply, toOwner, forwardTimeoutMs));
  }

  /**
   * A Replica met a request that needs the Primary. It ran only reads, so the whole request goes
   * to the Primary; a stream the Replica kept moves there (the Primary opens it anew: no baton,
   * and SQL texts stored here written out where the request uses them).
   */
  function forwardMoved(request: FastifyRequest, reply: FastifyReply, stream: HranaStream, fresh: boolean): Promise<FastifyReply> {
    stream.closed = true;
    if (!fresh) {
      const body = request.body as { baton?: unknown; requests?: StreamRequest[]; batch?: unknown };
      body.baton = null;
      const inline = (stmt: { sql?: string | null; sql_id?: number | null }): void => {
        if (typeof stmt.sql_id === 'number' && stream.sqls.has(stmt.sql_id)) {
          stmt.sql = stream.sqls.get(stmt.sql_id) ?? null;
          delete stmt.sql_id;
        }
      };
      const inlineBatch = (batch: { steps: Array<{ stmt: { sql?: string | null; sql_id?: number | null } }> }): void =>
        batch.steps.forEach((step) => inline(step.stmt));
      for (const entry of body.requests ?? []) {
        if (entry.type === 'execute') inline(entry.stmt);
        else if (entry.type === 'batch') inlineBatch(entry.batch);
        else if (entry.type === 'sequence' || entry.type === 'describe') inline(entry);
      }
      if (body.batch) inlineBatch(body.batch as CursorRequestBody['batch']);
    }
    return forwarded(request, reply, forwardToPrimary(request, reply, cluster, forwardTimeoutMs));
  }

  /** Everything a stream request needs: the engine (after the wanted position), the stream, a session. */
  async function start(
    request: FastifyRequest,
    name: string,
    baton: string | null,
  ): Promise<{ engine: Engine; stream: HranaStream; session: StreamSession }> {
    const keyId = request.principal?.keyId ?? '';
    const engine = await databases.get(name);
    const minPosition = request.headers[MIN_POSITION_HEADER];
    if (minPosition !== undefined) {
      if (typeof minPosition !== 'string' || !/^\d{1,20}$/.test(minPosition)) {
        throw new LitebaseError('INVALID_REQUEST', `${MIN_POSITION_HEADER} must be a decimal position`, { status: 400 });
      }
      await engine.waitForPosition(BigInt(minPosition));
    }
    const ownWrites = forwardedUpTo.get(name);
    if (ownWrites !== undefined && !(engine instanceof PrimaryDatabase) && engine.position < ownWrites)
      await engine.waitForPosition(ownWrites);
    const stream = baton === null ? streams.open(name, keyId) : streams.take(baton, name, keyId);
    const access = {
      write: request.principal?.can('write', name) ?? false,
      admin: request.principal?.can('admin', name) ?? false,
      exact: true,
    };
    return { engine, stream, session: new StreamSession(engine, stream, access, config.limits.maxTransactionTimeoutMs) };
  }

  /** The request is answered: the stream waits for its next request under a new baton, unless it was closed. */
  function finish(reply: FastifyReply, stream: HranaStream, session: StreamSession): string | null {
    void reply.header(POSITION_HEADER, session.position.toString());
    return stream.closed ? null : streams.park(stream);
  }

  /** The request failed as a whole: the stream is no longer valid (the spec), so it gives back what it holds. */
  async function fail(stream: HranaStream, error: unknown): Promise<never> {
    await rollBack(stream);
    throw error;
  }

  function checkLimits(requests: readonly StreamRequest[]): void {
    const count = statementCount(requests);
    if (count > maxStatements) {
      throw new LitebaseError('TOO_MANY_STATEMENTS', `a request may hold at most ${maxStatements} statements`, {
        status: 413,
        details: { maxStatements },
      });
    }
  }

  return async (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();

    // Errors of a whole request in Hrana's shape, exactly application/json.
    app.setErrorHandler((error, request, reply) => {
      if (error instanceof BatonError || error instanceof HranaRequestError) {
        return sendJson(reply, 400, errorBody(error.code, error.message));
      }
      const { status, body, retryAfter } = toErrorResponse(error);
      if (status === 503) request.log.warn({ code: body.error.code, url: request.url }, body.error.message);
      else if (status >= 500) request.log.error({ err: error, url: request.url }, 'Hrana request failed');
      if (retryAfter !== undefined) void reply.header('retry-after', String(retryAfter));
      const { code, message, ...details } = body.error;
      return sendJson(reply, status, errorBody(code, message, details));
    });
    app.addHook('onClose', async () => streams.closeAll());

    for (const version of ['v2', 'v3']) {
      app.get(`/v1/databases/:db/${version}`, { schema: { params: DatabaseParams } }, async (_request, reply) =>
        sendJson(reply, 200, '{}'),
      );
    }

    const pipeline = async (request: FastifyRequest<{ Params: { db: string } }>, reply: FastifyReply): Promise<FastifyReply> => {
      requirePermission(request, 'read', request.params.db);
      const body: PipelineRequestBody = parsePipelineBody(request.body);
      checkLimits(body.requests);
      if (body.baton !== null && !streams.isLocal(body.baton)) return forwardToOwner(request, reply, body.baton);
      const { stream, session } = await start(request, request.params.db, body.baton);
      let results;
      try {
        results = await session.runPipeline(body.requests);
      } catch (error) {
        if (error instanceof NeedsPrimary) return forwardMoved(request, reply, stream, body.baton === null);
        return fail(stream, error);
      }
      const baton = finish(reply, stream, session);
      return sendJson(reply, 200, pipelineResponseJson({ baton, base_url: null, results }));
    };
    app.post('/v1/databases/:db/v2/pipeline', { schema: { params: DatabaseParams } }, pipeline);
    app.post('/v1/databases/:db/v3/pipeline', { schema: { params: DatabaseParams } }, pipeline);

    app.post('/v1/databases/:db/v3/cursor', { schema: { params: DatabaseParams } }, async (request, reply) => {
      requirePermission(request, 'read', request.params.db);
      const body = parseCursorBody(request.body);
      checkLimits([{ type: 'batch', batch: body.batch }]);
      if (body.baton !== null && !streams.isLocal(body.baton)) return forwardToOwner(request, reply, body.baton);
      const { stream, session } = await start(request, request.params.db, body.baton);
      let entries;
      try {
        entries = await session.runCursor(body.batch);
      } catch (error) {
        if (error instanceof NeedsPrimary) return forwardMoved(request, reply, stream, body.baton === null);
        return fail(stream, error);
      }
      const baton = finish(reply, stream, session);
      // One JSON structure per line: the cursor's baton first, then its entries.
      const lines = [JSON.stringify({ baton, base_url: null }), ...entries.map(cursorEntryJson)];
      return sendJson(reply, 200, `${lines.join('\n')}\n`);
    });

    // Without the trailing slash in the client's URL, libSQL clients resolve "v2/pipeline" one
    // level up: tell the user what to change.
    const needsSlash = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
      const message = `no database in this URL: a libSQL client's URL must end with a slash, as in http://HOST:PORT/v1/databases/<db>/ (got ${request.url.split('?')[0] ?? ''} without one)`;
      return sendJson(reply, 404, errorBody('HRANA_URL_NEEDS_SLASH', message));
    };
    for (const path of ['v2/pipeline', 'v3/pipeline', 'v3/cursor']) app.post(`/v1/databases/${path}`, needsSlash);
  };
}
