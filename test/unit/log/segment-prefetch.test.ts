import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LogDirectory } from '../../../src/log/log-directory.js';
import { decodeSegment, encodeSegment, hasValidTrailer, SegmentFormatError } from '../../../src/format/segment-codec.js';
import { batchSource, SegmentPrefetcher } from '../../../src/log/segment-prefetch.js';
import { LARGE_SEGMENT_BYTES, readSegmentRun } from '../../../src/log/segment-runs.js';
import { PageHashTable, pageHash } from '../../../src/format/rolling-checksum.js';
import { Prng } from '../../support/golden-segments.js';

const DATABASE_ID = '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9';
const PAGE_SIZE = 512;

/** `count` chained segments of random pages, as a log folder on disk; returns the folder. */
function writeLog(dir: string, count: number, prng: Prng, from = 1): Buffer[] {
  const table = new PageHashTable(PAGE_SIZE);
  const files: Buffer[] = [];
  for (let position = from; position < from + count; position++) {
    const size = 1 + (position % 7);
    const pages = Array.from({ length: 1 + prng.below(size) }, (_, index) => ({
      pageNumber: index + 1,
      data: Buffer.from(Array.from({ length: PAGE_SIZE }, () => prng.below(256))),
    }));
    const preChecksum = table.checksum;
    table.apply(
      pages.map(({ pageNumber, data }) => ({ pageNumber, hash: pageHash(pageNumber, data) })),
      size,
    );
    const bytes = encodeSegment(
      {
        databaseId: DATABASE_ID,
        term: 1n,
        position: BigInt(position),
        commitTimeMs: 1_700_000_000_000 + position,
        pageSize: PAGE_SIZE,
        databaseSizePages: size,
        transactionCount: 1,
        preChecksum,
        postChecksum: table.checksum,
      },
      pages,
    );
    writeFileSync(new LogDirectory(dir).segmentPath(BigInt(position)), bytes);
    files.push(bytes);
  }
  return files;
}

describe('segment read-ahead workers', () => {
  const dirs: string[] = [];
  const tempLog = (): string => {
    const dir = mkdtempSync(path.join(tmpdir(), 'litebase-prefetch-'));
    dirs.push(dir);
    return dir;
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('check trailers as the codec does: trusting the check never changes what decodes', () => {
    const prng = new Prng(7);
    const files = writeLog(tempLog(), 40, prng);
    let refused = 0;
    for (const file of files) {
      const flipped = Buffer.from(file);
      const at = prng.below(flipped.length);
      flipped[at] = (flipped[at] ?? 0) ^ (1 << prng.below(8));
      for (const bytes of [file, flipped, flipped.subarray(0, prng.below(flipped.length))]) {
        const plain = outcome(() => decodeSegment(bytes));
        if (hasValidTrailer(bytes)) {
          expect(outcome(() => decodeSegment(bytes, { trailerVerified: true }))).toEqual(plain);
        } else {
          refused++;
          expect(plain).toMatch(/^SEGMENT_(CHECKSUM_MISMATCH|TRUNCATED|BAD_MAGIC)$/);
        }
      }
    }
    expect(refused).toBeGreaterThanOrEqual(80);
  });

  it('deliver batches in order, mark a damaged file, and go on from where a short batch ended', async () => {
    const prng = new Prng(11);
    const dir = tempLog();
    const files = writeLog(dir, 35, prng);
    // Damage segment 17: its bytes arrive, flagged, and the codec refuses them.
    const damaged = Buffer.from(files[16] as Buffer);
    damaged[200] = (damaged[200] ?? 0) ^ 0x40;
    writeFileSync(new LogDirectory(dir).segmentPath(17n), damaged);

    const prefetcher = new SegmentPrefetcher(dir, 1n, { count: 10, bytes: 1 << 20, depth: 2 });
    try {
      const seen: bigint[] = [];
      for (;;) {
        const batch = await prefetcher.next();
        if (batch.files.length === 0) break;
        batch.files.forEach((file, index) => {
          const position = batch.first + BigInt(index);
          seen.push(position);
          expect(file.bytes.equals(position === 17n ? damaged : (files[Number(position) - 1] as Buffer))).toBe(true);
          expect(file.trailerVerified).toBe(position !== 17n);
        });
      }
      expect(seen).toEqual(Array.from({ length: 35 }, (_, index) => BigInt(index + 1)));

      // The log grows after the workers found its end: reading goes on from there.
      const more = writeLogAfter(dir, files);
      const batch = await prefetcher.next();
      expect(batch.first).toBe(36n);
      expect(batch.files.map((file) => file.bytes)).toEqual(more.slice(0, batch.files.length));
    } finally {
      await prefetcher.close();
    }
  });

  it('give readSegmentRun the same run as reading the folder, and stop it at a damaged file', async () => {
    const prng = new Prng(23);
    const dir = tempLog();
    const files = writeLog(dir, 30, prng);
    const log = new LogDirectory(dir);
    const start = { databaseId: DATABASE_ID, position: 0n, checksum: 0n };
    const direct = readSegmentRun(log, start);
    const prefetcher = new SegmentPrefetcher(dir, 1n);
    const batch = await prefetcher.next();
    await prefetcher.close();
    const viaWorkers = readSegmentRun(log, start, { segments: batch.files.length, bytes: Infinity }, batchSource(batch));
    expect(viaWorkers.segments.map((segment) => segment.header.position)).toEqual(
      direct.segments.map((segment) => segment.header.position),
    );
    expect(viaWorkers.segments.map((segment) => segment.pages)).toEqual(direct.segments.map((segment) => segment.pages));

    const damaged = Buffer.from(files[9] as Buffer);
    damaged[damaged.length - 1] = (damaged[damaged.length - 1] ?? 0) ^ 1;
    writeFileSync(log.segmentPath(10n), damaged);
    const again = new SegmentPrefetcher(dir, 1n);
    const withDamage = await again.next();
    await again.close();
    const run = readSegmentRun(log, start, { segments: withDamage.files.length, bytes: Infinity }, batchSource(withDamage));
    expect(run.segments).toHaveLength(9);
    expect(run.stop).toMatchObject({ kind: 'corrupt', position: 10n, code: 'SEGMENT_CHECKSUM_MISMATCH' });
  });
});

describe('segments too large to read whole', () => {
  it('end a run before them, in the folder and in a read-ahead batch, by file size or by declared pages', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'litebase-prefetch-large-'));
    try {
      const log = new LogDirectory(dir);
      const small = writeLog(dir, 10, new Prng(5));
      const table = new PageHashTable(PAGE_SIZE);
      for (const bytes of small) {
        const { header, pages } = decodeSegment(bytes);
        table.apply(
          pages.map(({ pageNumber, data }) => ({ pageNumber, hash: pageHash(pageNumber, data) })),
          header.databaseSizePages,
        );
      }
      const append = (position: bigint, pages: Array<{ pageNumber: number; data: Buffer }>, size: number): bigint => {
        const preChecksum = table.checksum;
        table.apply(
          pages.map(({ pageNumber, data }) => ({ pageNumber, hash: pageHash(pageNumber, data) })),
          size,
        );
        const header = { databaseId: DATABASE_ID, term: 1n, position, commitTimeMs: 1, pageSize: PAGE_SIZE, databaseSizePages: size };
        writeFileSync(
          log.segmentPath(position),
          encodeSegment({ ...header, transactionCount: 1, preChecksum, postChecksum: table.checksum }, pages),
        );
        return table.checksum;
      };
      const pages = (count: number, fill: (index: number) => Buffer) =>
        Array.from({ length: count }, (_, index) => ({ pageNumber: index + 1, data: fill(index) }));
      const after10 = table.checksum;
      // 11: a file of more than LARGE_SEGMENT_BYTES (random pages do not compress).
      const fileCount = Math.ceil(LARGE_SEGMENT_BYTES / PAGE_SIZE) + 100;
      const after11 = append(
        11n,
        pages(fileCount, () => randomBytes(PAGE_SIZE)),
        fileCount,
      );
      // 12: a small file whose pages take more than that once decompressed.
      const declaredCount = Math.ceil(LARGE_SEGMENT_BYTES / PAGE_SIZE) + 100;
      const after12 = append(
        12n,
        pages(declaredCount, (index) => Buffer.alloc(PAGE_SIZE, index % 3)),
        declaredCount,
      );
      expect(statSync(log.segmentPath(11n)).size).toBeGreaterThan(LARGE_SEGMENT_BYTES);
      expect(statSync(log.segmentPath(12n)).size).toBeLessThan(LARGE_SEGMENT_BYTES / 8);
      append(
        13n,
        pages(3, () => Buffer.alloc(PAGE_SIZE, 7)),
        declaredCount,
      );

      const start = (position: bigint, checksum: bigint) => ({ databaseId: DATABASE_ID, position, checksum });
      const first = readSegmentRun(log, start(0n, 0n));
      expect([first.segments.length, first.stop]).toEqual([10, { kind: 'limit' }]);
      expect(readSegmentRun(log, start(10n, after10)).stop).toEqual({ kind: 'large', position: 11n, file: log.segmentPath(11n) });
      expect(readSegmentRun(log, start(11n, after11)).stop).toEqual({ kind: 'large', position: 12n, file: log.segmentPath(12n) });
      const last = readSegmentRun(log, start(12n, after12));
      expect([last.segments.map((segment) => segment.header.position), last.stop]).toEqual([[13n], { kind: 'end' }]);

      // The read-ahead threads end a batch before a file that large, and never read it.
      const reading = new SegmentPrefetcher(dir, 1n);
      expect((await reading.next()).files).toHaveLength(10);
      expect((await reading.next()).files).toHaveLength(0);
      await reading.close();
      const fromTwelve = new SegmentPrefetcher(dir, 12n);
      const batch = await fromTwelve.next();
      await fromTwelve.close();
      expect(batch.files).toHaveLength(2);
      const run = readSegmentRun(log, start(11n, after11), { segments: 2, bytes: Infinity, pageBytes: Infinity }, batchSource(batch));
      expect(run.stop).toEqual({ kind: 'large', position: 12n, file: log.segmentPath(12n) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('end a run once its pages take more than pageBytes', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'litebase-prefetch-pages-'));
    try {
      writeLog(dir, 30, new Prng(9));
      const run = readSegmentRun(
        new LogDirectory(dir),
        { databaseId: DATABASE_ID, position: 0n, checksum: 0n },
        {
          segments: 512,
          bytes: Infinity,
          pageBytes: 10 * PAGE_SIZE,
        },
      );
      const pages = run.segments.reduce((sum, segment) => sum + segment.header.pageCount, 0);
      expect(run.stop).toEqual({ kind: 'limit' });
      expect(pages).toBeGreaterThanOrEqual(10);
      expect(pages - (run.segments.at(-1)?.header.pageCount ?? 0)).toBeLessThan(10);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** What decoding gives: the pages, or the error code. */
function outcome(decode: () => ReturnType<typeof decodeSegment>): string | Array<[number, string]> {
  try {
    return decode().pages.map((page) => [page.pageNumber, page.data.toString('hex')]);
  } catch (error) {
    return (error as SegmentFormatError).code;
  }
}

/** Five more segments continuing `files` (same chain), written after the first ones. */
function writeLogAfter(dir: string, files: Buffer[]): Buffer[] {
  const last = decodeSegment(files[files.length - 1] as Buffer).header;
  const more: Buffer[] = [];
  let checksum = last.postChecksum;
  for (let position = last.position + 1n; position <= last.position + 5n; position++) {
    const bytes = encodeSegment(
      {
        databaseId: DATABASE_ID,
        term: 1n,
        position,
        commitTimeMs: 1_700_000_100_000,
        pageSize: PAGE_SIZE,
        databaseSizePages: last.databaseSizePages,
        transactionCount: 1,
        preChecksum: checksum,
        postChecksum: checksum,
      },
      [],
    );
    writeFileSync(new LogDirectory(dir).segmentPath(position), bytes);
    more.push(bytes);
    checksum = last.postChecksum;
  }
  return more;
}
