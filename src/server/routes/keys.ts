import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ACTIONS, describeKey, type Action } from '../access-keys.js';
import { requirePermission, type AppContext } from '../context.js';

const CreateKeyBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200 }),
    databases: Type.Array(Type.String({ pattern: '^(\\*|[a-z0-9*][a-z0-9_*-]{0,62})$' }), { minItems: 1, maxItems: 100 }),
    actions: Type.Array(Type.Union(ACTIONS.map((action) => Type.Literal(action))), { minItems: 1, maxItems: ACTIONS.length }),
  },
  { additionalProperties: false },
);

const KeyParams = Type.Object({ id: Type.String({ pattern: '^[a-z0-9]{12}$' }) });

/**
 * Access key management (admin on every database, i.e. an admin key for "*", or the root key).
 * The secret is returned once, at creation; only its hash is kept.
 */
export function keyRoutes(context: AppContext): FastifyPluginAsync {
  return async (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();

    app.post('/v1/keys', { schema: { body: CreateKeyBody } }, async (request, reply) => {
      requirePermission(request, 'admin');
      const { record, secret } = await context.keys.create({
        name: request.body.name,
        databases: [...new Set(request.body.databases)],
        actions: [...new Set(request.body.actions)] as Action[],
      });
      return reply.status(201).send({ key: { ...describeKey(record), secret } });
    });

    app.get('/v1/keys', async (request) => {
      requirePermission(request, 'admin');
      return { keys: (await context.keys.list()).map(describeKey) };
    });

    app.delete('/v1/keys/:id', { schema: { params: KeyParams } }, async (request, reply) => {
      requirePermission(request, 'admin');
      await context.keys.revoke(request.params.id);
      return reply.status(204).send();
    });
  };
}
