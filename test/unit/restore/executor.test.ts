import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadArchiveIndex } from '../../../src/archive/archive-index.js';
import { bundleKey, checkpointKey } from '../../../src/archive/archive-keys.js';
import { BundleWriter } from '../../../src/archive/bundle-writer.js';
import { BundleFormatError, openBundle, PageMajorBundle } from '../../../src/format/bundle-codec.js';
import { writeCheckpointFromFile } from '../../../src/replay/checkpoints.js';
import { pageHash, PageHashTable } from '../../../src/format/rolling-checksum.js';
import { encodeSegment, type PageImage } from '../../../src/format/segment-codec.js';
import { executeRestore } from '../../../src/restore/executor.js';
import { planRestore, type RestoreTarget } from '../../../src/restore/planner.js';
import { catalogFromIndex } from '../../../src/restore/sources.js';
import { openObjectStore } from '../../../src/storage/open-object-store.js';
import { Prng } from '../../support/golden-segments.js';

/**
 * Bundles of format 2 (page-major, docs/FORMAT.md §11.1) and the newest-first restore over them
 * (§11.4), against an in-memory model of a database: a random history whose pages are rewritten
 * many times (deep reverse-delta chains), whose size grows, shrinks and grows again without
 * rewriting every page (zero pages), archived as bundles of both formats and one checkpoint; every
 * segment read back from its bundle must be the segment written, and restores to many positions
 * and times, hashing on a worker thread and on the calling one, must give the model's bytes and checksum.
 */
const ID = '7d444840-9dc0-11d1-b245-5ffdce74fad2';
const PAGE = 512;
const work = mkdtempSync(path.join(tmpdir(), 'litebase-bundle-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface ModelSegment {
  bytes: Buffer;
  pages: PageImage[];
  position: bigint;
  timeMs: number;
  sizePages: number;
  /** The database after this segment: page images 1..size. */
  state: Buffer[];
  checksum: bigint;
}

function history(seed: number, count: number, timeOf = (position: number): number => 1_000_000 + 10 * position): ModelSegment[] {
  const prng = new Prng(seed);
  const db: Buffer[] = [];
  const hashes = new PageHashTable(PAGE);
  const segments: ModelSegment[] = [];
  let size = 0;
  for (let i = 1; i <= count; i++) {
    const pre = hashes.checksum;
    // Mostly growth; now and then a shrink, and growth past pages never written again (zeros).
    const roll = prng.below(20);
    const newSize = roll === 0 ? Math.max(1, size - prng.between(1, 10)) : roll === 1 ? size + prng.between(1, 8) : size + prng.below(3);
    const written = new Set<number>([1]);
    if (newSize > 1) for (let k = prng.below(6); k > 0; k--) written.add(prng.between(1, Math.min(newSize, 12))); // hot pages: long chains
    for (let k = prng.below(4); k > 0; k--) if (newSize > 0) written.add(prng.between(1, newSize));
    if (roll !== 1) for (let p = size + 1; p <= newSize; p++) written.add(p);
    const pages: PageImage[] = [...written]
      .filter((p) => p <= newSize)
      .sort((a, b) => a - b)
      .map((pageNumber) => {
        const data = Buffer.alloc(PAGE);
        // Compressible, different from the previous image in a few places.
        const previous = db[pageNumber - 1];
        if (previous) previous.copy(data);
        else data.fill(pageNumber % 251);
        for (let k = prng.between(1, 40); k > 0; k--) data[prng.below(PAGE)] = prng.below(256);
        return { pageNumber, data };
      });
    db.length = newSize;
    for (let p = size + 1; p <= newSize; p++) db[p - 1] = Buffer.alloc(PAGE); // grown: zeros until written
    for (const { pageNumber, data } of pages) db[pageNumber - 1] = data;
    hashes.apply(pages.map(({ pageNumber, data }) => ({ pageNumber, hash: pageHash(pageNumber, data) })), newSize);
    size = newSize;
    const header = {
      databaseId: ID,
      term: 1n,
      position: BigInt(i),
      commitTimeMs: timeOf(i),
      pageSize: PAGE,
      databaseSizePages: newSize,
      transactionCount: 1,
      preChecksum: pre,
      postChecksum: hashes.checksum,
    };
    segments.push({
      bytes: encodeSegment(header, pages),
      pages,
      position: BigInt(i),
      timeMs: header.commitTimeMs,
      sizePages: newSize,
      state: db.map((page) => Buffer.from(page as Buffer)),
      checksum: hashes.checksum,
    });
  }
  return segments;
}

async function writeBundle(file: string, segments: readonly ModelSegment[]): Promise<void> {
  const writer = await BundleWriter.create(file);
  for (const segment of segments) writer.append(segment.bytes);
  await writer.finish();
}

function writeLegacyBundle(file: string, segments: readonly ModelSegment[]): void {
  const parts: Buffer[] = [];
  for (const { bytes } of segments) {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    parts.push(length, bytes);
  }
  writeFileSync(file, Buffer.concat(parts));
}

describe('bundles of format 2', () => {
  it('give back every segment exactly, and refuse damage with the key named', async () => {
    const segments = history(11, 300);
    const file = path.join(work, 'roundtrip.seg');
    await writeBundle(file, segments);
    const bytes = readFileSync(file);
    const bundle = openBundle(bytes, 'k/roundtrip', { first: 1n, last: 300n, databaseId: ID }) as PageMajorBundle;
    expect(bundle).toBeInstanceOf(PageMajorBundle);
    for (const [index, segment] of segments.entries()) {
      const header = bundle.headers[index];
      expect(header?.position).toBe(segment.position);
      expect(header?.postChecksum).toBe(segment.checksum);
      expect(header?.pageCount).toBe(segment.pages.length);
      const pages = bundle.segmentPages(index);
      expect(pages.map((page) => page.pageNumber)).toEqual(segment.pages.map((page) => page.pageNumber));
      pages.forEach((page, k) => expect(page.data.equals(segment.pages[k]?.data as Buffer), `segment ${segment.position} page ${page.pageNumber}`).toBe(true));
    }
    // Pages rewritten in every segment cost a delta each, not a page: far below the segments' size.
    expect(bytes.length).toBeLessThan(segments.reduce((sum, s) => sum + s.bytes.length, 0) / 2);
    // The header and tables are checked on open, the trailer too unless told not to; then each
    // payload as it is decoded.
    const dataStart = 64 + 48 * 300 + 20 * bytes.readUInt32BE(40) + 20 * bytes.readUInt32BE(44) + 12 * bytes.readUInt32BE(48);
    for (const offset of [10, 70, dataStart - 3]) {
      const damaged = Buffer.from(bytes);
      damaged[offset]! ^= 0x40;
      expect(() => openBundle(damaged, 'k/damaged', { first: 1n, last: 300n, whole: false })).toThrow(BundleFormatError);
      expect(() => openBundle(damaged, 'k/damaged', { first: 1n, last: 300n, whole: false })).toThrow(/k\/damaged: the header or tables are damaged|k\/damaged: not a format 2/);
    }
    for (const offset of [dataStart + 30, Math.floor((dataStart + bytes.length) / 2), bytes.length - 20]) {
      const damaged = Buffer.from(bytes);
      damaged[offset]! ^= 0x40;
      expect(() => openBundle(damaged, 'k/whole', { first: 1n, last: 300n })).toThrow(/k\/whole: trailer checksum mismatch/);
      const opened = openBundle(damaged, 'k/data', { first: 1n, last: 300n, whole: false }) as PageMajorBundle;
      expect(() => {
        for (let index = 0; index < 300; index++) opened.segmentPages(index);
      }, `offset ${offset}`).toThrow(/k\/data: /);
    }
    expect(() => openBundle(bytes.subarray(0, bytes.length - 1), 'k/cut', { first: 1n, last: 300n })).toThrow(/k\/cut/);
    expect(() => openBundle(bytes, 'k/name', { first: 1n, last: 299n })).toThrow(/its name says 1..299/);
  });
});

describe('newest-first restore', () => {
  it('restores every kind of point exactly, hashing on a worker thread or not, across both bundle formats and a checkpoint', async () => {
    const segments = history(29, 700);
    const storeDir = path.join(work, 'store');
    const store = openObjectStore(pathToFileURL(storeDir).href);
    const at = (position: number): ModelSegment => segments[position - 1] as ModelSegment;
    // Format 1 for 1..90 (an archive written before format 2), format 2 after, in uneven bundles.
    const cuts = [0, 90, 91, 250, 400, 401, 560, 700];
    for (let i = 0; i + 1 < cuts.length; i++) {
      const first = (cuts[i] as number) + 1;
      const last = cuts[i + 1] as number;
      const file = path.join(work, `b-${first}.seg`);
      if (i === 0) writeLegacyBundle(file, segments.slice(first - 1, last));
      else await writeBundle(file, segments.slice(first - 1, last));
      await store.putFile(bundleKey('app', ID, BigInt(first), BigInt(last)), file);
    }
    // A checkpoint at 333, from a file holding the model's pages there.
    const checkpointAt = at(333);
    const source = path.join(work, 'db-333');
    writeFileSync(source, Buffer.concat(checkpointAt.state));
    const checkpointFile = path.join(work, 'c-333.ckpt');
    await writeCheckpointFromFile(checkpointFile, source, {
      databaseId: ID,
      term: 1n,
      position: 333n,
      commitTimeMs: checkpointAt.timeMs,
      pageSize: PAGE,
      databaseSizePages: checkpointAt.sizePages,
      checksum: checkpointAt.checksum,
    });
    await store.putFile(checkpointKey('app', ID, 333n), checkpointFile);
    const { index } = await loadArchiveIndex(store, 'app', ID, {});
    expect(index.bundles).toHaveLength(cuts.length - 1);
    expect(index.checkpoints).toHaveLength(1);
    const catalog = catalogFromIndex(index);

    const targets: Array<[RestoreTarget, number]> = [];
    for (const position of [1, 2, 89, 90, 91, 92, 150, 250, 251, 332, 333, 334, 399, 400, 401, 402, 480, 559, 560, 561, 650, 699, 700]) {
      targets.push([{ position: BigInt(position) }, position]);
    }
    for (const position of [45, 333, 345, 698]) targets.push([{ timeMs: at(position).timeMs + 5 }, position]);
    let run = 0;
    for (const hashThread of [false, true]) {
      for (const [target, position] of targets) {
        const plan = planRestore(catalog, target);
        const output = path.join(work, `restored-${run++}.sqlite`);
        // With threads, every bundle step is decoded and written on the page-writing threads.
        const outcome = await executeRestore(plan, output, { workDir: path.join(work, `w-${run}`), store, hashThread, threadWriteMinBytes: 0 });
        const expected = at(position);
        const what = `hash thread ${hashThread}, target ${JSON.stringify(target, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`;
        expect(outcome.position, what).toBe(BigInt(position));
        expect(outcome.checksum, what).toBe(expected.checksum);
        expect(outcome.databaseSizePages, what).toBe(expected.sizePages);
        expect(readFileSync(output).equals(Buffer.concat(expected.state)), what).toBe(true);
        expect(outcome.hashes().checksum, what).toBe(expected.checksum);
        rmSync(output);
      }
    }
    await store.close();
  }, 120_000);

  it('stops before the first segment committed after a time, even in an older bundle (a clock that stepped back)', async () => {
    // Segment 50 carries a time far ahead (a Primary whose clock was wrong, then a failover).
    const timeOf = (position: number): number => 1_000_000 + 10 * (position === 50 ? 90 : position);
    const segments = history(17, 100, timeOf);
    const storeDir = path.join(work, 'store-clock');
    const store = openObjectStore(pathToFileURL(storeDir).href);
    for (const [first, last] of [[1, 60], [61, 100]] as const) {
      const file = path.join(work, `clock-${first}.seg`);
      await writeBundle(file, segments.slice(first - 1, last));
      await store.putFile(bundleKey('app', ID, BigInt(first), BigInt(last)), file);
    }
    const { index } = await loadArchiveIndex(store, 'app', ID, {});
    const plan = planRestore(catalogFromIndex(index), { timeMs: timeOf(70) + 5 });
    const output = path.join(work, 'clock.sqlite');
    const outcome = await executeRestore(plan, output, { workDir: path.join(work, 'w-clock'), store });
    const expected = segments[48] as ModelSegment;
    expect(outcome.position).toBe(49n);
    expect(outcome.checksum).toBe(expected.checksum);
    expect(readFileSync(output).equals(Buffer.concat(expected.state))).toBe(true);
    await store.close();
  });

  it('refuses a damaged bundle, naming it', async () => {
    const segments = history(5, 200);
    const storeDir = path.join(work, 'store-damaged');
    const store = openObjectStore(pathToFileURL(storeDir).href);
    const file = path.join(work, 'damaged.seg');
    await writeBundle(file, segments);
    const key = bundleKey('app', ID, 1n, 200n);
    await store.putFile(key, file);
    const { index } = await loadArchiveIndex(store, 'app', ID, {});
    const original = readFileSync(file);
    // In the segment table (checked whenever the bundle is opened), and in the first block (each
    // image handed out is checked: a restore to the end hands out every newest image).
    const dataStart = 64 + 48 * 200 + 20 * original.readUInt32BE(40) + 20 * original.readUInt32BE(44) + 12 * original.readUInt32BE(48);
    for (const [offset, position] of [[64 + 48 * 10 + 40, 150n], [dataStart + 50, 200n]] as const) {
      const bytes = Buffer.from(original);
      bytes[offset]! ^= 0x01;
      await store.put(key, bytes);
      for (const hashThread of [false, true]) {
        const plan = planRestore(catalogFromIndex(index), { position });
        await expect(executeRestore(plan, path.join(work, `damaged-${hashThread}.sqlite`), { workDir: path.join(work, `wd-${hashThread}`), store, hashThread, threadWriteMinBytes: 0 }), `offset ${offset}`).rejects.toMatchObject({
          code: 'ARCHIVE_CORRUPT',
          message: expect.stringContaining(key) as string,
        });
      }
    }
    await store.close();
  });
});
