import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The node's Prometheus metrics, one registry per node (tests run several nodes in one process,
 * so nothing is registered globally).
 */
export class Metrics {
  readonly registry = new Registry();

  readonly httpRequests = new Counter({
    name: 'litebase_http_requests_total',
    help: 'HTTP requests answered, by route and status code',
    labelNames: ['route', 'status'] as const,
    registers: [this.registry],
  });

  readonly transactionsCommitted = new Counter({
    name: 'litebase_transactions_committed_total',
    help: 'Client write transactions made durable in the log',
    labelNames: ['database'] as const,
    registers: [this.registry],
  });

  readonly segmentsWritten = new Counter({
    name: 'litebase_segments_written_total',
    help: 'Log segments written and fsynced',
    labelNames: ['database'] as const,
    registers: [this.registry],
  });

  readonly segmentBytes = new Counter({
    name: 'litebase_segment_bytes_total',
    help: 'Bytes of log segments written (compressed)',
    labelNames: ['database'] as const,
    registers: [this.registry],
  });

  readonly segmentsStreamed = new Counter({
    name: 'litebase_segments_streamed_total',
    help: 'Log segments too large to hold in memory, written chunk by chunk from the WAL (also counted in litebase_segments_written_total)',
    labelNames: ['database'] as const,
    registers: [this.registry],
  });

  readonly segmentWriteSeconds = new Histogram({
    name: 'litebase_segment_write_seconds',
    help: 'Time to write and fsync one segment on the shared file system',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });

  readonly groupSize = new Histogram({
    name: 'litebase_commit_group_size',
    help: 'Client transactions carried by one segment (group commit)',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [this.registry],
  });

  readonly logWriteFailures = new Counter({
    name: 'litebase_log_write_failures_total',
    help: 'Segments that could not be made durable (their transactions were rolled back)',
    labelNames: ['database', 'code'] as const,
    registers: [this.registry],
  });

  readonly corruptSegments = new Counter({
    name: 'litebase_corrupt_segments_total',
    help: 'Segments a replica refused to apply (corrupt, foreign, or out of order)',
    labelNames: ['database', 'code'] as const,
    registers: [this.registry],
  });

  readonly nudgedSegments = new Counter({
    name: 'litebase_replica_nudged_segments_total',
    help: "Segments a replica was sent in the Primary's nudges: applied from the nudge, or not used (read from the log instead)",
    labelNames: ['database', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly localRecoveries = new Counter({
    name: 'litebase_local_recoveries_total',
    help: 'Times a local copy was rebuilt from the log',
    labelNames: ['database'] as const,
    registers: [this.registry],
  });

  readonly position = new Gauge({
    name: 'litebase_database_position',
    help: 'Last durable log position of each database on this node',
    labelNames: ['database'] as const,
    registers: [this.registry],
  });

  constructor(options: { collectDefaults?: boolean } = {}) {
    if (options.collectDefaults ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'litebase_' });
  }
}
