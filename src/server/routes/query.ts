import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { PrimaryDatabase } from '../../engine/primary-database.js';
import { NeedsPrimaryError } from '../../engine/replica-database.js';
import type { Principal } from '../access-keys.js';
import { requirePermission, type AppContext } from '../context.js';
import { readOnlyKey, type StatementAccess } from '../../engine/executor.js';
import { LitebaseError } from '../../errors.js';
import { forwardToPrimary } from '../forward.js';
import { BeginTransactionBody, DatabaseParams, queryBodySchema, TransactionParams, transactionQueryBodySchema } from '../schemas.js';

/**
 * The body failed its schema (validated with `attachValidation`, so this runs first in the
 * handler): too many statements is a limit with its own code; anything else stays INVALID_REQUEST.
 */
function refuseInvalidBody(request: FastifyRequest, maxStatements: number): void {
  const error = request.validationError;
  if (!error) return;
  const validation = (error.validation ?? []) as Array<{ keyword?: string; instancePath?: string }>;
  if (validation.some((issue) => issue.keyword === 'maxItems' && issue.instancePath === '/statements')) {
    throw new LitebaseError('TOO_MANY_STATEMENTS', `a request may hold at most ${maxStatements} statements`, {
      details: { maxStatements },
    });
  }
  throw error;
}

/** Query and interactive transaction routes (docs/API.md "POST /v1/databases/:db/query" and "Interactive transactions"). Positions go out as decimal strings. */
export function queryRoutes(context: AppContext): FastifyPluginAsync {
  const { config, databases } = context;
  const answer = (results: unknown[], position: bigint, role: 'primary' | 'replica') => ({
    results,
    position: position.toString(),
    node: config.nodeId,
    role,
  });
  /** What the key may do beyond reading `database`: write, and run the admin-only PRAGMAs. */
  const accessOf = (request: { principal: Principal | null }, database: string): StatementAccess => ({
    write: request.principal?.can('write', database) ?? false,
    admin: request.principal?.can('admin', database) ?? false,
  });
  const forward = (request: Parameters<typeof forwardToPrimary>[0], reply: Parameters<typeof forwardToPrimary>[1]) =>
    forwardToPrimary(request, reply, context.cluster, config.limits.waitTimeoutMs + 5000);

  return async (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();
    const maxStatements = config.limits.maxStatementsPerRequest;

    app.post(
      '/v1/databases/:db/query',
      { schema: { params: DatabaseParams, body: queryBodySchema(maxStatements) }, attachValidation: true },
      async (request, reply) => {
        refuseInvalidBody(request, maxStatements);
        const { statements, mode, minPosition } = request.body;
        const name = request.params.db;
        requirePermission(request, 'read', name);
        const access = accessOf(request, name);
        const database = await databases.get(name);
        const min = minPosition === undefined ? undefined : BigInt(minPosition);
        if (database instanceof PrimaryDatabase) {
          const outcome = await database.query(statements, mode ?? 'transaction', min, access);
          return answer(outcome.results, outcome.position, 'primary');
        }
        try {
          // A replica answers reads itself; anything that writes goes to the Primary whole.
          const outcome = await database.query(statements, min, access);
          return answer(outcome.results, outcome.position, 'replica');
        } catch (error) {
          if (!(error instanceof NeedsPrimaryError)) throw error;
          if (!access.write) throw readOnlyKey(name);
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
      { schema: { params: TransactionParams, body: transactionQueryBodySchema(maxStatements) }, attachValidation: true },
      async (request, reply) => {
        refuseInvalidBody(request, maxStatements);
        requirePermission(request, 'write', request.params.db);
        const database = await databases.get(request.params.db);
        if (!(database instanceof PrimaryDatabase)) return forward(request, reply);
        const outcome = await database.transactionQuery(request.params.id, request.body.statements, accessOf(request, request.params.db));
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
