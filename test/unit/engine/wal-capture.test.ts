import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { WalCapture } from '../../../src/engine/wal-capture.js';
import { pageHash } from '../../../src/format/rolling-checksum.js';
import { mergeTransactions, type WalTransaction } from '../../../src/format/wal-format.js';

/**
 * WalCapture (src/engine/wal-capture.ts) against WAL files that SQLite itself writes, through
 * better-sqlite3 in WAL mode with automatic checkpoints off, as the Primary opens its local copy.
 * What the capture hands out is checked against SQLite's own result: the captured pages, applied
 * in order to an empty file, must give byte for byte the database file SQLite has once it folded
 * its WAL in (wal_checkpoint(TRUNCATE)).
 */
const PAGE_SIZE = 4096;
const work = mkdtempSync(path.join(tmpdir(), 'litebase-wal-capture-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const step of cleanup.splice(0).reverse()) step();
});

let folders = 0;

/** A fresh SQLite file in WAL mode, and a capture on its -wal file. */
function openDatabase(): { db: Database.Database; file: string; capture: WalCapture } {
  const file = path.join(work, `db-${++folders}.sqlite`);
  const db = new Database(file);
  db.pragma(`page_size = ${PAGE_SIZE}`);
  db.pragma('journal_mode = WAL');
  db.pragma('wal_autocheckpoint = 0');
  db.pragma('synchronous = OFF');
  const capture = new WalCapture(`${file}-wal`);
  cleanup.push(() => {
    capture.close();
    if (db.open) db.close();
  });
  return { db, file, capture };
}

/**
 * The database file as the captured transactions describe it: each transaction's frames applied in
 * order, then the file cut to the size its commit frame names. Independent of mergeTransactions.
 */
class CapturedFile {
  private readonly pages = new Map<number, Buffer>();
  private sizePages = 0;

  apply(transactions: readonly WalTransaction[]): void {
    for (const transaction of transactions) {
      for (const frame of transaction.frames) this.pages.set(frame.pageNumber, Buffer.from(frame.page));
      this.sizePages = transaction.databaseSizePages;
      for (const pageNumber of [...this.pages.keys()]) if (pageNumber > this.sizePages) this.pages.delete(pageNumber);
    }
  }

  bytes(): Buffer {
    const out = Buffer.alloc(this.sizePages * PAGE_SIZE);
    for (const [pageNumber, data] of this.pages) data.copy(out, (pageNumber - 1) * PAGE_SIZE);
    return out;
  }
}

/** Fold the WAL into the file (SQLite's truth) and return the file's bytes. */
function checkpointedFile(db: Database.Database, file: string): Buffer {
  const [result] = db.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number; log: number; checkpointed: number }>;
  expect(result).toMatchObject({ busy: 0 });
  return readFileSync(file);
}

function walSalts(file: string): string {
  return readFileSync(`${file}-wal`).subarray(16, 24).toString('hex');
}

function pageCount(db: Database.Database): number {
  return db.pragma('page_count', { simple: true }) as number;
}

describe('WalCapture', () => {
  it('hands out nothing before SQLite wrote a WAL, then one transaction per commit, in commit order', () => {
    const { db, file, capture } = openDatabase();
    // Setting WAL mode on a new file writes no WAL frames yet (and maybe no -wal file at all).
    expect(capture.readCommitted()).toEqual([]);
    expect(capture.bytesConsumed).toBe(0);

    db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
    const first = capture.readCommitted();
    expect(first).toHaveLength(1);
    expect(first[0]!.databaseSizePages).toBe(pageCount(db));
    // Asked again with no commit in between: nothing new.
    expect(capture.readCommitted()).toEqual([]);

    const insert = db.prepare('INSERT INTO t(v) VALUES (?)');
    const sizes: number[] = [];
    for (let i = 0; i < 5; i++) {
      insert.run(`row ${i} `.repeat(200 * (i + 1)));
      sizes.push(pageCount(db));
    }
    const next = capture.readCommitted();
    expect(next.map((transaction) => transaction.databaseSizePages)).toEqual(sizes);
    // Only the last frame of each transaction is a commit frame; every frame holds one whole page.
    for (const transaction of [...first, ...next]) {
      const commitSizes = transaction.frames.map((frame) => frame.commitSize);
      expect(commitSizes.slice(0, -1).every((size) => size === 0)).toBe(true);
      expect(commitSizes.at(-1)).toBe(transaction.databaseSizePages);
      for (const frame of transaction.frames) expect(frame.page.length).toBe(PAGE_SIZE);
    }
    expect(capture.bytesConsumed).toBe(readFileSync(`${file}-wal`).length);

    const captured = new CapturedFile();
    captured.apply([...first, ...next]);
    expect(captured.bytes().equals(checkpointedFile(db, file))).toBe(true);
  });

  it('leaves frames of a transaction that has not committed yet for the call after its commit', () => {
    const { db, file, capture } = openDatabase();
    db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)');
    const captured = new CapturedFile();
    captured.apply(capture.readCommitted());
    // A cache of a few pages makes SQLite spill the transaction's pages into the WAL before COMMIT.
    db.pragma('cache_size = 4');
    const walBefore = readFileSync(`${file}-wal`).length;
    db.exec('BEGIN');
    const insert = db.prepare('INSERT INTO t(v) VALUES (?)');
    for (let i = 0; i < 200; i++) insert.run(Buffer.alloc(1000, i));
    expect(readFileSync(`${file}-wal`).length, 'SQLite spilled frames before the commit').toBeGreaterThan(walBefore);
    expect(capture.readCommitted()).toEqual([]);
    db.exec('COMMIT');
    const committed = capture.readCommitted();
    expect(committed).toHaveLength(1);
    expect(committed[0]!.databaseSizePages).toBe(pageCount(db));
    captured.apply(committed);
    expect(captured.bytes().equals(checkpointedFile(db, file))).toBe(true);
  });

  it('drops the frames of a rolled-back transaction that spilled into the WAL', () => {
    const { db, file, capture } = openDatabase();
    db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)');
    db.prepare('INSERT INTO t(v) VALUES (?)').run(Buffer.alloc(100, 1));
    const captured = new CapturedFile();
    captured.apply(capture.readCommitted());
    db.pragma('cache_size = 4');
    db.exec('BEGIN');
    const insert = db.prepare('INSERT INTO t(v) VALUES (?)');
    for (let i = 0; i < 200; i++) insert.run(Buffer.alloc(1000, i));
    db.exec('ROLLBACK');
    // SQLite overwrites the spilled frames with the next transaction; the capture must take only it.
    db.prepare('INSERT INTO t(v) VALUES (?)').run(Buffer.alloc(100, 2));
    const after = capture.readCommitted();
    expect(after).toHaveLength(1);
    captured.apply(after);
    expect(captured.bytes().equals(checkpointedFile(db, file))).toBe(true);
    expect(db.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 2 });
  });

  it('starts over at the first frame when SQLite restarts the WAL with new salts after a checkpoint', () => {
    const { db, file, capture } = openDatabase();
    db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
    const insert = db.prepare('INSERT INTO t(v) VALUES (?)');
    for (let i = 0; i < 50; i++) insert.run('x'.repeat(3000));
    const captured = new CapturedFile();
    captured.apply(capture.readCommitted());
    const longWal = readFileSync(`${file}-wal`).length;
    const saltsBefore = walSalts(file);

    // RESTART: the WAL is folded in and the next writer starts it again from the top, with new
    // salts, over the old frames (the file keeps its length; the stale frames stay behind).
    const [restart] = db.pragma('wal_checkpoint(RESTART)') as Array<{ busy: number }>;
    expect(restart).toMatchObject({ busy: 0 });
    db.prepare('UPDATE t SET v = ? WHERE id = 7').run('y'.repeat(10));
    expect(walSalts(file)).not.toBe(saltsBefore);
    expect(readFileSync(`${file}-wal`).length).toBe(longWal);
    const afterRestart = capture.readCommitted();
    expect(afterRestart).toHaveLength(1);
    expect(capture.bytesConsumed).toBeLessThan(longWal / 4);
    captured.apply(afterRestart);

    // TRUNCATE: the WAL file shrinks to nothing; the next commit writes a new header and frames.
    db.pragma('wal_checkpoint(TRUNCATE)');
    expect(readFileSync(`${file}-wal`).length).toBe(0);
    expect(capture.readCommitted()).toEqual([]);
    insert.run('z'.repeat(5000));
    insert.run('w'.repeat(50));
    const afterTruncate = capture.readCommitted();
    expect(afterTruncate).toHaveLength(2);
    captured.apply(afterTruncate);

    expect(captured.bytes().equals(checkpointedFile(db, file))).toBe(true);
    const rows = db.prepare('SELECT id, length(v) AS n FROM t WHERE id IN (7, 51, 52) ORDER BY id').all();
    expect(rows).toEqual([
      { id: 7, n: 10 },
      { id: 51, n: 5000 },
      { id: 52, n: 50 },
    ]);
  });

  it('reads a WAL it did not see grow from its first frame, and again after reset()', () => {
    const { db, file, capture } = openDatabase();
    db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
    for (let i = 0; i < 10; i++) db.prepare('INSERT INTO t(v) VALUES (?)').run(`v${i}`);
    // A capture made now (a Primary reopening) takes all eleven committed transactions.
    const late = new WalCapture(`${file}-wal`);
    cleanup.push(() => late.close());
    const all = late.readCommitted();
    expect(all).toHaveLength(11);
    expect(late.bytesConsumed).toBe(readFileSync(`${file}-wal`).length);
    late.reset();
    expect(late.readCommitted().map((transaction) => transaction.databaseSizePages)).toEqual(
      all.map((transaction) => transaction.databaseSizePages),
    );
    // close() releases the descriptor; the next call opens the file again and goes on where it was.
    late.close();
    expect(late.readCommitted()).toEqual([]);
    db.prepare('INSERT INTO t(v) VALUES (?)').run('after close');
    expect(late.readCommitted()).toHaveLength(1);
    expect(capture.readCommitted()).toHaveLength(12);
  });

  it('captures a group larger than the limit in pieces: the net change of the same transactions read whole', async () => {
    const { db, file, capture } = openDatabase();
    db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)');
    const insert = db.prepare('INSERT INTO t(v) VALUES (?)');
    // About 20 MiB of frames (more than one 8 MiB piece of the scan), pages written more than once,
    // and a VACUUM that shrinks the database: its commit frame cuts pages written before it.
    db.transaction(() => {
      for (let i = 0; i < 5000; i++) insert.run(Buffer.alloc(3000, i % 251));
    })();
    db.prepare('UPDATE t SET v = ? WHERE id % 7 = 0').run(Buffer.alloc(2000, 9));
    db.prepare('DELETE FROM t WHERE id > 1000').run();
    db.exec('VACUUM');
    for (let i = 0; i < 20; i++) insert.run(Buffer.alloc(500, i));
    // And a transaction still open, spilled into the WAL: not captured until it commits.
    db.pragma('cache_size = 4');
    db.exec('BEGIN');
    for (let i = 0; i < 200; i++) insert.run(Buffer.alloc(1000, i));

    // A second capture reads the same WAL whole: what the in-memory path would make of it.
    const whole = new WalCapture(`${file}-wal`);
    cleanup.push(() => whole.close());
    const transactions = whole.readCommitted();
    const expected = mergeTransactions(transactions);

    const captured = capture.capture(1024 * 1024);
    if (captured.kind !== 'large') throw new Error('expected a large capture');
    const { large } = captured;
    cleanup.push(() => large.close());
    expect(large.transactionCount).toBe(transactions.length);
    expect(large.databaseSizePages).toBe(expected.databaseSizePages);
    expect(large.databaseSizePages).toBeLessThan(Math.max(...transactions.map((transaction) => transaction.databaseSizePages)));
    expect([...large.pageNumbers]).toEqual(expected.pages.map((page) => page.pageNumber));
    // Read back in odd batches, so runs of neighbouring frames are cut at batch ends.
    let index = 0;
    for await (const batch of large.pages(37)) {
      for (const page of batch) {
        const want = expected.pages[index]!;
        expect(page.pageNumber).toBe(want.pageNumber);
        expect(Buffer.from(page.data).equals(Buffer.from(want.data))).toBe(true);
        expect(large.pageHashes[index]).toBe(pageHash(page.pageNumber, page.data));
        index += 1;
      }
    }
    expect(index).toBe(expected.pages.length);
    large.close();
    // Both captures went exactly as far: to the last commit frame, not into the open transaction.
    expect(capture.bytesConsumed).toBe(whole.bytesConsumed);
    expect(capture.bytesConsumed).toBeLessThan(readFileSync(`${file}-wal`).length);

    db.exec('COMMIT');
    const tail = capture.capture(0);
    if (tail.kind !== 'large') throw new Error('expected a large capture');
    cleanup.push(() => tail.large.close());
    expect(tail.large.transactionCount).toBe(1);
    expect([...tail.large.pageNumbers]).toEqual(mergeTransactions(whole.readCommitted()).pages.map((page) => page.pageNumber));
    // Under the limit, the same capture hands out the transactions themselves.
    insert.run(Buffer.alloc(10, 1));
    const small = capture.capture(1024 * 1024);
    expect(small.kind === 'transactions' ? small.transactions.length : 'large').toBe(1);
  });

  it('answers WAL_READ_FAILED when the WAL cannot be read, and nothing when it is missing', () => {
    const missing = new WalCapture(path.join(work, 'no-such-folder', 'db.sqlite-wal'));
    expect(missing.readCommitted()).toEqual([]);
    // A folder where the WAL should be: opened, but reading it fails.
    const folder = path.join(work, `not-a-wal-${++folders}`);
    mkdirSync(folder);
    const broken = new WalCapture(folder);
    cleanup.push(() => broken.close());
    let failure: unknown;
    try {
      broken.readCommitted();
    } catch (error) {
      failure = error;
    }
    expect(failure).toMatchObject({ code: 'WAL_READ_FAILED', status: 503 });
    expect((failure as Error).message).toContain(folder);
  });
});
