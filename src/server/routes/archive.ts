import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { PrimaryDatabase } from '../../engine/primary-database.js';
import { badRequest, unavailable } from '../../errors.js';
import type { RestoreTarget } from '../../restore/planner.js';
import { RestoreService } from '../../restore/restore-service.js';
import { requirePermission, type AppContext } from '../context.js';
import { forwardToPrimary } from '../forward.js';

/**
 * Compaction, restore points and point-in-time restore (docs/API.md "Compaction and restore"; README
 * "Backups, compaction and point-in-time restore"):
 *
 *   POST /v1/databases/:db/compact          checkpoint + archive now (Primary); the report of what it did
 *   GET  /v1/databases/:db/restore-points   earliest / latest restorable point, checkpoints (any node)
 *   POST /v1/databases/:db/restore          {timestamp|position, target?, databaseId?, wait?} -> 202 {restore} (Primary)
 *   GET  /v1/databases/:db/restores/:id     a restore's progress and result (Primary)
 *   GET  /v1/databases/:db/restores         the restores the Primary remembers
 *
 * Restore points and restores also take a name the catalog does not have (dropped, or the shared
 * folder lost) when the object store holds an archive of it: they read that archive alone (the
 * newest database id under the name, or `databaseId`), and the restore may target the name itself.
 */

const DatabaseParams = Type.Object({ db: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' }) });
const RestoreParams = Type.Object({
  db: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' }),
  id: Type.String({ pattern: '^[0-9a-f-]{36}$' }),
});
const DATABASE_ID_PATTERN = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
const RestorePointsQuery = Type.Object(
  { databaseId: Type.Optional(Type.String({ pattern: DATABASE_ID_PATTERN })) },
  { additionalProperties: false },
);
const RestoreBody = Type.Object(
  {
    timestamp: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    position: Type.Optional(Type.String({ pattern: '^[0-9]{1,20}$' })),
    target: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    /** Which archived database of that name (see GET .../restore-points): default the catalog's, else the newest archived. */
    databaseId: Type.Optional(Type.String({ pattern: DATABASE_ID_PATTERN })),
    wait: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

/** Compactions and restores may take as long as reading the whole database: forwarding waits. */
const LONG_FORWARD_MS = 60 * 60 * 1000;
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

export function archiveRoutes(context: AppContext): FastifyPluginAsync {
  const { databases, config } = context;
  const restores = new RestoreService({
    databases,
    shared: context.shared,
    local: context.local,
    store: context.objectStore,
    logger: context.logger,
    retentionMs: config.compaction.retentionMs,
    term: () => context.cluster.member.term,
    ...(config.compaction.rangeBytes === undefined ? {} : { rangeBytes: config.compaction.rangeBytes }),
  });
  const forward = (
    request: Parameters<typeof forwardToPrimary>[0],
    reply: Parameters<typeof forwardToPrimary>[1],
    timeoutMs = config.limits.waitTimeoutMs + 5000,
  ) => forwardToPrimary(request, reply, context.cluster, timeoutMs);

  return async (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();

    app.post('/v1/databases/:db/compact', { schema: { params: DatabaseParams } }, async (request, reply) => {
      requirePermission(request, 'admin', request.params.db);
      if (databases.role !== 'primary') return forward(request, reply, LONG_FORWARD_MS);
      const database = await databases.get(request.params.db);
      if (!(database instanceof PrimaryDatabase)) return forward(request, reply, LONG_FORWARD_MS);
      const compactor = database.follower;
      if (!compactor) throw unavailable('COMPACTOR_UNAVAILABLE', `database ${database.name} has no compactor on this node`);
      return { compaction: await compactor.compact('manual') };
    });

    app.get(
      '/v1/databases/:db/restore-points',
      { schema: { params: DatabaseParams, querystring: RestorePointsQuery } },
      async (request) => {
        requirePermission(request, 'restore', request.params.db);
        return restores.restorePoints(request.params.db, request.query.databaseId);
      },
    );

    app.post('/v1/databases/:db/restore', { schema: { params: DatabaseParams, body: RestoreBody } }, async (request, reply) => {
      const { timestamp, position, target, databaseId, wait } = request.body;
      requirePermission(request, 'restore', request.params.db);
      if (target !== undefined) requirePermission(request, 'restore', target);
      const restoreTarget = parseTarget(timestamp, position);
      if (databases.role !== 'primary') return forward(request, reply, wait ? LONG_FORWARD_MS : undefined);
      const { view, done } = await restores.start(request.params.db, restoreTarget, target, databaseId === undefined ? {} : { databaseId });
      if (!wait) {
        done.catch(() => undefined); // reported through the job
        return reply.status(202).header('location', `/v1/databases/${request.params.db}/restores/${view.id}`).send({ restore: view });
      }
      await done;
      return reply.status(200).send({ restore: view });
    });

    app.get('/v1/databases/:db/restores/:id', { schema: { params: RestoreParams } }, async (request, reply) => {
      requirePermission(request, 'restore', request.params.db);
      if (databases.role !== 'primary') return forward(request, reply);
      return { restore: restores.job(request.params.db, request.params.id) };
    });

    app.get('/v1/databases/:db/restores', { schema: { params: DatabaseParams } }, async (request, reply) => {
      requirePermission(request, 'restore', request.params.db);
      if (databases.role !== 'primary') return forward(request, reply);
      return { restores: restores.list(request.params.db) };
    });
  };
}

/** Exactly one of an ISO 8601 time (with a zone) and a decimal position. */
export function parseTarget(timestamp: string | undefined, position: string | undefined): RestoreTarget {
  if ((timestamp === undefined) === (position === undefined)) {
    throw badRequest('INVALID_RESTORE_TARGET', 'give exactly one of "timestamp" (ISO 8601) and "position" (decimal string)');
  }
  if (position !== undefined) {
    const value = BigInt(position);
    if (value < 1n || value >= 1n << 64n) throw badRequest('INVALID_RESTORE_TARGET', `position ${position} must be in 1..2^64-1`);
    return { position: value };
  }
  const text = timestamp as string;
  const timeMs = Date.parse(text);
  if (!ISO_8601.test(text) || !Number.isFinite(timeMs)) {
    throw badRequest(
      'INVALID_TIMESTAMP',
      `timestamp ${JSON.stringify(text)} must be ISO 8601 with a time zone, e.g. 2026-11-25T10:00:00.000Z`,
    );
  }
  return { timeMs };
}
