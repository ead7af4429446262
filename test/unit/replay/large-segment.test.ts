import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PageHashTable } from '../../../src/format/rolling-checksum.js';
import { encodeSegment, segmentChecksum, type PageImage, type SegmentHeaderInput } from '../../../src/format/segment-codec.js';
import { applyLargeSegment, type LargeApplyOutcome } from '../../../src/replay/large-segment.js';
import { scanPageHashes } from '../../../src/replay/local-copy.js';
import { makePages, Prng } from '../../support/golden-segments.js';

/**
 * applyLargeSegment (src/replay/large-segment.ts): a segment applied from its file, chunk by chunk,
 * must leave the file and the page hash table exactly as applying its decoded pages whole does,
 * and must refuse, before writing anything, whatever decodeSegment or a run would refuse.
 */
const PAGE_SIZE = 1024;
const DATABASE_ID = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';
const work = mkdtempSync(path.join(tmpdir(), 'litebase-large-segment-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
let files = 0;

/** A database file of `pages`, its hash table, and segment `segment` written to a file of its own. */
async function setUp(
  pages: Buffer[],
  segment: { header: Partial<SegmentHeaderInput> & { databaseSizePages: number }; pages: PageImage[] },
): Promise<{ database: string; segmentFile: string; hashes: PageHashTable; bytes: Buffer }> {
  const database = path.join(work, `db-${++files}.sqlite`);
  writeFileSync(database, Buffer.concat(pages));
  const hashes = await scanPageHashes(database, PAGE_SIZE);
  const bytes = encodeSegment(
    {
      databaseId: DATABASE_ID,
      term: 1n,
      position: 8n,
      commitTimeMs: 1,
      pageSize: PAGE_SIZE,
      transactionCount: 1,
      preChecksum: hashes.checksum,
      postChecksum: 0n,
      ...segment.header,
    },
    segment.pages,
  );
  const segmentFile = path.join(work, `seg-${files}.seg`);
  writeFileSync(segmentFile, bytes);
  return { database, segmentFile, hashes, bytes };
}

async function apply(
  database: string,
  segmentFile: string,
  hashes?: PageHashTable,
  checksum = hashes?.checksum ?? 0n,
): Promise<LargeApplyOutcome> {
  const fd = openSync(database, 'r+');
  try {
    return await applyLargeSegment(fd, segmentFile, { databaseId: DATABASE_ID, position: 8n, checksum }, hashes);
  } finally {
    closeSync(fd);
  }
}

/** What the segment does to the file, page by page, computed without the code under test. */
function expectedFile(before: Buffer[], written: PageImage[], databaseSizePages: number): Buffer {
  const pages = before.slice(0, databaseSizePages);
  while (pages.length < databaseSizePages) pages.push(Buffer.alloc(PAGE_SIZE));
  for (const { pageNumber, data } of written) pages[pageNumber - 1] = data;
  return Buffer.concat(pages);
}

describe('applyLargeSegment', () => {
  it('leaves the file and the hash table as the whole segment would, growing and shrinking', async () => {
    const prng = new Prng(14);
    const before = makePages(
      prng,
      Array.from({ length: 600 }, (_, i) => i + 1),
      PAGE_SIZE,
    ).map((page) => page.data);
    // Grows from 600 to 1,500 pages with gaps (which read as zeros), over several chunks of 256.
    const growing = makePages(prng, [1, 5, ...Array.from({ length: 700 }, (_, i) => 590 + i), 1400], PAGE_SIZE);
    // Shrinks to 450 pages, writing some below the cut.
    const shrinking = makePages(prng, [2, 3, ...Array.from({ length: 300 }, (_, i) => 100 + i)], PAGE_SIZE);
    for (const [written, size] of [
      [growing, 1500],
      [shrinking, 450],
    ] as const) {
      const { database, segmentFile, hashes } = await setUp(before, { header: { databaseSizePages: size }, pages: written });
      const outcome = await apply(database, segmentFile, hashes);
      expect(outcome).toMatchObject({ kind: 'applied', schemaPageWritten: written[0]?.pageNumber === 1 });
      expect(readFileSync(database).equals(expectedFile(before, written, size))).toBe(true);
      // The table followed page by page: the same as hashing the whole file afresh.
      const scanned = await scanPageHashes(database, PAGE_SIZE);
      expect([hashes.checksum, hashes.databaseSizePages]).toEqual([scanned.checksum, size]);
      for (const pageNumber of [1, 2, 450, 451, 600, 601, 1399, 1400, 1500]) {
        expect(hashes.hashOf(pageNumber), `page ${pageNumber}`).toBe(scanned.hashOf(pageNumber));
      }
    }
  });

  it('writes nothing when the segment is not the next one of this database, or when it is damaged', async () => {
    const prng = new Prng(15);
    const before = makePages(prng, [1, 2, 3], PAGE_SIZE).map((page) => page.data);
    const written = makePages(
      prng,
      Array.from({ length: 300 }, (_, i) => i + 1),
      PAGE_SIZE,
    );
    const { database, segmentFile, hashes, bytes } = await setUp(before, { header: { databaseSizePages: 300 }, pages: written });
    const original = readFileSync(database);
    expect(await apply(database, segmentFile, hashes, hashes.checksum ^ 1n)).toEqual({ kind: 'diverged', preChecksum: hashes.checksum });
    const fd = openSync(database, 'r+');
    try {
      expect(await applyLargeSegment(fd, segmentFile, { databaseId: DATABASE_ID, position: 9n, checksum: hashes.checksum })).toMatchObject({
        kind: 'corrupt',
        code: 'LOG_FOREIGN_SEGMENT',
      });
    } finally {
      closeSync(fd);
    }
    const flipped = Buffer.from(bytes);
    flipped[500]! ^= 1;
    writeFileSync(segmentFile, flipped);
    expect(await apply(database, segmentFile, hashes)).toMatchObject({ kind: 'corrupt', code: 'SEGMENT_CHECKSUM_MISMATCH' });
    rmSync(segmentFile);
    expect(await apply(database, segmentFile, hashes)).toEqual({ kind: 'missing' });
    expect(readFileSync(database).equals(original)).toBe(true);
  });

  it('says the copy is damaged when a chunk past the first is bad under a right trailer', async () => {
    const prng = new Prng(16);
    const written = makePages(
      prng,
      Array.from({ length: 600 }, (_, i) => i + 1),
      PAGE_SIZE,
    );
    const { database, segmentFile, hashes, bytes } = await setUp([], { header: { databaseSizePages: 600 }, pages: written });
    // The last chunk's page count says 255 pages where 88 are: caught only when that chunk is read.
    const damaged = Buffer.from(bytes);
    let lastChunk = 96; // chunks follow the 96-byte header: 12-byte chunk header, then the payload
    for (let chunk = 0; chunk < 2; chunk++) lastChunk += 12 + damaged.readUInt32BE(lastChunk + 8);
    expect(damaged.readUInt32BE(lastChunk)).toBe(88);
    damaged.writeUInt32BE(255, lastChunk);
    segmentChecksum(damaged.subarray(0, damaged.length - 8)).copy(damaged, damaged.length - 8);
    writeFileSync(segmentFile, damaged);
    expect(await apply(database, segmentFile, hashes)).toMatchObject({ kind: 'damaged', code: 'SEGMENT_CORRUPT' });
  });
});
