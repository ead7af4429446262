import { writeFileSync } from 'node:fs';
import { BundleWriter } from '../../src/archive/bundle-writer.js';
import { pageHash, PageHashTable } from '../../src/format/rolling-checksum.js';
import { encodeSegment, type PageImage } from '../../src/format/segment-codec.js';
import { Prng } from './golden-segments.js';

/**
 * An in-memory model of a database's history for archive tests: a random history whose pages are
 * rewritten many times (deep reverse-delta chains), whose size grows, shrinks and grows again
 * without rewriting every page (zero pages). Each segment carries the database as it is after it.
 */
export const ID = '7d444840-9dc0-11d1-b245-5ffdce74fad2';
export const PAGE = 512;

export interface ModelSegment {
  bytes: Buffer;
  pages: PageImage[];
  position: bigint;
  timeMs: number;
  sizePages: number;
  /** The database after this segment: page images 1..size. */
  state: Buffer[];
  checksum: bigint;
}

export function history(seed: number, count: number, timeOf = (position: number): number => 1_000_000 + 10 * position): ModelSegment[] {
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
    hashes.apply(
      pages.map(({ pageNumber, data }) => ({ pageNumber, hash: pageHash(pageNumber, data) })),
      newSize,
    );
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

/** A bundle of format 2 (docs/FORMAT.md §11.1), written by the archive's BundleWriter. */
export async function writeBundle(file: string, segments: readonly ModelSegment[]): Promise<void> {
  const writer = await BundleWriter.create(file);
  for (const segment of segments) writer.append(segment.bytes);
  await writer.finish();
}

/** A bundle of format 1: length-prefixed segments one after another (archives written before format 2). */
export function writeLegacyBundle(file: string, segments: readonly ModelSegment[]): void {
  const parts: Buffer[] = [];
  for (const { bytes } of segments) {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    parts.push(length, bytes);
  }
  writeFileSync(file, Buffer.concat(parts));
}
