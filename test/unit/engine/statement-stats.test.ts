import { describe, expect, it } from 'vitest';
import { StatementStats } from '../../../src/engine/statement-stats.js';
import { sample as run } from '../../support/statement-samples.js';

describe('StatementStats', () => {
  it('counts runs, errors, rows and times per normalized statement and per database', () => {
    const stats = new StatementStats();
    stats.record('app', [
      run('SELECT * FROM t WHERE id = 1', 2, { rowsRead: 1 }),
      run('select * from t where id = 2', 4, { rowsRead: 1 }),
      run("INSERT INTO t VALUES (1, 'a')", 1, { rowsWritten: 1 }),
      run("INSERT INTO t VALUES (2, 'b')", 3, { error: 'SQLITE_CONSTRAINT_PRIMARYKEY' }),
    ]);
    stats.record('other', [run('SELECT * FROM t WHERE id = 3', 100, { rowsRead: 7 })]);

    const report = stats.report('app', 'total', 10);
    expect(report?.tracked).toBe(2);
    expect(report?.evicted).toBe(0);
    const [select, insert] = report?.statements ?? [];
    expect(select).toMatchObject({
      sql: 'SELECT * FROM t WHERE id = ?',
      count: 2,
      errors: 0,
      lastError: null,
      totalMs: 6,
      meanMs: 3,
      minMs: 2,
      maxMs: 4,
    });
    expect(select?.rowsRead).toBe(2);
    expect(select?.rowsWritten).toBe(0);
    expect(insert).toMatchObject({ sql: 'INSERT INTO t VALUES (?, ?)', count: 2, errors: 1, rowsWritten: 1, totalMs: 4 });
    expect(insert?.lastError?.code).toBe('SQLITE_CONSTRAINT_PRIMARYKEY');
    expect(Date.parse(insert?.lastSeen ?? '')).toBeGreaterThan(Date.now() - 60_000);
    // The other database's statement is its own.
    expect(stats.report('other', 'total', 10)?.statements).toMatchObject([{ count: 1, rowsRead: 7, totalMs: 100 }]);
    expect(stats.report('nothing', 'total', 10)).toBeUndefined();
  });

  it('gives p50, p90 and p99 within 1 % of the real quantiles', () => {
    const stats = new StatementStats();
    // 1..1000 ms in a shuffled order: the real p50 is 500, p90 900, p99 990.
    const times = Array.from({ length: 1000 }, (_, i) => i + 1).sort((a, b) => ((a * 7919) % 1000) - ((b * 7919) % 1000));
    stats.record(
      'app',
      times.map((ms) => run('SELECT 1', ms)),
    );
    const [statement] = stats.report('app', 'total', 1)?.statements ?? [];
    expect(statement?.count).toBe(1000);
    expect(Math.abs((statement?.p50Ms ?? 0) - 500) / 500).toBeLessThanOrEqual(0.011);
    expect(Math.abs((statement?.p90Ms ?? 0) - 900) / 900).toBeLessThanOrEqual(0.011);
    expect(Math.abs((statement?.p99Ms ?? 0) - 990) / 990).toBeLessThanOrEqual(0.011);
    expect(statement?.minMs).toBe(1);
    expect(statement?.maxMs).toBe(1000);
  });

  it('orders by total time, count, p99, mean or errors, and keeps to the limit', () => {
    const stats = new StatementStats();
    stats.record('app', [
      ...Array.from({ length: 10 }, () => run('SELECT a FROM t', 1)), // total 10, count 10, p99 1
      run('SELECT b FROM t', 50), // total 50, count 1, p99 50
      ...Array.from({ length: 3 }, () => run('SELECT c FROM t', 5, { error: 'SQLITE_ERROR' })), // total 15
    ]);
    const order = (by: 'total' | 'count' | 'p99' | 'mean' | 'errors') =>
      stats.report('app', by, 10)?.statements.map((statement) => statement.sql);
    expect(order('total')).toEqual(['SELECT b FROM t', 'SELECT c FROM t', 'SELECT a FROM t']);
    expect(order('count')).toEqual(['SELECT a FROM t', 'SELECT c FROM t', 'SELECT b FROM t']);
    expect(order('p99')).toEqual(['SELECT b FROM t', 'SELECT c FROM t', 'SELECT a FROM t']);
    expect(order('mean')).toEqual(['SELECT b FROM t', 'SELECT c FROM t', 'SELECT a FROM t']);
    expect(order('errors')?.[0]).toBe('SELECT c FROM t');
    expect(stats.report('app', 'total', 2)?.statements).toHaveLength(2);
  });

  it('tracks at most maxPerDatabase statements, dropping those with the least total time', () => {
    const stats = new StatementStats({ maxPerDatabase: 20 });
    // An expensive statement first, then many cheap distinct ones.
    stats.record('app', [run('SELECT expensive FROM t', 1000)]);
    for (let i = 0; i < 100; i++) stats.record('app', [run(`SELECT c${i} FROM t`, 1 + i / 1000)]);
    const report = stats.report('app', 'total', 1000);
    expect(report?.tracked).toBeLessThanOrEqual(20);
    expect(report?.maxTracked).toBe(20);
    expect((report?.tracked ?? 0) + (report?.evicted ?? 0)).toBe(101);
    expect(report?.statements[0]?.sql).toBe('SELECT expensive FROM t');
    // The newest statement was just added, so it is there too.
    expect(report?.statements.map((statement) => statement.sql)).toContain('SELECT c99 FROM t');
  });

  it('resets a database, forgets a dropped one, and records nothing when turned off', () => {
    const stats = new StatementStats();
    stats.record('app', [run('SELECT 1', 1)]);
    stats.reset('app');
    expect(stats.report('app', 'total', 10)).toMatchObject({ tracked: 0, evicted: 0, statements: [] });
    stats.record('app', [run('SELECT 1', 1)]);
    stats.forget('app');
    expect(stats.report('app', 'total', 10)).toBeUndefined();

    const off = new StatementStats({ maxPerDatabase: 0 });
    expect(off.enabled).toBe(false);
    off.record('app', [run('SELECT 1', 1)]);
    expect(off.report('app', 'total', 10)).toBeUndefined();
  });

  it('gives Prometheus labels to the top statements by total time and counts the rest as "other"', () => {
    const stats = new StatementStats({ prometheusTop: 2 });
    // The first two statements take the two free labels at once.
    stats.record('app', [run('SELECT a FROM t', 1), run('SELECT b FROM t', 2), run('SELECT c FROM t', 300)]);
    const statements = [...stats.entries()][0]?.[1];
    if (!statements) throw new Error('no statements recorded');
    const labelled = () => [...statements.series()].map((entry) => entry.text).sort();
    expect(labelled()).toEqual(['SELECT a FROM t', 'SELECT b FROM t']);
    expect(statements.other.count).toBe(1);
    // Ranking gives the labels to the costliest; a statement that gets one starts at zero.
    statements.rank(Date.now(), 0);
    expect(labelled()).toEqual(['SELECT b FROM t', 'SELECT c FROM t']);
    const c = [...statements.series()].find((entry) => entry.text === 'SELECT c FROM t');
    expect(c?.series.count).toBe(0);
    stats.record('app', [run('SELECT c FROM t', 0.2, { error: 'SQLITE_ERROR', rowsRead: 3 }), run('SELECT a FROM t', 1)]);
    expect(c?.series).toMatchObject({ count: 1, errors: 1, rowsRead: 3 });
    expect(c?.series.buckets[1]).toBe(0); // 0.2 ms is past the 0.1 ms bucket
    expect(c?.series.buckets[2]).toBe(1); // and within 0.25 ms
    expect(statements.other.count).toBe(2);
    // Within the interval nothing moves.
    statements.rank(Date.now(), 60_000);
    expect(labelled()).toEqual(['SELECT b FROM t', 'SELECT c FROM t']);
  });
});
