import Database from 'better-sqlite3';
import path from 'node:path';

export type Synchronous = 'NORMAL' | 'FULL';

export interface RawSqliteResult {
  tps: number;
  inserts: number;
  seconds: number;
  /** Read back from SQLite after setting them, so the report states what was in effect. */
  journal_mode: string;
  synchronous: Synchronous;
  transaction: string;
}

/**
 * Single-row INSERTs into a local SQLite file with better-sqlite3, in this process, as a plain app
 * would do them: WAL, one autocommit transaction per INSERT, prepared statement reused. No HTTP, no
 * log, no replication: the figure shows what the storage engine alone costs on this disk.
 * With synchronous=NORMAL a WAL commit is not fsynced (durable against a crash of the process, not
 * of the machine); with FULL every commit is fsynced, which is the closer match to Litebase's promise.
 * This blocks the event loop for `seconds`; it runs while no server is under load.
 */
export function rawSqliteInserts(dir: string, synchronous: Synchronous, seconds: number, payload: string): RawSqliteResult {
  const db = new Database(path.join(dir, `raw-${synchronous.toLowerCase()}.sqlite`));
  try {
    const journalMode = String(db.pragma('journal_mode = WAL', { simple: true }));
    db.pragma(`synchronous = ${synchronous}`);
    const level = Number(db.pragma('synchronous', { simple: true }));
    const expected = synchronous === 'FULL' ? 2 : 1;
    if (level !== expected) throw new Error(`raw SQLite: synchronous is ${level}, expected ${expected} (${synchronous})`);
    db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT)');
    const insert = db.prepare('INSERT INTO t(a, b) VALUES (?, ?)');

    // Half a second unmeasured: page cache, WAL file creation, JIT of the loop.
    const run = (durationNs: bigint, first: number): number => {
      const deadline = process.hrtime.bigint() + durationNs;
      let n = 0;
      for (;;) {
        insert.run(first + n, payload);
        n++;
        // Checking the clock every insert would be measurable next to a ~2 µs INSERT.
        if ((n & 63) === 0 && process.hrtime.bigint() >= deadline) return n;
      }
    };
    const warm = run(500_000_000n, 0);
    const started = process.hrtime.bigint();
    const inserts = run(BigInt(Math.round(seconds * 1e9)), warm);
    const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
    return {
      tps: inserts / elapsed,
      inserts,
      seconds: elapsed,
      journal_mode: journalMode,
      synchronous,
      transaction: 'one autocommit transaction per INSERT, prepared statement',
    };
  } finally {
    db.close();
  }
}
