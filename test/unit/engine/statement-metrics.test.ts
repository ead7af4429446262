import { Registry, type Metric } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { statementMetrics } from '../../../src/engine/statement-metrics.js';
import { StatementStats } from '../../../src/engine/statement-stats.js';

async function scrape(stats: StatementStats): Promise<string> {
  const registry = new Registry();
  for (const metric of statementMetrics(stats)) registry.registerMetric(metric as unknown as Metric);
  return registry.metrics();
}

const lines = (text: string, prefix: string): string[] => text.split('\n').filter((line) => line.startsWith(prefix));

describe('statement metrics for Prometheus', () => {
  it('writes a histogram per labelled statement and one "other" per database, with errors and rows', async () => {
    const stats = new StatementStats({ prometheusTop: 1 });
    stats.record('app', [
      { sql: 'SELECT * FROM t WHERE id = 1', ms: 0.3, at: Date.now(), rowsRead: 1, rowsWritten: 0 },
      { sql: 'SELECT * FROM t WHERE id = 2', ms: 0.03, at: Date.now(), rowsRead: 1, rowsWritten: 0 },
      { sql: 'INSERT INTO t VALUES (1)', ms: 2, at: Date.now(), rowsRead: 0, rowsWritten: 1, error: 'SQLITE_CONSTRAINT_PRIMARYKEY' },
    ]);
    const id = stats.report('app', 'total', 10)?.statements.find((statement) => statement.sql.startsWith('SELECT'))?.id as string;
    const text = await scrape(stats);

    expect(text).toContain('# TYPE litebase_statement_duration_seconds histogram');
    // The SELECT came first and took the one label; the INSERT is "other" (and the scrape kept that,
    // since the labels are chosen again only after a minute).
    expect(lines(text, 'litebase_statement_duration_seconds_count')).toEqual([
      `litebase_statement_duration_seconds_count{database="app",statement="${id}"} 2`,
      'litebase_statement_duration_seconds_count{database="app",statement="other"} 1',
    ]);
    expect(text).toContain(`litebase_statement_duration_seconds_bucket{le="0.00005",database="app",statement="${id}"} 1`);
    expect(text).toContain(`litebase_statement_duration_seconds_bucket{le="0.0005",database="app",statement="${id}"} 2`);
    expect(text).toContain(`litebase_statement_duration_seconds_bucket{le="+Inf",database="app",statement="${id}"} 2`);
    expect(text).toContain('litebase_statement_duration_seconds_bucket{le="0.001",database="app",statement="other"} 0');
    expect(text).toContain('litebase_statement_duration_seconds_bucket{le="0.0025",database="app",statement="other"} 1');
    expect(text).toContain('litebase_statement_errors_total{database="app",statement="other"} 1');
    expect(text).toContain(`litebase_statement_errors_total{database="app",statement="${id}"} 0`);
    expect(text).toContain(`litebase_statement_rows_read_total{database="app",statement="${id}"} 2`);
    expect(text).toContain('litebase_statement_rows_written_total{database="app",statement="other"} 1');
    expect(lines(text, 'litebase_statement_info')).toEqual([
      `litebase_statement_info{database="app",statement="${id}",sql="SELECT * FROM t WHERE id = ?"} 1`,
    ]);
  });

  it('keeps the label set bounded however many statements run', async () => {
    const stats = new StatementStats({ prometheusTop: 5 });
    for (let i = 0; i < 300; i++) stats.record('app', [{ sql: `SELECT c${i} FROM t`, ms: 1, at: Date.now(), rowsRead: 0, rowsWritten: 0 }]);
    for (let i = 0; i < 50; i++) stats.record('b', [{ sql: `SELECT c${i} FROM t`, ms: 1, at: Date.now(), rowsRead: 0, rowsWritten: 0 }]);
    const counts = lines(await scrape(stats), 'litebase_statement_duration_seconds_count');
    // Five labelled statements and "other", per database.
    expect(counts.filter((line) => line.includes('database="app"'))).toHaveLength(6);
    expect(counts.filter((line) => line.includes('database="b"'))).toHaveLength(6);
    const total = counts.reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
    expect(total).toBe(350);
  });
});
