import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Engine } from '../../node/node-databases.js';
import { forwardToPrimary } from '../forward.js';
import { assertDatabaseName } from '../../storage/layout.js';
import { requirePermission, type AppContext } from '../context.js';
import { CreateDatabaseBody, DatabaseParams } from '../schemas.js';

export function describeDatabase(database: Engine): Record<string, unknown> {
  const { name, id, createdAt, pageSize } = database.meta;
  return { name, id, createdAt, pageSize, position: database.position.toString(), checksum: database.checksum };
}

export function databaseRoutes(context: AppContext): FastifyPluginAsync {
  return async (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();

    const forward = (request: Parameters<typeof forwardToPrimary>[0], reply: Parameters<typeof forwardToPrimary>[1]) =>
      forwardToPrimary(request, reply, context.cluster, context.config.limits.waitTimeoutMs + 5000);

    app.post('/v1/databases', { schema: { body: CreateDatabaseBody } }, async (request, reply) => {
      requirePermission(request, 'admin', request.body.name);
      if (context.databases.role !== 'primary') return forward(request, reply);
      const database = await context.databases.create(assertDatabaseName(request.body.name));
      return reply.status(201).send({ database: describeDatabase(database) });
    });

    app.get('/v1/databases', async (request) => {
      // Each key sees the databases it may read.
      const databases = (await context.databases.list()).filter((database) => request.principal?.can('read', database.name));
      return { databases: databases.map(describeDatabase) };
    });

    app.get('/v1/databases/:db', { schema: { params: DatabaseParams } }, async (request) => {
      requirePermission(request, 'read', request.params.db);
      return { database: describeDatabase(await context.databases.get(request.params.db)) };
    });

    app.delete('/v1/databases/:db', { schema: { params: DatabaseParams } }, async (request, reply) => {
      requirePermission(request, 'admin', request.params.db);
      if (context.databases.role !== 'primary') return forward(request, reply);
      await context.databases.drop(request.params.db);
      return reply.status(204).send();
    });
  };
}
