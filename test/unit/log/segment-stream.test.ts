import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  decodeSegment,
  encodeSegment,
  SEGMENT_HEADER_SIZE,
  SEGMENT_TRAILER_SIZE,
  segmentChecksum,
  SegmentFormatError,
  type PageImage,
  type SegmentHeaderInput,
} from '../../../src/format/segment-codec.js';
import { readSegmentFileHeader, SegmentFileReader, SegmentFileWriter } from '../../../src/log/segment-stream.js';
import { GOLDEN_DIR, makePages, Prng } from '../../support/golden-segments.js';

/**
 * The streaming segment container (src/log/segment-stream.ts) against the in-memory codec: the
 * writer must produce the codec's bytes exactly, and the reader must accept and reject exactly what
 * the codec does, with the same codes, yielding the same pages.
 */
const work = mkdtempSync(path.join(tmpdir(), 'litebase-segment-stream-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
let fileCount = 0;
const nextFile = () => path.join(work, `f${++fileCount}.seg`);

async function readAll(file: string): Promise<{ header: SegmentFileReader['header']; pages: PageImage[] }> {
  const reader = await SegmentFileReader.open(file);
  try {
    const pages: PageImage[] = [];
    for await (const chunk of reader.chunks()) {
      expect(chunk.length).toBeLessThanOrEqual(256);
      pages.push(...chunk);
    }
    return { header: reader.header, pages };
  } finally {
    await reader.close();
  }
}

async function outcome<T>(run: () => Promise<T> | T): Promise<{ ok: true; value: T } | { ok: false; code: string }> {
  try {
    return { ok: true, value: await run() };
  } catch (error) {
    if (error instanceof SegmentFormatError) return { ok: false, code: error.code };
    throw error;
  }
}

function randomCase(prng: Prng): { header: SegmentHeaderInput; pages: PageImage[] } {
  const pageSize = prng.pick([512, 1024, 4096, 8192]);
  const databaseSizePages = prng.between(1, 700);
  const count = prng.chance(0.3) ? databaseSizePages : prng.between(0, Math.min(databaseSizePages, 600));
  const numbers = new Set<number>();
  while (numbers.size < count) numbers.add(prng.between(1, databaseSizePages));
  const sorted = [...numbers].sort((a, b) => a - b);
  return {
    header: {
      databaseId: prng.uuid(),
      term: prng.u64(),
      position: prng.u64(),
      commitTimeMs: prng.between(0, 2 ** 31),
      pageSize,
      databaseSizePages,
      transactionCount: prng.between(0, 10),
      preChecksum: prng.u64(),
      postChecksum: prng.u64(),
    },
    pages: makePages(prng, sorted, pageSize),
  };
}

describe('SegmentFileWriter', () => {
  it('writes exactly the bytes encodeSegment produces (random cases, batches of any size)', async () => {
    const prng = new Prng(20261125);
    for (let round = 0; round < 40; round++) {
      const { header, pages } = randomCase(prng);
      const file = nextFile();
      // Every other round as the log writes a streamed segment: compressed on this thread, no file hash.
      const logSegment = round % 2 === 1;
      const writer = await SegmentFileWriter.create(
        file,
        { ...header, pageCount: pages.length },
        logSegment ? { sha256: false, compressOnThisThread: true } : {},
      );
      for (let start = 0; start < pages.length;) {
        const size = prng.between(1, 400);
        await writer.writePages(pages.slice(start, start + size));
        start += size;
      }
      const written = await writer.finish();
      const expected = encodeSegment(header, pages);
      const bytes = readFileSync(file);
      expect(bytes.equals(expected), `round ${round}`).toBe(true);
      expect(written.bytes).toBe(expected.length);
      expect(written.sha256).toBe(logSegment ? '' : createHash('sha256').update(expected).digest('hex'));
    }
  });

  it('refuses pages out of order, of the wrong size, or more or fewer than declared', async () => {
    const header: SegmentHeaderInput = {
      databaseId: '3f2504e0-4f89-41d3-9a0c-0305e82c3301',
      term: 1n,
      position: 9n,
      commitTimeMs: 1,
      pageSize: 512,
      databaseSizePages: 10,
      transactionCount: 0,
      preChecksum: 0n,
      postChecksum: 0n,
    };
    const page = (pageNumber: number, size = 512): PageImage => ({ pageNumber, data: Buffer.alloc(size, pageNumber) });
    const outOfOrder = await SegmentFileWriter.create(nextFile(), { ...header, pageCount: 3 });
    await outOfOrder.writePages([page(2)]);
    await expect(outOfOrder.writePages([page(1)])).rejects.toThrow(/ascending/);
    await outOfOrder.abort();
    const wrongSize = await SegmentFileWriter.create(nextFile(), { ...header, pageCount: 1 });
    await expect(wrongSize.writePages([page(1, 100)])).rejects.toThrow(/bytes/);
    await wrongSize.abort();
    const tooMany = await SegmentFileWriter.create(nextFile(), { ...header, pageCount: 1 });
    await tooMany.writePages([page(1)]);
    await expect(tooMany.writePages([page(2)])).rejects.toThrow(/more than/);
    await tooMany.abort();
    const file = nextFile();
    const tooFew = await SegmentFileWriter.create(file, { ...header, pageCount: 2 });
    await tooFew.writePages([page(1)]);
    await expect(tooFew.finish()).rejects.toThrow(/declares 2/);
    expect(readdirSync(work)).not.toContain(path.basename(file));
    // The file is created exclusively: an existing name is never overwritten.
    const taken = nextFile();
    writeFileSync(taken, 'x');
    await expect(SegmentFileWriter.create(taken, { ...header, pageCount: 0 })).rejects.toMatchObject({ code: 'EEXIST' });
  });
});

describe('SegmentFileReader', () => {
  it('reads every golden fixture to the pages decodeSegment gives', async () => {
    for (const name of readdirSync(GOLDEN_DIR).filter((entry) => entry.endsWith('.seg'))) {
      const file = path.join(GOLDEN_DIR, name);
      const expected = decodeSegment(readFileSync(file));
      const found = await readAll(file);
      expect(found.header, name).toEqual(expected.header);
      expect(found.pages.map((p) => p.pageNumber)).toEqual(expected.pages.map((p) => p.pageNumber));
      found.pages.forEach((p, i) => expect(p.data.equals(expected.pages[i]!.data)).toBe(true));
      expect(await readSegmentFileHeader(file)).toEqual(expected.header);
    }
  });

  it('accepts and rejects exactly what decodeSegment does, with the same codes (mutation fuzz)', async () => {
    const prng = new Prng(7);
    let rejected = 0;
    for (let round = 0; round < 300; round++) {
      const { header, pages } = randomCase(prng);
      const base = encodeSegment(header, pages.slice(0, prng.between(0, Math.min(pages.length, 300))));
      const bytes = Buffer.from(base);
      const kind = prng.below(5);
      let mutated: Buffer = bytes;
      if (kind === 0)
        mutated = bytes.subarray(0, prng.below(bytes.length)); // truncated
      else if (kind === 1)
        bytes[prng.below(bytes.length)]! ^= 1 << prng.below(8); // bit flip, trailer not fixed
      else {
        // Damage the structure, then recompute the trailer so the damage reaches the chunk walk.
        const at = prng.between(SEGMENT_HEADER_SIZE, Math.max(SEGMENT_HEADER_SIZE, bytes.length - SEGMENT_TRAILER_SIZE - 1));
        if (kind === 2 && at < bytes.length - SEGMENT_TRAILER_SIZE) bytes[at]! ^= 0xff;
        if (kind === 3) bytes.writeUInt32BE(prng.u32(), Math.min(at, bytes.length - SEGMENT_TRAILER_SIZE - 4));
        if (kind === 4) bytes.writeUInt32BE(prng.between(0, 300), 56); // page count
        const body = bytes.subarray(0, bytes.length - SEGMENT_TRAILER_SIZE);
        segmentChecksum(body).copy(bytes, bytes.length - SEGMENT_TRAILER_SIZE);
      }
      const file = nextFile();
      writeFileSync(file, mutated);
      const expected = await outcome(() => decodeSegment(mutated));
      const found = await outcome(() => readAll(file));
      if (expected.ok) {
        expect(found.ok, `round ${round}: the codec accepts, the reader says ${found.ok ? '' : found.code}`).toBe(true);
        if (found.ok) expect(found.value.pages.length).toBe(expected.value.pages.length);
      } else {
        rejected += 1;
        expect(found, `round ${round} (kind ${kind})`).toEqual({ ok: false, code: expected.code });
      }
    }
    expect(rejected).toBeGreaterThan(150);
  });

  it('names the file in its errors', async () => {
    const file = nextFile();
    const bytes = encodeSegment(
      {
        databaseId: '3f2504e0-4f89-41d3-9a0c-0305e82c3301',
        term: 1n,
        position: 1n,
        commitTimeMs: 1,
        pageSize: 512,
        databaseSizePages: 1,
        transactionCount: 1,
        preChecksum: 0n,
        postChecksum: 0n,
      },
      [{ pageNumber: 1, data: Buffer.alloc(512, 7) }],
    );
    bytes[120]! ^= 1;
    writeFileSync(file, bytes);
    await expect(SegmentFileReader.open(file, { name: 'databases/app/x/checkpoints/1.ckpt' })).rejects.toThrow(
      /^databases\/app\/x\/checkpoints\/1\.ckpt: trailer checksum mismatch/,
    );
  });
});
