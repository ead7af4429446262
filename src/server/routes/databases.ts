import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { PrimaryDatabase } from '../../engine/primary-database.js';
import { assertDatabaseName } from '../../storage/layout.js';
import type { AppContext } from '../app.js';
import { CreateDatabaseBody, DatabaseParams } from '../schemas.js';

export function describeDatabase(database: PrimaryDatabase): Record<string, unknown> {
  const { name, id, createdAt, pageSize } = database.meta;
  return { name, id, createdAt, pageSize, position: database.position.toString(), checksum: database.checksum };
}

export function databaseRoutes(context: AppContext): FastifyPluginAsync {
  return async (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();

    app.post('/v1/databases', { schema: { body: CreateDatabaseBody } }, async (request, reply) => {
      const database = await context.databases.create(assertDatabaseName(request.body.name));
      return reply.status(201).send({ database: describeDatabase(database) });
    });

    app.get('/v1/databases', async () => {
      const databases = await context.databases.list();
      return { databases: databases.map(describeDatabase) };
    });

    app.get('/v1/databases/:db', { schema: { params: DatabaseParams } }, async (request) => {
      return { database: describeDatabase(await context.databases.get(request.params.db)) };
    });

    app.delete('/v1/databases/:db', { schema: { params: DatabaseParams } }, async (request, reply) => {
      await context.databases.drop(request.params.db);
      return reply.status(204).send();
    });
  };
}
