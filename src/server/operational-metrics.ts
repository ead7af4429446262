import { Gauge, type Metric } from 'prom-client';
import type { App, AppContext } from './context.js';

/**
 * Two series the web console charts (docs/CONSOLE.md) that the node did not export before:
 *
 *   litebase_http_request_duration_seconds{route}  time from request to answer, per route template
 *   litebase_replica_lag_positions{node,database}   how far each node's copy is behind the Primary's,
 *                                                   in positions, computed when /metrics is read
 *
 * Routes are templates ("/v1/databases/:db/query"), so the label set stays bounded.
 */
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];

/**
 * A histogram per route kept in plain arrays and written out in prom-client's format when
 * /metrics is read (test/unit/server/operational-metrics.test.ts checks the text is the same). prom-client's
 * own Histogram costs about 1 µs per observation even through a cached child; this one about
 * 45 ns (a bucket scan and three additions), and it runs on every request the node answers.
 */
export class RouteDurations {
  readonly name = 'litebase_http_request_duration_seconds';
  readonly help = 'Time from receiving a request to sending its answer, by route';
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly routes = new Map<string, { buckets: Float64Array; sum: number; count: number }>();

  observe(route: string, seconds: number): void {
    let entry = this.routes.get(route);
    if (!entry) {
      entry = { buckets: new Float64Array(DURATION_BUCKETS.length), sum: 0, count: 0 };
      this.routes.set(route, entry);
    }
    let index = 0;
    while (index < DURATION_BUCKETS.length && seconds > (DURATION_BUCKETS[index] as number)) index++;
    if (index < DURATION_BUCKETS.length) entry.buckets[index]! += 1;
    entry.sum += seconds;
    entry.count += 1;
  }

  /** What prom-client's Registry writes out: cumulative buckets, +Inf, sum and count per route. */
  async get() {
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    for (const [route, entry] of this.routes) {
      let cumulative = 0;
      DURATION_BUCKETS.forEach((bound, index) => {
        cumulative += entry.buckets[index] as number;
        values.push({ labels: { le: bound, route }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf', route }, value: entry.count, metricName: `${this.name}_bucket` });
      values.push({ labels: { route }, value: entry.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { route }, value: entry.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    this.routes.clear();
  }
}

export function registerOperationalMetrics(app: App, context: AppContext): void {
  const { metrics } = context;
  const durations = new RouteDurations();
  // prom-client's Registry takes any object with its Metric's name, get() and reset().
  metrics.registry.registerMetric(durations as unknown as Metric);
  app.addHook('onResponse', (request, reply, done) => {
    durations.observe(request.routeOptions.url ?? 'unmatched', reply.elapsedTime / 1000);
    done();
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
      const live = (await member.nodes()).filter(
        (node) => node.nodeId === context.config.nodeId || Date.now() - node.lastHeartbeat < staleAfter,
      );
      const nodes = live.map((node) =>
        node.nodeId === context.config.nodeId
          ? { nodeId: node.nodeId, databases: own }
          : { nodeId: node.nodeId, databases: node.databases },
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
