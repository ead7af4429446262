import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { AppContext } from '../app.js';
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
  const answer = (results: unknown[], position: bigint) => ({
    results,
    position: position.toString(),
    node: config.nodeId,
    role: 'primary',
  });

  return async (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();
    const maxStatements = config.limits.maxStatementsPerRequest;

    app.post(
      '/v1/databases/:db/query',
      { schema: { params: DatabaseParams, body: queryBodySchema(maxStatements) } },
      async (request) => {
        const { statements, mode, minPosition } = request.body;
        const database = await databases.get(request.params.db);
        const outcome = await database.query(statements, mode ?? 'transaction', minPosition === undefined ? undefined : BigInt(minPosition));
        return answer(outcome.results, outcome.position);
      },
    );

    app.post(
      '/v1/databases/:db/transactions',
      { schema: { params: DatabaseParams, body: BeginTransactionBody } },
      async (request, reply) => {
        const database = await databases.get(request.params.db);
        const transaction = await database.beginTransaction(request.body?.timeoutMs ?? config.limits.transactionTimeoutMs);
        return reply.status(201).send({ transaction });
      },
    );

    app.post(
      '/v1/databases/:db/transactions/:id/query',
      { schema: { params: TransactionParams, body: transactionQueryBodySchema(maxStatements) } },
      async (request) => {
        const database = await databases.get(request.params.db);
        const outcome = await database.transactionQuery(request.params.id, request.body.statements);
        return answer(outcome.results, outcome.position);
      },
    );

    app.post('/v1/databases/:db/transactions/:id/commit', { schema: { params: TransactionParams } }, async (request) => {
      const database = await databases.get(request.params.db);
      const position = await database.commitTransaction(request.params.id);
      return { position: position.toString(), node: config.nodeId };
    });

    app.post('/v1/databases/:db/transactions/:id/rollback', { schema: { params: TransactionParams } }, async (request) => {
      const database = await databases.get(request.params.db);
      await database.rollbackTransaction(request.params.id);
      return { rolledBack: true };
    });
  };
}
