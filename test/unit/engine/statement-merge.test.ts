import { describe, expect, it } from 'vitest';
import { mergeStatementReports } from '../../../src/engine/statement-merge.js';
import { StatementStats } from '../../../src/engine/statement-stats.js';
import { sample as run } from '../../support/statement-samples.js';

describe('mergeStatementReports', () => {
  it('adds counts, rows and times, and merges the sketches exactly', () => {
    const whole = new StatementStats();
    const first = new StatementStats();
    const second = new StatementStats();
    for (let ms = 1; ms <= 1000; ms++) {
      const sample = run('SELECT * FROM t WHERE id = 1', ms / 10, { rowsRead: 1 });
      whole.record('app', [sample]);
      (ms % 3 === 0 ? first : second).record('app', [sample]);
    }
    first.record('app', [run('SELECT 0', 0), run('INSERT INTO t VALUES (1)', 2, { rowsWritten: 1 })]);
    second.record('app', [run('INSERT INTO t VALUES (2)', 3, { error: 'SQLITE_CONSTRAINT_PRIMARYKEY', at: Date.now() + 10 })]);

    const part = (stats: StatementStats) => stats.report('app', 'total', 1000, true)?.statements ?? [];
    expect(part(first)[0]?.sketch?.bins.length).toBeGreaterThan(10);
    const merged = mergeStatementReports([part(first), part(second)], 'total', 10);
    const expected = whole.report('app', 'total', 1)?.statements[0];
    const select = merged.find((report) => report.sql === 'SELECT * FROM t WHERE id = ?');
    expect(select).toMatchObject({ count: 1000, rowsRead: 1000, minMs: 0.1, maxMs: 100 });
    expect(select?.totalMs).toBeCloseTo(expected?.totalMs ?? 0, 6);
    // The same bins as one node that saw every run: the same quantiles.
    expect(select?.p50Ms).toBe(expected?.p50Ms);
    expect(select?.p90Ms).toBe(expected?.p90Ms);
    expect(select?.p99Ms).toBe(expected?.p99Ms);
    expect(select).not.toHaveProperty('sketch');

    const insert = merged.find((report) => report.sql === 'INSERT INTO t VALUES (?)');
    expect(insert).toMatchObject({ count: 2, errors: 1, rowsWritten: 1, totalMs: 5, minMs: 2, maxMs: 3, meanMs: 2.5 });
    expect(insert?.lastError?.code).toBe('SQLITE_CONSTRAINT_PRIMARYKEY');
    // A statement one node ran alone is that node's, and a zero-time run counts.
    expect(merged.find((report) => report.sql === 'SELECT ?')).toMatchObject({ count: 1, p99Ms: 0 });
    expect(merged.map((report) => report.totalMs)).toEqual([...merged.map((report) => report.totalMs)].sort((a, b) => b - a));
    expect(mergeStatementReports([part(first), part(second)], 'count', 1)).toHaveLength(1);
  });
});
