import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DurableLog } from '../../../src/engine/durable-log.js';
import { WalCapture } from '../../../src/engine/wal-capture.js';
import type { LitebaseError } from '../../../src/errors.js';
import { PageHashTable } from '../../../src/format/rolling-checksum.js';
import { decodeSegment, encodeSegment, type SegmentHeader } from '../../../src/format/segment-codec.js';
import { LogDirectory } from '../../../src/log/log-directory.js';
import { Metrics } from '../../../src/metrics.js';
import { handOverPageHashes, recoverLocalCopy } from '../../../src/replay/local-copy.js';
import { waitFor } from '../../support/wait.js';

/**
 * DurableLog (src/engine/durable-log.ts), the group commit at the heart of the write path, in this
 * process: a real SQLite file in WAL mode, a real WalCapture, the real append workers writing a
 * real log folder. Nothing is mocked; a failure is made by taking a position first (as another
 * writer would) or by taking the log folder away.
 */
const PAGE_SIZE = 4096;
const DATABASE_ID = '5b0e3c2a-8d4f-4e6a-9b1c-2d3e4f5a6b7c';
const work = mkdtempSync(path.join(tmpdir(), 'litebase-durable-log-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const step of cleanup.splice(0).reverse()) step();
});

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface Writer {
  db: Database.Database;
  capture: WalCapture;
  log: DurableLog;
  metrics: Metrics;
  /** What onFailure was called with. */
  failures: LitebaseError[];
  /** Commit one row and return its sequence number. */
  insert(value: string): number;
}

interface Folder {
  dir: string;
  logDir: string;
  sqliteFile: string;
  stateFile: string;
  logDirectory: LogDirectory;
}

let folders = 0;

/** A database folder laid out as a node's: the shared log (and its checkpoints) and the local copy. */
function newFolder(): Folder {
  const dir = path.join(work, `db-${++folders}`);
  const logDir = path.join(dir, 'shared', 'log');
  mkdirSync(logDir, { recursive: true });
  mkdirSync(path.join(dir, 'shared', 'checkpoints'));
  mkdirSync(path.join(dir, 'local'));
  return {
    dir,
    logDir,
    sqliteFile: path.join(dir, 'local', 'db.sqlite'),
    stateFile: path.join(dir, 'local', 'state.json'),
    logDirectory: new LogDirectory(logDir),
  };
}

/** Open the local SQLite file as the Primary does and put a DurableLog on it. */
function openWriter(
  folder: Folder,
  options: { position?: bigint; hashes?: PageHashTable; maxInFlight?: number; canWrite?: () => boolean; streamSegmentBytes?: number } = {},
): Writer {
  const db = new Database(folder.sqliteFile);
  db.pragma(`page_size = ${PAGE_SIZE}`);
  db.pragma('journal_mode = WAL');
  db.pragma('wal_autocheckpoint = 0');
  db.pragma('synchronous = OFF');
  const capture = new WalCapture(`${folder.sqliteFile}-wal`);
  const failures: LitebaseError[] = [];
  const metrics = new Metrics({ collectDefaults: false });
  const log = new DurableLog(
    {
      database: 'app',
      databaseId: DATABASE_ID,
      pageSize: PAGE_SIZE,
      term: 1n,
      log: folder.logDirectory,
      capture,
      hashes: options.hashes ?? new PageHashTable(PAGE_SIZE),
      position: options.position ?? 0n,
      metrics,
      canWrite: options.canWrite ?? (() => true),
      onFailure: (error) => failures.push(error),
      ...(options.streamSegmentBytes === undefined ? {} : { streamSegmentBytes: options.streamSegmentBytes }),
    },
    options.maxInFlight,
  );
  cleanup.push(() => {
    capture.close();
    if (db.open) db.close();
  });
  // Prepared on first use: the table may not exist yet when the writer opens.
  let insertRow: Database.Statement | undefined;
  return {
    db,
    capture,
    log,
    metrics,
    failures,
    insert(value: string): number {
      insertRow ??= db.prepare('INSERT INTO t(v) VALUES (?)');
      insertRow.run(value);
      return log.noteCommit();
    },
  };
}

/** A writer on a fresh folder whose table `t` exists, durable at position 1. */
async function writerWithTable(options: Parameters<typeof openWriter>[1] = {}): Promise<{ folder: Folder; writer: Writer }> {
  const folder = newFolder();
  const writer = openWriter(folder, options);
  writer.db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
  expect(await writer.log.waitDurable(writer.log.noteCommit())).toBe(1n);
  return { folder, writer };
}

function segmentHeaders(folder: Folder): SegmentHeader[] {
  return segmentFiles(folder).map((name) => decodeSegment(readFileSync(path.join(folder.logDir, name))).header);
}

function segmentFiles(folder: Folder): string[] {
  return readdirSync(folder.logDir)
    .filter((name) => name.endsWith('.seg'))
    .sort();
}

/**
 * Everything in the log folder that is neither a segment, the head file nor an append thread's temp
 * file (`.tmp-append-*`: a spare created ahead for the next segment, or a written segment's temp
 * name, removed right after the answer or, when the folder went away meanwhile, left as garbage that
 * never becomes a segment and is swept by the next writer: src/log/append-thread.ts).
 */
async function strayFiles(folder: Folder): Promise<string[]> {
  const stray = (): string[] =>
    readdirSync(folder.logDir).filter((name) => !name.endsWith('.seg') && name !== 'HEAD' && !name.startsWith('.tmp-append-'));
  await waitFor(() => stray().length === 0, 5000, 'no stray files in the log folder').catch(() => undefined);
  return stray();
}

let looks = 0;

/**
 * The rows of `t` as of `position`, read from the log alone: segments 1..position applied to an
 * empty file (each segment holds whole page images), which SQLite then opens.
 */
function rowsAt(folder: Folder, position: bigint): string[] {
  const image: Buffer[] = [];
  for (let p = 1n; p <= position; p++) {
    const { header, pages } = decodeSegment(readFileSync(folder.logDirectory.segmentPath(p)));
    for (const page of pages) image[page.pageNumber - 1] = Buffer.from(page.data);
    image.length = header.databaseSizePages;
  }
  // A file of its own each time: no -wal of an earlier look can be taken for part of this one.
  const file = path.join(folder.dir, `at-${position}-${++looks}.sqlite`);
  writeFileSync(file, Buffer.concat(Array.from(image, (page) => page ?? Buffer.alloc(PAGE_SIZE))));
  const db = new Database(file, { fileMustExist: true });
  try {
    return (db.prepare('SELECT v FROM t ORDER BY id').all() as Array<{ v: string }>).map((row) => row.v);
  } finally {
    db.close();
  }
}

/** Settle every promise; report each as its position or its error code, in the order given. */
async function outcomes(promises: ReadonlyArray<Promise<bigint>>): Promise<string[]> {
  const settled = await Promise.allSettled(promises);
  return settled.map((result) =>
    result.status === 'fulfilled' ? `position ${result.value}` : `error ${(result.reason as LitebaseError).code}`,
  );
}

describe('DurableLog group commit', () => {
  it('puts transactions committed together into one segment and answers each with its position', async () => {
    const { folder, writer } = await writerWithTable();
    const sequences = ['a', 'b', 'c', 'd', 'e'].map((value) => writer.insert(value));
    expect(sequences).toEqual([2, 3, 4, 5, 6]);
    expect(writer.log.hasPending).toBe(true);
    expect(await Promise.all(sequences.map((sequence) => writer.log.waitDurable(sequence)))).toEqual([2n, 2n, 2n, 2n, 2n]);
    expect(writer.log.hasPending).toBe(false);
    expect(writer.log.position).toBe(2n);

    const headers = segmentHeaders(folder);
    expect(headers.map((header) => [header.position, header.transactionCount])).toEqual([
      [1n, 1],
      [2n, 5],
    ]);
    // The chain: each segment starts from the checksum the one before ended with.
    expect(headers[0]!.preChecksum).toBe(0n);
    expect(headers[1]!.preChecksum).toBe(headers[0]!.postChecksum);
    expect(writer.log.checksum).toBe(headers[1]!.postChecksum);
    expect(rowsAt(folder, 1n)).toEqual([]);
    expect(rowsAt(folder, 2n)).toEqual(['a', 'b', 'c', 'd', 'e']);
    // A sequence already durable is answered at once, with the newest position.
    expect(await writer.log.waitDurable(3)).toBe(2n);
    expect(await strayFiles(folder)).toEqual([]);
  });

  it('sends commits that arrive while a segment is on its way in the next segment, in commit order', async () => {
    // One segment on its way at a time: everything committed meanwhile waits for the next one.
    const { folder, writer } = await writerWithTable({ maxInFlight: 1 });
    const answered: string[] = [];
    const track = (value: string, sequence: number): Promise<bigint> =>
      writer.log.waitDurable(sequence).then((position) => {
        answered.push(`${value}@${position}`);
        return position;
      });
    const first = track('a', writer.insert('a'));
    await tick(); // the flush of 'a' has started
    const rest = ['b', 'c', 'd', 'e'].map((value) => track(value, writer.insert(value)));
    await Promise.all([first, ...rest]);
    expect(answered).toEqual(['a@2', 'b@3', 'c@3', 'd@3', 'e@3']);
    expect(segmentHeaders(folder).map((header) => [header.position, header.transactionCount])).toEqual([
      [1n, 1],
      [2n, 1],
      [3n, 4],
    ]);
    expect(rowsAt(folder, 2n)).toEqual(['a']);
    expect(rowsAt(folder, 3n)).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('keeps several segments on their way at once, writes them at consecutive positions, and answers them in order', async () => {
    const { folder, writer } = await writerWithTable();
    const answered: number[] = [];
    const all: Array<Promise<bigint>> = [];
    // Forty commits in bursts of one to four, a flush between bursts: segments overlap on the way.
    let value = 0;
    for (let burst = 0; burst < 15; burst++) {
      for (let k = 0; k <= burst % 4; k++) {
        const sequence = writer.insert(`v${value++}`);
        all.push(writer.log.waitDurable(sequence).then((position) => (answered.push(sequence), position)));
      }
      await tick();
    }
    const positions = await Promise.all(all);
    // Answered in commit order, with positions that never go down.
    expect(answered).toEqual([...answered].sort((a, b) => a - b));
    expect(positions).toEqual([...positions].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    const headers = segmentHeaders(folder);
    expect(headers.map((header) => header.position)).toEqual(headers.map((_, index) => BigInt(index + 1)));
    expect(headers.reduce((sum, header) => sum + header.transactionCount, 0)).toBe(1 + value);
    for (let i = 1; i < headers.length; i++) expect(headers[i]!.preChecksum).toBe(headers[i - 1]!.postChecksum);
    // Each commit was answered with the position of the segment holding it: its row is there and
    // not in the segment before.
    const seen = new Map<bigint, string[]>();
    const rowsOnce = (position: bigint): string[] => seen.get(position) ?? seen.set(position, rowsAt(folder, position)).get(position)!;
    for (const [index, position] of positions.entries()) {
      expect(rowsOnce(position)).toContain(`v${index}`);
      expect(rowsOnce(position - 1n)).not.toContain(`v${index}`);
    }
  });
});

describe('DurableLog with a group of commits too large to hold in memory', () => {
  /** Rows of about 3 KB: one page each, so `count` of them take about count x 4 KiB of WAL frames. */
  function insertLarge(writer: Writer, from: number, count: number): number {
    const insert = writer.db.prepare('INSERT INTO t(v) VALUES (?)');
    writer.db.transaction(() => {
      for (let i = from; i < from + count; i++) insert.run(`big ${i} `.padEnd(3000, String(i % 10)));
    })();
    return writer.log.noteCommit();
  }

  const streamed = async (writer: Writer): Promise<number> => (await writer.metrics.segmentsStreamed.get()).values[0]?.value ?? 0;

  it('writes it chunk by chunk into the bytes encodeSegment makes, in position order with the segments around it', async () => {
    const { folder, writer } = await writerWithTable({ streamSegmentBytes: 256 * 1024 });
    expect(await writer.log.waitDurable(writer.insert('a'))).toBe(2n);
    const big = writer.log.waitDurable(insertLarge(writer, 0, 700));
    await tick(); // the large segment is being written
    // Committed meanwhile: in the next segment, sent only once the large one is on its way.
    const after = ['b', 'c'].map((value) => writer.log.waitDurable(writer.insert(value)));
    expect(await Promise.all([big, ...after])).toEqual([3n, 4n, 4n]);
    expect(await streamed(writer)).toBe(1);

    const headers = segmentHeaders(folder);
    expect(headers.map((header) => [header.position, header.transactionCount])).toEqual([
      [1n, 1],
      [2n, 1],
      [3n, 1],
      [4n, 2],
    ]);
    for (let i = 1; i < headers.length; i++) expect(headers[i]!.preChecksum).toBe(headers[i - 1]!.postChecksum);
    expect(writer.log.checksum).toBe(headers[3]!.postChecksum);
    // The streamed file is exactly the codec's encoding of its header and pages.
    const file = readFileSync(folder.logDirectory.segmentPath(3n));
    const decoded = decodeSegment(file);
    expect(decoded.pages.length).toBeGreaterThan(700);
    const { formatVersion: _version, pageCount: _count, ...input } = decoded.header;
    expect(encodeSegment(input, decoded.pages).equals(file)).toBe(true);
    const rows = rowsAt(folder, 4n);
    expect(rows).toHaveLength(703);
    expect(rows.slice(0, 2)).toEqual(['a', 'big 0 '.padEnd(3000, '0')]);
    expect(rows.slice(-2)).toEqual(['b', 'c']);
    // The page hashes moved with the pages: a rebuild from the log agrees with the writer.
    writer.capture.close();
    writer.db.close();
    const recovered = await recoverLocalCopy(
      { sqliteFile: folder.sqliteFile, stateFile: folder.stateFile },
      folder.logDirectory,
      DATABASE_ID,
      pino({ level: 'silent' }),
    );
    expect(recovered.hashes.checksum).toBe(headers[3]!.postChecksum);
    expect(await strayFiles(folder)).toEqual([]);
  });

  it('fails every waiting transaction when its position was taken, and leaves no temp file', async () => {
    const { folder, writer } = await writerWithTable({ streamSegmentBytes: 0 });
    writeFileSync(folder.logDirectory.segmentPath(2n), 'segment 2 of another writer');
    const big = writer.log.waitDurable(insertLarge(writer, 0, 100));
    await tick();
    const after = writer.log.waitDurable(writer.insert('b'));
    expect(await outcomes([big, after])).toEqual(['error LOG_POSITION_TAKEN', 'error LOG_POSITION_TAKEN']);
    expect(writer.failures.map((failure) => failure.code)).toEqual(['LOG_POSITION_TAKEN']);
    expect(segmentFiles(folder)).toEqual(['00000000000000000001.seg', '00000000000000000002.seg']);
    // Only the append thread's spare may stay: the streamed segment's temp file was removed.
    await waitFor(
      () => readdirSync(folder.logDir).filter((name) => name.startsWith('.tmp-append-')).length <= 1,
      5000,
      'the streamed temp file to go',
    );
    expect(writer.log.position).toBe(1n);
  });
});

describe('DurableLog when a segment cannot be written', () => {
  it('fails every transaction waiting on a position another writer took, and nothing that was durable', async () => {
    const { folder, writer } = await writerWithTable();
    expect(await writer.log.waitDurable(writer.insert('a'))).toBe(2n);
    const before = segmentFiles(folder).map((name) => readFileSync(path.join(folder.logDir, name)));
    // Another writer links position 3 first (link() refuses an existing name: LOG_POSITION_TAKEN).
    const intruder = Buffer.from('segment 3 of another writer');
    writeFileSync(folder.logDirectory.segmentPath(3n), intruder);

    const inSegment3 = ['b', 'c'].map((value) => writer.log.waitDurable(writer.insert(value)));
    await tick(); // segment 3 is on its way
    const inSegment4 = ['d', 'e'].map((value) => writer.log.waitDurable(writer.insert(value)));
    expect(await outcomes([...inSegment3, ...inSegment4])).toEqual(Array(4).fill('error LOG_POSITION_TAKEN'));
    expect(writer.failures.map((failure) => failure.code)).toEqual(['LOG_POSITION_TAKEN']);

    // Positions 1 and 2 are as they were; 3 is the other writer's; nothing was written after it.
    expect(segmentFiles(folder)).toEqual(['00000000000000000001.seg', '00000000000000000002.seg', '00000000000000000003.seg']);
    expect(before.map((bytes, index) => bytes.equals(readFileSync(folder.logDirectory.segmentPath(BigInt(index + 1)))))).toEqual([
      true,
      true,
    ]);
    expect(readFileSync(folder.logDirectory.segmentPath(3n)).equals(intruder)).toBe(true);
    expect(await strayFiles(folder)).toEqual([]);
    expect(writer.log.position).toBe(2n);
    expect(writer.log.checksum).toBe(decodeSegment(before[1]!).header.postChecksum);
    expect(rowsAt(folder, 2n)).toEqual(['a']);
    // The log stays failed: a later commit is refused at once, with the same error.
    await expect(writer.log.waitDurable(writer.insert('f'))).rejects.toMatchObject({ code: 'LOG_POSITION_TAKEN' });
    expect(writer.failures).toHaveLength(1);
  });

  it('fails the waiting transactions when the log folder is gone, and appends again after the local copy is rebuilt', async () => {
    const { folder, writer } = await writerWithTable();
    expect(await writer.log.waitDurable(writer.insert('a'))).toBe(2n);
    // The shared folder goes away (an unmounted share, say) while commits are waiting.
    renameSync(folder.logDir, `${folder.logDir}.away`);
    const waiting = ['b', 'c', 'd'].map((value) => writer.log.waitDurable(writer.insert(value)));
    expect(await outcomes(waiting)).toEqual(Array(3).fill('error LOG_UNAVAILABLE'));
    expect(writer.failures).toHaveLength(1);
    expect(writer.failures[0]).toMatchObject({ code: 'LOG_UNAVAILABLE', status: 503, retryAfterSeconds: 1 });
    expect(writer.failures[0]!.message).toContain('00000000000000000003.seg');

    // It comes back. The durable positions are all there, nothing else is.
    renameSync(`${folder.logDir}.away`, folder.logDir);
    expect(segmentFiles(folder)).toEqual(['00000000000000000001.seg', '00000000000000000002.seg']);
    expect(await strayFiles(folder)).toEqual([]);

    // Recovery as the Primary does it: the local copy is rebuilt from the log (which drops the
    // local commits of the failed segment), and a new DurableLog starts where the log ends.
    writer.capture.close();
    writer.db.close();
    const recovered = await recoverLocalCopy(
      { sqliteFile: folder.sqliteFile, stateFile: folder.stateFile },
      folder.logDirectory,
      DATABASE_ID,
      pino({ level: 'silent' }),
    );
    expect(recovered.position).toBe(2n);
    expect(recovered.hashes.checksum).toBe(segmentHeaders(folder)[1]!.postChecksum);
    const again = openWriter(folder, { position: recovered.position, hashes: recovered.hashes });
    expect((again.db.prepare('SELECT v FROM t ORDER BY id').all() as Array<{ v: string }>).map((row) => row.v)).toEqual(['a']);
    expect(await again.log.waitDurable(again.insert('f'))).toBe(3n);
    expect(again.failures).toEqual([]);
    const headers = segmentHeaders(folder);
    expect(headers.map((header) => header.position)).toEqual([1n, 2n, 3n]);
    expect(headers[2]!.preChecksum).toBe(headers[1]!.postChecksum);
    expect(again.log.checksum).toBe(headers[2]!.postChecksum);
    expect(rowsAt(folder, 3n)).toEqual(['a', 'f']);
  });

  it('sends nothing once the node may no longer write (its lease is gone)', async () => {
    let leased = true;
    const { folder, writer } = await writerWithTable({ canWrite: () => leased });
    leased = false;
    const waiting = ['a', 'b'].map((value) => writer.log.waitDurable(writer.insert(value)));
    expect(await outcomes(waiting)).toEqual(['error LEASE_LOST', 'error LEASE_LOST']);
    expect(writer.failures.map((failure) => failure.code)).toEqual(['LEASE_LOST']);
    expect(segmentFiles(folder)).toEqual(['00000000000000000001.seg']);
    expect(writer.log.position).toBe(1n);
  });
});

describe('recoverLocalCopy with page hashes handed over (a restore that became the local copy)', () => {
  it('takes hashes handed over for the state it starts from, and hashes the file when they do not match', async () => {
    const { folder, writer } = await writerWithTable();
    for (const value of ['a', 'b', 'c']) await writer.log.waitDurable(writer.insert(value));
    writer.capture.close();
    writer.db.close();
    const paths = { sqliteFile: folder.sqliteFile, stateFile: folder.stateFile };
    const silent = pino({ level: 'silent' });
    const first = await recoverLocalCopy(paths, folder.logDirectory, DATABASE_ID, silent);
    const position = first.position;
    const copy = (): PageHashTable =>
      PageHashTable.fromHashes(
        first.hashes.pageSize,
        BigUint64Array.from({ length: first.hashes.databaseSizePages }, (_, index) => first.hashes.hashOf(index + 1)),
      );

    // The right state: the table handed over is the one the copy keeps, the file is not hashed again.
    const handed = copy();
    handOverPageHashes(folder.sqliteFile, DATABASE_ID, position, handed);
    const taken = await recoverLocalCopy(paths, folder.logDirectory, DATABASE_ID, silent);
    expect(taken.hashes).toBe(handed);
    expect(taken.hashes.checksum).toBe(first.hashes.checksum);

    // Hashes that do not sum to the state's checksum, of another database, or of another position: ignored.
    for (const [databaseId, at, table] of [
      [DATABASE_ID, position, new PageHashTable(first.hashes.pageSize)],
      ['another-database', position, copy()],
      [DATABASE_ID, position - 1n, copy()],
    ] as const) {
      handOverPageHashes(folder.sqliteFile, databaseId, at, table);
      const scanned = await recoverLocalCopy(paths, folder.logDirectory, DATABASE_ID, silent);
      expect(scanned.hashes).not.toBe(table);
      expect(scanned.hashes.checksum).toBe(first.hashes.checksum);
      expect(scanned.position).toBe(position);
    }
    // Used once: the next recovery hashes the file.
    handOverPageHashes(folder.sqliteFile, DATABASE_ID, position, handed);
    await recoverLocalCopy(paths, folder.logDirectory, DATABASE_ID, silent);
    expect((await recoverLocalCopy(paths, folder.logDirectory, DATABASE_ID, silent)).hashes).not.toBe(handed);
  });
});
