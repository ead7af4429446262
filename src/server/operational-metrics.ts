import { Gauge, Histogram } from 'prom-client';
import type { App, AppContext } from './app.js';

/**
 * Two series the web console charts (docs/CONSOLE.md) that the node did not export before:
 *
 *   litebase_http_request_duration_seconds{route}  time from request to answer, per route template
 *   litebase_replica_lag_positions{node,database}   how far each node's copy is behind the Primary's,
 *                                                   in positions, computed when /metrics is read
 *
 * Routes are templates ("/v1/databases/:db/query"), so the label set stays bounded.
 */
export function registerOperationalMetrics(app: App, context: AppContext): void {
  const { metrics } = context;
  const durations = new Histogram({
    name: 'litebase_http_request_duration_seconds',
    help: 'Time from receiving a request to sending its answer, by route',
    labelNames: ['route'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [metrics.registry],
  });
  // One child per route, looked up by string: prom-client's own label lookup costs more (app.ts).
  const children = new Map<string, { observe(value: number): void }>();
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    let child = children.get(route);
    if (!child) {
      child = durations.labels(route);
      children.set(route, child);
    }
    child.observe(reply.elapsedTime / 1000);
  });

  new Gauge({
    name: 'litebase_replica_lag_positions',
    help: "Positions each node's copy of a database is behind the Primary's (from heartbeats; this node's own are live)",
    labelNames: ['node', 'database'] as const,
    registers: [metrics.registry],
    async collect() {
      this.reset();
      const { member } = context.cluster;
      const primaryId = member.lease.primaryNodeId;
      if (!primaryId) return;
      const own = await context.databases.positions();
      // A node whose heartbeat went stale is gone (GET /v1/cluster: alive false): no lag for it.
      const staleAfter = Math.max(3000, context.config.leaseTtlMs);
      const live = (await member.nodes()).filter((node) => node.nodeId === context.config.nodeId || Date.now() - node.lastHeartbeat < staleAfter);
      const nodes = live.map((node) =>
        node.nodeId === context.config.nodeId ? { nodeId: node.nodeId, databases: own } : { nodeId: node.nodeId, databases: node.databases },
      );
      const primary = nodes.find((node) => node.nodeId === primaryId);
      if (!primary) return;
      for (const node of nodes) {
        for (const [database, { position }] of Object.entries(node.databases)) {
          const primaryPosition = primary.databases[database]?.position;
          if (primaryPosition === undefined) continue;
          const lag = BigInt(primaryPosition) - BigInt(position);
          this.labels(node.nodeId, database).set(lag > 0n ? Number(lag) : 0);
        }
      }
    },
  });
}
