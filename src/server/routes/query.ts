import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { PrimaryDatabase } from '../../engine/primary-database.js';
import { NeedsPrimaryError } from '../../engine/replica-database.js';
import { requirePermission, type AppContext } from '../app.js';
import { readOnlyKey } from '../../engine/executor.js';
import { forwardToPrimary } from '../forward.js';
import {
  BeginTransactionBody,
  DatabaseParams,
  queryBodySchema,
  TransactionParams,
  transactionQueryBodySchema,
} from '../schemas.js';

/** Query and interactive transaction routes (API.md). Positions go out as decimal strings. */
export function queryRoutes(context: AppContext): FastifyPluginAsync {
  const { config, databases } = context;
  const answer = (results: unknown[], position: bigint, role: 'primary' | 'replica') => ({
    results,
    position: position.toString(),
    node: config.nodeId,
    role,
  });
  const forward = (request: Parameters<typeof forwardToPrimary>[0], reply: Parameters<typeof forwardToPrimary>[1]) =>
    forwardToPrimary(request, reply, context.cluster, config.limits.waitTimeoutMs + 5000);

  return async (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();
    const maxStatements = config.limits.maxStatementsPerRequest;

    app.post(
      '/v1/databases/:db/query',
      { schema: { params: DatabaseParams, body: queryBodySchema(maxStatements) } },
      async (request, reply) => {
        const { statements, mode, minPosition } = request.body;
        const name = request.params.db;
        requirePermission(request, 'read', name);
        const allowWrite = request.principal?.can('write', name) ?? false;
        const database = await databases.get(name);
        const min = minPosition === undefined ? undefined : BigInt(minPosition);
        if (database instanceof PrimaryDatabase) {
          const outcome = await database.query(statements, mode ?? 'transaction', min, allowWrite);
          return answer(outcome.results, outcome.position, 'primary');
        }
        try {
          // A replica answers reads itself; anything that writes goes to the Primary whole.
          const outcome = await database.query(statements, min);
          return answer(outcome.results, outcome.position, 'replica');
        } catch (error) {
          if (!(error instanceof NeedsPrimaryError)) throw error;
          if (!allowWrite) throw readOnlyKey(name);
          return forward(request, reply);
        }
      },
    );

    app.post(
      '/v1/databases/:db/transactions',
      { schema: { params: DatabaseParams, body: BeginTransactionBody } },
      async (request, reply) => {
        requirePermission(request, 'write', request.params.db);
        const database = await databases.get(request.params.db);
        // Interactive transactions are pinned to the Primary: every call is forwarded there.
        if (!(database instanceof PrimaryDatabase)) return forward(request, reply);
        const transaction = await database.beginTransaction(request.body?.timeoutMs ?? config.limits.transactionTimeoutMs);
        return reply.status(201).send({ transaction });
      },
    );

    app.post(
      '/v1/databases/:db/transactions/:id/query',
      { schema: { params: TransactionParams, body: transactionQueryBodySchema(maxStatements) } },
      async (request, reply) => {
        requirePermission(request, 'write', request.params.db);
        const database = await databases.get(request.params.db);
        if (!(database instanceof PrimaryDatabase)) return forward(request, reply);
        const outcome = await database.transactionQuery(request.params.id, request.body.statements);
        return answer(outcome.results, outcome.position, 'primary');
      },
    );

    app.post('/v1/databases/:db/transactions/:id/commit', { schema: { params: TransactionParams } }, async (request, reply) => {
      requirePermission(request, 'write', request.params.db);
      const database = await databases.get(request.params.db);
      if (!(database instanceof PrimaryDatabase)) return forward(request, reply);
      const position = await database.commitTransaction(request.params.id);
      return { position: position.toString(), node: config.nodeId };
    });

    app.post('/v1/databases/:db/transactions/:id/rollback', { schema: { params: TransactionParams } }, async (request, reply) => {
      requirePermission(request, 'write', request.params.db);
      const database = await databases.get(request.params.db);
      if (!(database instanceof PrimaryDatabase)) return forward(request, reply);
      await database.rollbackTransaction(request.params.id);
      return { rolledBack: true };
    });
  };
}
