import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { requirePermission, type AppContext } from '../context.js';

const NudgeBody = Type.Object(
  { databases: Type.Array(Type.String({ maxLength: 64 }), { maxItems: 10_000 }) },
  { additionalProperties: false },
);

/**
 * GET /v1/cluster: the term, the Primary, and every node's role, last heartbeat and per-database
 * position with its lag behind the Primary (in positions). Positions come from heartbeats, except
 * this node's, which are live.
 */
export function clusterRoutes(context: AppContext): FastifyPluginAsync {
  return async (app) => {
    // The Primary's nudge (src/cluster/replica-nudger.ts): these databases' logs grew. Internal;
    // nodes send it with the root key.
    // The answer says whether this node's watchers see those logs change (a local file system),
    // so the Primary can stop nudging a node that does not need it.
    app.withTypeProvider<TypeBoxTypeProvider>().post('/v1/cluster/nudge', { schema: { body: NudgeBody } }, async (request) => {
      requirePermission(request, 'cluster');
      return { watching: await context.databases.nudge(request.body.databases) };
    });

    app.get('/v1/cluster', async (request) => {
      requirePermission(request, 'cluster');
      const { member } = context.cluster;
      const lease = member.lease;
      const heartbeats = await member.nodes();
      const ownPositions = await context.databases.positions();
      const ownErrors = await context.databases.logErrors();
      const nodes = heartbeats.map((heartbeat) =>
        heartbeat.nodeId === context.config.nodeId
          ? { ...heartbeat, role: member.role, databases: ownPositions, lastHeartbeat: Date.now() }
          : heartbeat,
      );
      const primary = nodes.find((node) => node.nodeId === lease.primaryNodeId);
      const staleAfter = Math.max(3 * 1000, context.config.leaseTtlMs);
      return {
        term: member.term.toString(),
        primary: lease.primaryNodeId ? { nodeId: lease.primaryNodeId, address: lease.primaryAddress } : null,
        nodes: nodes.map((node) => ({
          nodeId: node.nodeId,
          address: node.address,
          role: node.role,
          term: node.term,
          lastHeartbeat: new Date(node.lastHeartbeat).toISOString(),
          alive: Date.now() - node.lastHeartbeat < staleAfter,
          databases: Object.fromEntries(
            Object.entries(node.databases).map(([name, { position }]) => {
              const primaryPosition = primary?.databases[name]?.position;
              const lag = primaryPosition === undefined ? null : Number(BigInt(primaryPosition) - BigInt(position));
              // Only this node's own refused segments are known here; others report theirs.
              const error = node.nodeId === context.config.nodeId ? ownErrors[name] : undefined;
              return [name, { position, lag: lag === null ? null : Math.max(0, lag), ...(error ? { error } : {}) }];
            }),
          ),
        })),
      };
    });
  };
}
