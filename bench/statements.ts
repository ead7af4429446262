/**
 * What statement metrics (src/engine/statement-stats.ts) cost a request: a point SELECT run through
 * the engine's executor (`runStatement`, the statement cache warm) with and without recording,
 * in this process, no HTTP. `npm run bench -- statements`.
 *
 * Each request's body is parsed from JSON, as the server does, so the SQL text is a new string
 * every time and the fingerprint cache pays for hashing it, as it does in a real request. The two
 * variants alternate in rounds and the median per-statement time of each is reported, with the
 * median of the rounds' differences: the cost of recording. Also reported: a fingerprint cache hit, and a first sight
 * (tokenize, normalize, hash) of a statement.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { runStatement, StatementCache, type StatementInput, type StatementRun } from '../src/engine/executor.js';
import { ResultBudget } from '../src/engine/result-limits.js';
import { FingerprintCache, normalizeStatement } from '../src/engine/statement-fingerprint.js';
import { StatementStats } from '../src/engine/statement-stats.js';

const LIMITS = { maxResultRows: 100_000, maxResultBytes: 32 * 1024 * 1024, statementTimeoutMs: 10_000 };
const ROWS = 10_000;
const PER_ROUND = 100_000;
const ROUNDS = 11;

export interface StatementsReport {
  benchmark: 'statements';
  /** Median ns per point SELECT through runStatement, without and with statement metrics. */
  point_read_ns_without: number;
  point_read_ns_with: number;
  /** The difference: what recording one statement costs (timing, fingerprint lookup, counts, sketch). */
  recording_ns_per_statement: number;
  fingerprint_hit_ns: number;
  fingerprint_miss_ns: number;
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

function nsPer(count: number, body: (i: number) => void): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) body(i);
  return Number(process.hrtime.bigint() - start) / count;
}

export function runStatementsBenchmark(): { report: StatementsReport; table: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'litebase-bench-statements-'));
  try {
    const file = path.join(dir, 'bench.sqlite');
    const writer = new Database(file);
    writer.pragma('journal_mode = WAL');
    writer.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT)');
    const insert = writer.prepare('INSERT INTO t(id, a, b) VALUES (?, ?, ?)');
    writer.transaction(() => {
      for (let id = 1; id <= ROWS; id++) insert.run(id, id * 7, `row ${id}`);
    })();
    const reader = new Database(file, { readonly: true });
    const cache = new StatementCache(reader);
    const stats = new StatementStats();
    const bodies = Array.from({ length: 64 }, (_, i) =>
      JSON.stringify({ statements: [{ sql: 'SELECT id, a, b FROM t WHERE id = ?', params: [1 + ((i * 131) % ROWS)] }] }),
    );

    const request = (i: number, record: boolean): void => {
      const body = JSON.parse(bodies[i & 63] as string) as { statements: StatementInput[] };
      const statement = body.statements[0] as StatementInput;
      const run: StatementRun = { admin: false, budget: new ResultBudget(LIMITS) };
      if (record) run.samples = [];
      runStatement(cache, reader, statement, 0, run);
      if (run.samples) stats.record('bench', run.samples);
    };

    // Warm up both paths (JIT, statement cache, fingerprint cache).
    nsPer(PER_ROUND, (i) => request(i, false));
    nsPer(PER_ROUND, (i) => request(i, true));
    const without: number[] = [];
    const withMetrics: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      without.push(nsPer(PER_ROUND, (i) => request(i, false)));
      withMetrics.push(nsPer(PER_ROUND, (i) => request(i, true)));
    }

    const fingerprints = new FingerprintCache();
    const sqlBodies = Array.from({ length: 64 }, () => JSON.stringify('SELECT id, a, b FROM t WHERE id = ? AND b IN (1, 2, 3)'));
    fingerprints.fingerprint(JSON.parse(sqlBodies[0] as string) as string);
    const parseOnly = median(Array.from({ length: ROUNDS }, () => nsPer(PER_ROUND, (i) => JSON.parse(sqlBodies[i & 63] as string))));
    const hit = median(
      Array.from({ length: ROUNDS }, () =>
        nsPer(PER_ROUND, (i) => fingerprints.fingerprint(JSON.parse(sqlBodies[i & 63] as string) as string)),
      ),
    );
    const miss = median(
      Array.from({ length: ROUNDS }, (_, round) =>
        nsPer(10_000, (i) => normalizeStatement(`SELECT id, a, b FROM t${round}_${i} WHERE id = ? AND b IN (1, 2, 3)`)),
      ),
    );
    reader.close();
    writer.close();

    const report: StatementsReport = {
      benchmark: 'statements',
      point_read_ns_without: Math.round(median(without)),
      point_read_ns_with: Math.round(median(withMetrics)),
      // Rounds alternate, so each pair saw the same machine load: the median of their differences.
      recording_ns_per_statement: Math.round(median(withMetrics.map((ns, round) => ns - (without[round] as number)))),
      fingerprint_hit_ns: Math.round(hit - parseOnly),
      fingerprint_miss_ns: Math.round(miss),
    };
    const table = [
      'statement metrics, per point SELECT through runStatement (median of 11 rounds of 100,000; JSON.parse of the body included in both):',
      `  without metrics             ${report.point_read_ns_without} ns`,
      `  with metrics                ${report.point_read_ns_with} ns`,
      `  cost of recording           ${report.recording_ns_per_statement} ns per statement`,
      `  fingerprint, cache hit      ${report.fingerprint_hit_ns} ns (a new SQL string each time)`,
      `  fingerprint, first sight    ${report.fingerprint_miss_ns} ns (tokenize, normalize, SHA-256)`,
    ].join('\n');
    return { report, table };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
