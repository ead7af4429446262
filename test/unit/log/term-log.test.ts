import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SHARED_STATE_BYTES, sharedState } from '../../../src/cluster/lease-worker.js';
import { decodeSegment, encodeSegment } from '../../../src/format/segment-codec.js';
import {
  decodeRecordFrame,
  decodeTermLogHeader,
  encodeRecordFrame,
  encodeTermLogHeader,
  TERM_LOG_HEADER_SIZE,
  termLogFileName,
} from '../../../src/format/term-log-codec.js';
import { LogDirectory } from '../../../src/log/log-directory.js';
import { appendRecord, releaseTermLog, sealTermLog } from '../../../src/log/term-log-writer.js';
import { readSegmentRun } from '../../../src/log/segment-runs.js';
import { LitebaseError } from '../../../src/errors.js';

/**
 * Term log files (docs/FORMAT.md §1.2) on real files: the codec, the writer (run here on the test's
 * thread; the append threads run the same functions), and the readers' fence: which records a
 * reader accepts while terms change hands, with a deposed Primary still appending.
 */

const DATABASE_ID = '6f1c0b52-3d4e-4a5b-8c6d-7e8f9a0b1c2d';
const folders: string[] = [];
const streams: string[] = [];
afterEach(() => {
  for (const stream of streams.splice(0)) releaseTermLog(stream);
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

interface Shared {
  root: string;
  logDir: string;
  termsDir: string;
}

function sharedFolder(): Shared {
  const root = mkdtempSync(path.join(tmpdir(), 'litebase-tlog-'));
  folders.push(root);
  const logDir = path.join(root, 'databases', 'app', 'log');
  const termsDir = path.join(root, 'cluster', 'terms');
  mkdirSync(logDir, { recursive: true });
  mkdirSync(termsDir, { recursive: true });
  return { root, logDir, termsDir };
}

function claim(shared: Shared, term: number): void {
  writeFileSync(path.join(shared.termsDir, String(term)), '{}', { flag: 'wx' });
}

function reader(shared: Shared, writerTerm?: bigint): LogDirectory {
  return new LogDirectory(shared.logDir, { termsDir: shared.termsDir, ...(writerTerm === undefined ? {} : { writerTerm }) });
}

/** Segments that chain: each one page, its content naming the position and the writer's term. */
class Chain {
  checksum = 0n;
  position = 0n;

  next(term: bigint, fill = 0): Uint8Array {
    this.position += 1n;
    const page = Buffer.alloc(512, Number((this.position * 7n + term) % 251n) + fill);
    const preChecksum = this.checksum;
    this.checksum = (preChecksum * 31n + this.position + term + BigInt(fill)) & 0xffff_ffff_ffffn;
    return encodeSegment(
      {
        databaseId: DATABASE_ID,
        term,
        position: this.position,
        commitTimeMs: 1_700_000_000_000 + Number(this.position),
        pageSize: 512,
        databaseSizePages: 1,
        transactionCount: 1,
        preChecksum,
        postChecksum: this.checksum,
      },
      [{ pageNumber: 1, data: page }],
    );
  }

  /** A second writer's view: the chain as it stood at `position`. */
  fork(): Chain {
    const copy = new Chain();
    copy.checksum = this.checksum;
    copy.position = this.position;
    return copy;
  }
}

function openFence(): SharedArrayBuffer {
  const buffer = new SharedArrayBuffer(SHARED_STATE_BYTES);
  const state = sharedState(buffer);
  state.setRole('primary');
  state.setValidUntilNs(process.hrtime.bigint() + 60_000_000_000n);
  return buffer;
}

function closedFence(): SharedArrayBuffer {
  const buffer = openFence();
  sharedState(buffer).setValidUntilNs(0n);
  return buffer;
}

function writer(name: string): string {
  streams.push(name);
  return name;
}

async function termsOf(log: LogDirectory): Promise<Array<[bigint, bigint]>> {
  const positions = await log.positions();
  const answer: Array<[bigint, bigint]> = [];
  for (const position of positions) answer.push([position, decodeSegment(await log.read(position)).header.term]);
  return answer;
}

describe('the term log codec', () => {
  it('round-trips a header and a frame, and names files so that they sort by position, then term', () => {
    const header = {
      databaseId: DATABASE_ID,
      term: 7n,
      firstPosition: 42n,
      preChecksum: 0xfedc_ba98_7654_3210n,
      createdAtMs: 1_765_000_000_000,
    };
    const bytes = encodeTermLogHeader(header);
    expect(bytes.length).toBe(TERM_LOG_HEADER_SIZE);
    expect(bytes.subarray(0, 4).toString('latin1')).toBe('LBTL');
    expect(decodeTermLogHeader(bytes)).toEqual(header);
    expect(decodeRecordFrame(encodeRecordFrame(104))).toEqual({ kind: 'record', length: 104 });
    expect(decodeRecordFrame(encodeRecordFrame(5_000_000_000))).toEqual({ kind: 'record', length: 5_000_000_000 });
    const names = [termLogFileName(10n, 2n), termLogFileName(9n, 3n), termLogFileName(10n, 11n), termLogFileName(100n, 1n)];
    expect([...names].sort()).toEqual([
      termLogFileName(9n, 3n),
      termLogFileName(10n, 2n),
      termLogFileName(10n, 11n),
      termLogFileName(100n, 1n),
    ]);
  });

  it('refuses a damaged header with TERM_LOG_CORRUPT, and reads any damaged or short frame as no record', () => {
    const bytes = encodeTermLogHeader({ databaseId: DATABASE_ID, term: 1n, firstPosition: 1n, preChecksum: 0n, createdAtMs: 0 });
    for (let offset = 0; offset < bytes.length; offset++) {
      const damaged = Buffer.from(bytes);
      damaged[offset] = (damaged[offset] as number) ^ 0x10;
      expect(() => decodeTermLogHeader(damaged)).toThrow(expect.objectContaining({ code: 'TERM_LOG_CORRUPT' }) as unknown as Error);
    }
    expect(() => decodeTermLogHeader(bytes.subarray(0, 63))).toThrow(LitebaseError);
    const frame = encodeRecordFrame(1000);
    for (let offset = 0; offset < frame.length; offset++) {
      const damaged = Buffer.from(frame);
      damaged[offset] = (damaged[offset] as number) ^ 0x01;
      expect(decodeRecordFrame(damaged)).toEqual({ kind: 'none' });
    }
    expect(decodeRecordFrame(frame.subarray(0, 15))).toEqual({ kind: 'none' });
    expect(decodeRecordFrame(Buffer.alloc(16))).toEqual({ kind: 'none' });
  });
});

describe('term log files', () => {
  it('hold one writer’s segments as records that every reader reads by position, through runs too', async () => {
    const shared = sharedFolder();
    const chain = new Chain();
    const stream = writer('w1');
    const written = [chain.next(1n), chain.next(1n), chain.next(1n)];
    for (const segment of written) appendRecord(stream, shared.logDir, segment, openFence());
    expect(readdirSync(shared.logDir)).toEqual([termLogFileName(1n, 1n)]);
    const log = reader(shared);
    expect(await log.positions()).toEqual([1n, 2n, 3n]);
    expect(new Uint8Array(await log.read(2n))).toEqual(new Uint8Array(written[1] as Uint8Array));
    // Read into the caller's memory (a restore reuses one buffer): the same bytes, in that buffer.
    const reused = Buffer.alloc(1 << 20);
    const into = await log.read(3n, (size) => reused.subarray(0, size));
    expect(into.buffer).toBe(reused.buffer);
    expect(new Uint8Array(into)).toEqual(new Uint8Array(written[2] as Uint8Array));
    expect((await log.readHeader(3n)).position).toBe(3n);
    const run = readSegmentRun(log, { databaseId: DATABASE_ID, position: 0n, checksum: 0n });
    expect(run.segments.map((segment) => segment.header.position)).toEqual([1n, 2n, 3n]);
    expect(run.stop).toEqual({ kind: 'end' });
    expect(await log.size(1n)).toBe(written[0]?.length);
  });

  it('rolls over to a new file past the roll size, created at the next position', async () => {
    const shared = sharedFolder();
    const chain = new Chain();
    const stream = writer('w-roll');
    for (let index = 0; index < 5; index++)
      appendRecord(stream, shared.logDir, chain.next(1n), openFence(), { bytes: 300, segments: Infinity });
    const files = readdirSync(shared.logDir).sort();
    expect(files.length).toBeGreaterThan(1);
    expect(files[0]).toBe(termLogFileName(1n, 1n));
    expect(await reader(shared).positions()).toEqual([1n, 2n, 3n, 4n, 5n]);
  });

  it('never accept a record of a torn tail, and accept it once it is complete', async () => {
    const shared = sharedFolder();
    const chain = new Chain();
    const stream = writer('w-torn');
    appendRecord(stream, shared.logDir, chain.next(1n), openFence());
    const file = path.join(shared.logDir, termLogFileName(1n, 1n));
    const second = chain.next(1n);
    const whole = Buffer.concat([encodeRecordFrame(second.length), second]);
    const log = reader(shared);
    for (const cut of [1, 15, 16, 17, whole.length - 1]) {
      const before = readFileSync(file);
      appendFileSync(file, whole.subarray(0, cut));
      expect(await reader(shared).positions()).toEqual([1n]);
      expect(await log.positions()).toEqual([1n]);
      writeFileSync(file, before);
    }
    appendFileSync(file, whole);
    expect(await log.positions()).toEqual([1n, 2n]);
  });

  it('let a deposed Primary extend nothing that readers accept: its records after the next term’s claim are never accepted', async () => {
    const shared = sharedFolder();
    claim(shared, 1);
    const chain = new Chain();
    const old = writer('old-primary');
    for (let index = 0; index < 3; index++) appendRecord(old, shared.logDir, chain.next(1n), openFence());
    // A replica that followed term 1 so far.
    const tailing = reader(shared);
    expect(await tailing.positions()).toEqual([1n, 2n, 3n]);

    // Term 2 is claimed; the old Primary, paused past its lease, wakes and appends position 4.
    claim(shared, 2);
    const deposed = chain.fork();
    appendRecord(old, shared.logDir, deposed.next(1n), undefined);
    // Nobody accepts it: term 2 exists, and nothing says where term 1's log ends yet.
    expect(await tailing.positions()).toEqual([1n, 2n, 3n]);
    expect(await reader(shared).positions()).toEqual([]);

    // The new Primary reads after its claim: it sees 1..4 (4 was never acknowledged, but it is in
    // the log now) and seals the log of term 1 at 5.
    const primary = reader(shared, 2n);
    expect(await primary.positions()).toEqual([1n, 2n, 3n, 4n]);
    const stream = writer('new-primary');
    sealTermLog(
      stream,
      shared.logDir,
      { databaseId: DATABASE_ID, term: 2n, firstPosition: 5n, preChecksum: deposed.checksum, createdAtMs: 0 },
      openFence(),
    );
    expect(await tailing.positions()).toEqual([1n, 2n, 3n, 4n]);
    expect(await reader(shared).positions()).toEqual([1n, 2n, 3n, 4n]);

    // The old Primary appends 5 and rolls over to a file of its own at 6: both shadowed by term 2.
    appendRecord(old, shared.logDir, deposed.next(1n), undefined);
    appendRecord('old-primary-roll', shared.logDir, deposed.next(1n), undefined);
    streams.push('old-primary-roll');
    expect(readdirSync(shared.logDir)).toContain(termLogFileName(6n, 1n));
    // The new Primary's chain continues from 4, the record it read.
    const own = new Chain();
    own.checksum = decodeSegment(await primary.read(4n)).header.postChecksum;
    own.position = 4n;
    appendRecord(stream, shared.logDir, own.next(2n), openFence());
    appendRecord(stream, shared.logDir, own.next(2n), openFence());
    expect(await termsOf(reader(shared))).toEqual([
      [1n, 1n],
      [2n, 1n],
      [3n, 1n],
      [4n, 1n],
      [5n, 2n],
      [6n, 2n],
    ]);
    expect(await termsOf(tailing)).toEqual(await termsOf(reader(shared)));
    const run = readSegmentRun(reader(shared), { databaseId: DATABASE_ID, position: 0n, checksum: 0n });
    expect(run.segments.map((segment) => segment.header.position)).toEqual([1n, 2n, 3n, 4n, 5n, 6n]);
  });

  it('accept records of a term whose next term was claimed only once a file of a later term seals them', async () => {
    const shared = sharedFolder();
    claim(shared, 1);
    const chain = new Chain();
    const old = writer('t1');
    appendRecord(old, shared.logDir, chain.next(1n), openFence());
    // Term 2 is won by a node that dies before it seals; term 3's Primary seals.
    claim(shared, 2);
    expect(await reader(shared).positions()).toEqual([]);
    claim(shared, 3);
    expect(await reader(shared, 3n).positions()).toEqual([1n]);
    sealTermLog(
      writer('t3'),
      shared.logDir,
      { databaseId: DATABASE_ID, term: 3n, firstPosition: 2n, preChecksum: chain.checksum, createdAtMs: 0 },
      openFence(),
    );
    expect(await reader(shared).positions()).toEqual([1n]);
  });

  it('refuse an append once the lease is gone, before the write or after the fdatasync', () => {
    const shared = sharedFolder();
    const chain = new Chain();
    const stream = writer('w-fence');
    expect(() => appendRecord(stream, shared.logDir, chain.next(1n), closedFence())).toThrow(
      expect.objectContaining({ code: 'ELEASE' }) as unknown as Error,
    );
    expect(readdirSync(shared.logDir)).toEqual([]);
  });

  it('follow segment files with term log files: a log of both reads as one, and segment files past the first record are not the log', async () => {
    const shared = sharedFolder();
    const legacy = new LogDirectory(shared.logDir, { termsDir: shared.termsDir });
    const files = new Chain();
    for (let position = 1n; position <= 3n; position++) writeFileSync(legacy.segmentPath(position), files.next(1n));
    const stray = files.fork();
    writeFileSync(legacy.segmentPath(4n), stray.next(1n, 9));
    const tail = files.fork();
    // A reader that read the segment files first, before term log files existed.
    const early = reader(shared);
    expect(await early.positions()).toEqual([1n, 2n, 3n, 4n]);
    rmSync(legacy.segmentPath(4n));
    claim(shared, 2);
    sealTermLog(
      writer('t2'),
      shared.logDir,
      { databaseId: DATABASE_ID, term: 2n, firstPosition: 4n, preChecksum: tail.checksum, createdAtMs: 0 },
      openFence(),
    );
    appendRecord('t2', shared.logDir, tail.next(2n), openFence());
    writeFileSync(legacy.segmentPath(5n), 'a stray segment file past the term log files');
    const log = reader(shared);
    expect(await log.positions()).toEqual([1n, 2n, 3n, 4n]);
    expect(decodeSegment(await log.read(4n)).header.term).toBe(2n);
    const run = readSegmentRun(log, { databaseId: DATABASE_ID, position: 0n, checksum: 0n });
    expect(run.segments.map((segment) => segment.header.position)).toEqual([1n, 2n, 3n, 4n]);
  });

  it('are removed whole once a checkpoint covers them and the log goes on in a later file', async () => {
    const shared = sharedFolder();
    const chain = new Chain();
    const stream = writer('w-trim');
    for (let index = 0; index < 6; index++)
      appendRecord(stream, shared.logDir, chain.next(1n), openFence(), { bytes: 300, segments: Infinity });
    const log = reader(shared);
    const positions = await log.positions();
    expect(positions).toEqual([1n, 2n, 3n, 4n, 5n, 6n]);
    // Two records a file: [1, 2], [3, 4], [5, 6].
    const before = readdirSync(shared.logDir).sort();
    expect(before).toEqual([termLogFileName(1n, 1n), termLogFileName(3n, 1n), termLogFileName(5n, 1n)]);
    // Checkpointed through 5: the files that hold only positions up to 4 go; 5 stays with 6.
    expect(await log.remove([1n, 2n, 3n, 4n, 5n])).toEqual([1n, 2n, 3n, 4n]);
    expect(readdirSync(shared.logDir)).toEqual([termLogFileName(5n, 1n)]);
    expect(await reader(shared).positions()).toEqual([5n, 6n]);
    expect(await log.positions()).toEqual([5n, 6n]);
    // The file the writer appends to stays, even when all it holds is checkpointed.
    await log.remove(await log.positions());
    expect(readdirSync(shared.logDir)).toContain(before.at(-1));
  });
});
