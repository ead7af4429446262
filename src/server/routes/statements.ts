import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { STATEMENT_ORDERS, type StatementOrder } from '../../engine/statement-stats.js';
import { requirePermission, type AppContext } from '../context.js';
import { DatabaseParams } from '../schemas.js';

/** Most statements one answer lists. */
const MAX_LIMIT = 1000;

const StatementsQuery = Type.Object(
  {
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })),
    order: Type.Optional(Type.Union(STATEMENT_ORDERS.map((order) => Type.Literal(order)))),
  },
  { additionalProperties: false },
);

/**
 * Statement metrics (docs/API.md "Statement metrics"): `GET /v1/databases/:db/statements` lists the
 * statements this node ran on the database, normalized, with counts, errors, latency quantiles and
 * rows; `DELETE` starts the counts again. Both concern this node only: they are never forwarded.
 */
export function statementRoutes(context: AppContext): FastifyPluginAsync {
  const { databases, config } = context;
  return async (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();

    app.get('/v1/databases/:db/statements', { schema: { params: DatabaseParams, querystring: StatementsQuery } }, async (request) => {
      const name = request.params.db;
      requirePermission(request, 'read', name);
      // 404 for a database that does not exist (counts of a dropped one are gone with it).
      await databases.get(name);
      const limit = Math.min(MAX_LIMIT, Math.max(1, Number(request.query.limit ?? 20)));
      const order: StatementOrder = request.query.order ?? 'total';
      const stats = databases.statements;
      const report = stats.report(name, order, limit);
      return {
        database: name,
        node: config.nodeId,
        role: databases.role,
        enabled: stats.enabled,
        order,
        since: report?.since ?? null,
        tracked: report?.tracked ?? 0,
        maxTracked: stats.options.maxPerDatabase,
        evicted: report?.evicted ?? 0,
        statements: report?.statements ?? [],
      };
    });

    app.delete('/v1/databases/:db/statements', { schema: { params: DatabaseParams } }, async (request, reply) => {
      const name = request.params.db;
      requirePermission(request, 'admin', name);
      await databases.get(name);
      databases.statements.reset(name);
      return reply.status(204).send();
    });
  };
}
