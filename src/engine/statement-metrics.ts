import { STATEMENT_DURATION_BUCKETS, type PrometheusSeries, type StatementStats } from './statement-stats.js';

/**
 * Statement metrics for Prometheus (docs/API.md "Statement metrics"), written out from the
 * engine's own counts (statement-stats.ts) when /metrics is read, in prom-client's format: a
 * histogram per statement costs the hot path a bucket scan and a few additions, not prom-client's
 * label lookup (about 1 µs per observation; see src/server/operational-metrics.ts).
 *
 *   litebase_statement_duration_seconds{database,statement}   histogram of run times
 *   litebase_statement_errors_total{database,statement}       runs that failed
 *   litebase_statement_rows_read_total{database,statement}    rows returned
 *   litebase_statement_rows_written_total{database,statement} rows changed
 *   litebase_statement_info{database,statement,sql}           1, naming each labelled statement's SQL
 *
 * `statement` is the statement's id (as in GET /v1/databases/:db/statements). Per database only
 * the `prometheusTop` statements with the most total time have their own label, chosen again at
 * most once a minute; every other run is counted under `statement="other"`. So a database has at
 * most prometheusTop + 1 series of each metric (the histogram times its 20 lines).
 */

/** How often the labelled statements may be chosen again. */
export const RANK_INTERVAL_MS = 60_000;
/** The `sql` label of litebase_statement_info is cut to this many characters. */
const SQL_LABEL_CHARS = 200;

type Labels = Record<string, string | number>;
interface MetricValue {
  labels: Labels;
  value: number;
  metricName?: string;
}
/** What prom-client's Registry reads from a metric (registerMetric takes any object with these). */
export interface CollectedMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'histogram' | 'counter' | 'gauge';
  readonly aggregator: 'sum';
  get(): Promise<{ name: string; help: string; type: string; values: MetricValue[]; aggregator: string }>;
  reset(): void;
}

type Row = { database: string; statement: string; sql?: string; series: PrometheusSeries };

/** Every series to write, having chosen the labelled statements again where due. */
function rows(stats: StatementStats, now: number): Row[] {
  const out: Row[] = [];
  for (const [database, statements] of stats.entries()) {
    statements.rank(now, RANK_INTERVAL_MS);
    for (const { id, text, series } of statements.series()) out.push({ database, statement: id, sql: text, series });
    out.push({ database, statement: 'other', series: statements.other });
  }
  return out;
}

function metric(
  name: string,
  help: string,
  type: CollectedMetric['type'],
  values: (rows: Row[]) => MetricValue[],
  stats: StatementStats,
): CollectedMetric {
  return {
    name,
    help,
    type,
    aggregator: 'sum',
    async get() {
      return { name, help, type, values: values(rows(stats, Date.now())), aggregator: 'sum' };
    },
    reset() {
      // Counts belong to the engine; a registry reset does not clear them.
    },
  };
}

/** The statement metrics of a node, to register in its prom-client registry. */
export function statementMetrics(stats: StatementStats): CollectedMetric[] {
  const duration = 'litebase_statement_duration_seconds';
  const counter = (name: string, help: string, pick: (series: PrometheusSeries) => number) =>
    metric(
      name,
      help,
      'counter',
      (all) => all.map(({ database, statement, series }) => ({ labels: { database, statement }, value: pick(series) })),
      stats,
    );
  return [
    metric(
      duration,
      'Time to run a statement on this node (prepare, bind, step), by database and statement (top statements by total time; the rest "other")',
      'histogram',
      (all) => {
        const values: MetricValue[] = [];
        for (const { database, statement, series } of all) {
          let cumulative = 0;
          STATEMENT_DURATION_BUCKETS.forEach((bound, index) => {
            cumulative += series.buckets[index] as number;
            values.push({ labels: { le: bound, database, statement }, value: cumulative, metricName: `${duration}_bucket` });
          });
          values.push({ labels: { le: '+Inf', database, statement }, value: series.count, metricName: `${duration}_bucket` });
          values.push({ labels: { database, statement }, value: series.sumSeconds, metricName: `${duration}_sum` });
          values.push({ labels: { database, statement }, value: series.count, metricName: `${duration}_count` });
        }
        return values;
      },
      stats,
    ),
    counter('litebase_statement_errors_total', 'Statement runs that failed, by database and statement', (series) => series.errors),
    counter('litebase_statement_rows_read_total', 'Rows statements returned, by database and statement', (series) => series.rowsRead),
    counter(
      'litebase_statement_rows_written_total',
      'Rows statements changed (SQLite changes()), by database and statement',
      (series) => series.rowsWritten,
    ),
    metric(
      'litebase_statement_info',
      'The normalized SQL of each statement with its own label (1)',
      'gauge',
      (all) =>
        all
          .filter((row) => row.sql !== undefined)
          .map(({ database, statement, sql }) => ({
            labels: { database, statement, sql: (sql as string).slice(0, SQL_LABEL_CHARS) },
            value: 1,
          })),
      stats,
    ),
  ];
}
