import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { compressSync, uncompressSync } from 'lz4-napi';
import { describe, expect, it } from 'vitest';
import {
  decodeSegment,
  decodeSegmentHeader,
  encodeSegment,
  SEGMENT_FORMAT_VERSION,
  SEGMENT_HEADER_SIZE,
  SEGMENT_TRAILER_SIZE,
  segmentChecksum,
  SegmentFormatError,
  type PageImage,
  type SegmentFormatErrorCode,
  type SegmentHeader,
  type SegmentHeaderInput,
} from '../../../src/format/segment-codec.js';
import { LitebaseError } from '../../../src/errors.js';
import {
  databaseChecksum,
  describeGolden,
  expectedHeader,
  GOLDEN_DIR,
  goldenCases,
  listChunks,
  makePages,
  MAX_U32,
  MAX_U64,
  Prng,
  sha256Hex,
  type GoldenDescription,
} from '../../support/golden-segments.js';

const UPDATE_GOLDEN = process.env.UPDATE_GOLDEN === '1';

const baseHeader: SegmentHeaderInput = {
  databaseId: '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
  term: 4n,
  position: 17n,
  commitTimeMs: 1_767_225_600_000,
  pageSize: 512,
  databaseSizePages: 1000,
  transactionCount: 2,
  preChecksum: 0x1111_2222_3333_4444n,
  postChecksum: 0x5555_6666_7777_8888n,
};

function segmentWith(pageNumbers: number[], header: Partial<SegmentHeaderInput> = {}, seed = 1): Buffer {
  const full = { ...baseHeader, ...header };
  return encodeSegment(full, makePages(new Prng(seed), pageNumbers, full.pageSize));
}

/** Replace the trailer with the right checksum, so a test reaches the checks behind it. */
function reseal(bytes: Buffer): Buffer {
  const body = bytes.subarray(0, bytes.length - SEGMENT_TRAILER_SIZE);
  return Buffer.concat([body, segmentChecksum(body)]);
}

/** A copy of `bytes` changed by `edit`, resealed. */
function patched(bytes: Buffer, edit: (copy: Buffer) => void): Buffer {
  const copy = Buffer.from(bytes);
  edit(copy);
  return reseal(copy);
}

/** Header (from baseHeader plus overrides, pageCount as given) + the given body bytes + trailer. */
function assemble(pageCount: number, body: Buffer[], header: Partial<SegmentHeaderInput> = {}): Buffer {
  const head = Buffer.from(encodeSegment({ ...baseHeader, ...header }, []).subarray(0, SEGMENT_HEADER_SIZE));
  head.writeUInt32BE(pageCount, 56);
  const content = Buffer.concat([head, ...body]);
  return Buffer.concat([content, segmentChecksum(content)]);
}

interface ChunkLies {
  pagesInChunk?: number;
  uncompressedLength?: number;
  compressedLength?: number;
}

/** One body chunk holding `pageNumbers` (in the order given), with optional lying lengths. */
function chunk(pageNumbers: number[], pageSize = baseHeader.pageSize, lies: ChunkLies = {}): Buffer {
  const raw = Buffer.concat(
    pageNumbers.map((pageNumber) => {
      const entry = Buffer.alloc(4 + pageSize, pageNumber & 0xff);
      entry.writeUInt32BE(pageNumber, 0);
      return entry;
    }),
  );
  return chunkFromPayload(pageNumbers.length, raw.length, compressSync(raw), lies);
}

function chunkFromPayload(pages: number, uncompressed: number, payload: Buffer, lies: ChunkLies = {}): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt32BE(lies.pagesInChunk ?? pages, 0);
  head.writeUInt32BE(lies.uncompressedLength ?? uncompressed, 4);
  head.writeUInt32BE(lies.compressedLength ?? payload.length, 8);
  return Buffer.concat([head, payload]);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

function decodeError(bytes: Uint8Array, decode: (b: Uint8Array) => unknown = decodeSegment): SegmentFormatError {
  try {
    decode(bytes);
  } catch (error) {
    expect(error).toBeInstanceOf(SegmentFormatError);
    return error as SegmentFormatError;
  }
  throw new Error('expected the decoder to reject the input');
}

function expectRejected(bytes: Uint8Array, code: SegmentFormatErrorCode, message: RegExp): SegmentFormatError {
  const error = decodeError(bytes);
  expect(error.code).toBe(code);
  expect(error.message).toMatch(message);
  expect(error.details.internal).toBeUndefined();
  return error;
}

function sortedCopy(pages: readonly PageImage[]): PageImage[] {
  return [...pages].sort((a, b) => a.pageNumber - b.pageNumber);
}

function expectPagesEqual(actual: readonly PageImage[], expected: readonly PageImage[]): void {
  expect(actual.map((p) => p.pageNumber)).toEqual(expected.map((p) => p.pageNumber));
  actual.forEach((page, i) => expect(page.data.equals(expected[i]?.data ?? Buffer.alloc(0))).toBe(true));
}

describe('golden segments', () => {
  const cases = goldenCases();

  it.runIf(UPDATE_GOLDEN)('regenerates fixtures/segments (UPDATE_GOLDEN=1)', () => {
    mkdirSync(GOLDEN_DIR, { recursive: true });
    for (const golden of cases) {
      const bytes = encodeSegment(golden.header, golden.pages);
      writeFileSync(path.join(GOLDEN_DIR, `${golden.name}.seg`), bytes);
      writeFileSync(path.join(GOLDEN_DIR, `${golden.name}.json`), `${JSON.stringify(describeGolden(golden, bytes), null, 2)}\n`);
    }
  });

  it('has a .seg and a .json for every case and nothing else', () => {
    const expected = cases.flatMap(({ name }) => [`${name}.json`, `${name}.seg`]).sort();
    const present = readdirSync(GOLDEN_DIR)
      .filter((name) => /\.(seg|json)$/.test(name))
      .sort();
    expect(present).toEqual(expected);
  });

  for (const golden of cases) {
    describe(golden.name, () => {
      const segFile = path.join(GOLDEN_DIR, `${golden.name}.seg`);
      const jsonFile = path.join(GOLDEN_DIR, `${golden.name}.json`);
      const load = (): { bytes: Buffer; description: GoldenDescription } => {
        if (!existsSync(segFile))
          throw new Error(`${segFile} is missing: run UPDATE_GOLDEN=1 npx vitest run test/unit/format/segment-codec.test.ts`);
        return {
          bytes: readFileSync(segFile),
          description: JSON.parse(readFileSync(jsonFile, 'utf8')) as GoldenDescription,
        };
      };

      it('encodes byte for byte to the committed .seg file', () => {
        const { bytes } = load();
        const encoded = encodeSegment(golden.header, golden.pages);
        expect(encoded.length).toBe(bytes.length);
        expect(sha256Hex(encoded)).toBe(sha256Hex(bytes));
        expect(encoded.equals(bytes)).toBe(true);
      });

      it('matches the committed .json description', () => {
        const { bytes, description } = load();
        expect(describeGolden(golden, bytes)).toEqual(description);
      });

      it('decodes the committed .seg file to what the .json describes', () => {
        const { bytes, description } = load();
        const { header, pages } = decodeSegment(bytes);
        expect(header).toEqual(expectedHeader(description));
        expect(decodeSegmentHeader(bytes.subarray(0, SEGMENT_HEADER_SIZE))).toEqual(header);
        expect(pages.map(({ pageNumber, data }) => ({ pageNumber, sha256: sha256Hex(data) }))).toEqual(description.pages);
        expect(listChunks(bytes)).toEqual(description.chunks);
      });

      it('is read the same by an independent reader written from docs/FORMAT.md', () => {
        const { bytes, description } = load();
        const read = referenceRead(bytes);
        expect(read.header).toEqual(expectedHeader(description));
        expect(read.pages).toEqual(description.pages);
      });
    });
  }

  it('carries real rolling checksums where the case says so', () => {
    const onePage = cases.find((c) => c.name === 'one-page-4096');
    const twoChunks = cases.find((c) => c.name === 'two-chunks-300-pages');
    expect(onePage && databaseChecksum(onePage.pages, 1, 4096)).toBe(onePage?.header.postChecksum);
    expect(twoChunks && databaseChecksum(twoChunks.pages, 300, 4096)).toBe(twoChunks?.header.postChecksum);
    expect(databaseChecksum([], 0, 4096)).toBe(0n);
  });
});

/**
 * A second, deliberately naive reader that follows docs/FORMAT.md step by step and imports nothing
 * from the codec, so the document, the fixtures and the codec are checked against each other.
 */
function referenceRead(bytes: Buffer): { header: SegmentHeader; pages: Array<{ pageNumber: number; sha256: string }> } {
  const body = bytes.subarray(0, bytes.length - 8);
  expect(bytes.subarray(bytes.length - 8).toString('hex')).toBe(sha256Hex(body).slice(0, 16));
  expect(bytes.toString('ascii', 0, 4)).toBe('LBSG');
  const id = bytes.toString('hex', 8, 24);
  const header: SegmentHeader = {
    formatVersion: bytes.readUInt16BE(4),
    databaseId: [id.slice(0, 8), id.slice(8, 12), id.slice(12, 16), id.slice(16, 20), id.slice(20)].join('-'),
    term: bytes.readBigUInt64BE(24),
    position: bytes.readBigUInt64BE(32),
    commitTimeMs: Number(bytes.readBigUInt64BE(40)),
    pageSize: bytes.readUInt32BE(48),
    databaseSizePages: bytes.readUInt32BE(52),
    pageCount: bytes.readUInt32BE(56),
    transactionCount: bytes.readUInt32BE(60),
    preChecksum: bytes.readBigUInt64BE(64),
    postChecksum: bytes.readBigUInt64BE(72),
  };
  expect(bytes.readUInt16BE(6)).toBe(0);
  expect(bytes.subarray(80, 96).every((b) => b === 0)).toBe(true);
  const pages: Array<{ pageNumber: number; sha256: string }> = [];
  let offset = 96;
  while (offset < body.length) {
    const pagesInChunk = body.readUInt32BE(offset);
    const uncompressedLength = body.readUInt32BE(offset + 4);
    const compressedLength = body.readUInt32BE(offset + 8);
    const payload = body.subarray(offset + 12, offset + 12 + compressedLength);
    expect(payload.readUInt32LE(0)).toBe(uncompressedLength);
    const raw = uncompressSync(payload);
    expect(raw.length).toBe(pagesInChunk * (4 + header.pageSize));
    for (let at = 0; at < raw.length; at += 4 + header.pageSize) {
      pages.push({ pageNumber: raw.readUInt32BE(at), sha256: sha256Hex(raw.subarray(at + 4, at + 4 + header.pageSize)) });
    }
    offset += 12 + compressedLength;
  }
  expect(offset).toBe(body.length);
  expect(pages.length).toBe(header.pageCount);
  return { header, pages };
}

describe('encodeSegment', () => {
  it('lays the header out at the documented offsets', () => {
    const bytes = segmentWith([5, 2]);
    expect(bytes.toString('ascii', 0, 4)).toBe('LBSG');
    expect(bytes.readUInt16BE(4)).toBe(SEGMENT_FORMAT_VERSION);
    expect(bytes.readUInt16BE(6)).toBe(0);
    expect(bytes.toString('hex', 8, 24)).toBe(baseHeader.databaseId.replaceAll('-', ''));
    expect(bytes.readBigUInt64BE(24)).toBe(baseHeader.term);
    expect(bytes.readBigUInt64BE(32)).toBe(baseHeader.position);
    expect(bytes.readBigUInt64BE(40)).toBe(BigInt(baseHeader.commitTimeMs));
    expect(bytes.readUInt32BE(48)).toBe(512);
    expect(bytes.readUInt32BE(52)).toBe(1000);
    expect(bytes.readUInt32BE(56)).toBe(2);
    expect(bytes.readUInt32BE(60)).toBe(2);
    expect(bytes.readBigUInt64BE(64)).toBe(baseHeader.preChecksum);
    expect(bytes.readBigUInt64BE(72)).toBe(baseHeader.postChecksum);
    expect(bytes.subarray(80, 96).every((b) => b === 0)).toBe(true);
    const trailer = bytes.subarray(bytes.length - 8);
    expect(trailer.equals(segmentChecksum(bytes.subarray(0, bytes.length - 8)))).toBe(true);
  });

  it('encodes zero pages as header + trailer only', () => {
    const bytes = segmentWith([]);
    expect(bytes.length).toBe(SEGMENT_HEADER_SIZE + SEGMENT_TRAILER_SIZE);
    expect(decodeSegment(bytes).pages).toEqual([]);
  });

  it('sorts a copy of the pages and leaves the caller’s array alone', () => {
    const pages = makePages(new Prng(3), [9, 1, 4], 512);
    const order = pages.map((p) => p.pageNumber);
    const { header, pages: decoded } = decodeSegment(encodeSegment(baseHeader, pages));
    expect(pages.map((p) => p.pageNumber)).toEqual(order);
    expect(header.pageCount).toBe(3);
    expectPagesEqual(decoded, sortedCopy(pages));
  });

  it.each([
    [255, [255]],
    [256, [256]],
    [257, [256, 1]],
    [512, [256, 256]],
    [513, [256, 256, 1]],
  ])('splits %i pages into chunks of %j', (count, expectedChunks) => {
    const pages = makePages(new Prng(count), range(1, count), 512);
    const bytes = encodeSegment(baseHeader, pages);
    expect(listChunks(bytes).map((c) => c.pagesInChunk)).toEqual(expectedChunks);
    expectPagesEqual(decodeSegment(bytes).pages, pages);
  });

  it('accepts page data given as any Uint8Array view', () => {
    const backing = new Uint8Array(512 * 3).fill(7);
    const view = Buffer.from(backing.buffer, 512, 512);
    expect(decodeSegment(encodeSegment(baseHeader, [{ pageNumber: 1, data: view }])).pages[0]?.data.equals(view)).toBe(true);
  });

  const page = (pageNumber: number, size = 512): PageImage => ({ pageNumber, data: Buffer.alloc(size) });
  it.each<[string, Partial<SegmentHeaderInput>, PageImage[], RegExp]>([
    ['an upper-case database id', { databaseId: baseHeader.databaseId.toUpperCase() }, [], /databaseId/],
    ['a database id without dashes', { databaseId: baseHeader.databaseId.replaceAll('-', '') }, [], /databaseId/],
    ['a negative term', { term: -1n }, [], /term/],
    ['a term beyond u64', { term: MAX_U64 + 1n }, [], /term/],
    ['a position beyond u64', { position: 1n << 64n }, [], /position/],
    ['a negative checksum', { preChecksum: -5n }, [], /preChecksum/],
    ['a checksum beyond u64', { postChecksum: MAX_U64 + 1n }, [], /postChecksum/],
    ['a fractional commit time', { commitTimeMs: 1.5 }, [], /commitTimeMs/],
    ['a negative commit time', { commitTimeMs: -1 }, [], /commitTimeMs/],
    ['an unsafe commit time', { commitTimeMs: 2 ** 53 }, [], /commitTimeMs/],
    ['a page size not a power of two', { pageSize: 1000 }, [], /pageSize/],
    ['a page size below 512', { pageSize: 256 }, [], /pageSize/],
    ['a page size above 65536', { pageSize: 131072 }, [], /pageSize/],
    ['a database size beyond u32', { databaseSizePages: MAX_U32 + 1 }, [], /databaseSizePages/],
    ['a negative transaction count', { transactionCount: -1 }, [], /transactionCount/],
    ['page number 0', {}, [page(0)], /page number 0/],
    ['a fractional page number', {}, [page(1.5)], /page number 1.5/],
    ['a page beyond the database size', { databaseSizePages: 4 }, [page(5)], /page number 5 is outside 1..4/],
    ['a duplicate page', {}, [page(3), page(1), page(3)], /page 3 is given more than once/],
    ['a short page image', {}, [page(2, 511)], /page 2 has 511 bytes, expected pageSize 512/],
    ['a long page image', {}, [page(2, 1024)], /page 2 has 1024 bytes/],
  ])('rejects %s with a RangeError', (_, header, pages, message) => {
    expect(() => encodeSegment({ ...baseHeader, ...header }, pages)).toThrow(RangeError);
    expect(() => encodeSegment({ ...baseHeader, ...header }, pages)).toThrow(message);
  });
});

describe('decodeSegment: round trips', () => {
  const pageSizes = [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536];

  function randomCase(prng: Prng): { header: SegmentHeaderInput; pages: PageImage[] } {
    const pageSize = prng.pick(pageSizes);
    // Large pages with few images, small pages with enough to cross chunk boundaries.
    const maxPages = pageSize >= 16384 ? 8 : pageSize >= 4096 ? 40 : 600;
    const databaseSizePages = prng.chance(0.1) ? prng.between(0, 3) : prng.chance(0.1) ? MAX_U32 : prng.between(1, 5000);
    const count = Math.min(databaseSizePages, prng.between(0, maxPages));
    const numbers = new Set<number>();
    while (numbers.size < count) numbers.add(prng.between(1, databaseSizePages));
    const pages = [...numbers].map((pageNumber) => ({
      pageNumber,
      data: prng.chance(0.5) ? prng.bytes(pageSize) : Buffer.alloc(pageSize, pageNumber),
    }));
    const header: SegmentHeaderInput = {
      databaseId: prng.uuid(),
      term: prng.chance(0.2) ? MAX_U64 : prng.u64(),
      position: prng.chance(0.2) ? BigInt(prng.u32()) : prng.u64(),
      commitTimeMs: prng.chance(0.1) ? Number.MAX_SAFE_INTEGER : prng.u32() * 1000 + prng.below(1000),
      pageSize,
      databaseSizePages,
      transactionCount: prng.chance(0.1) ? MAX_U32 : prng.below(100),
      preChecksum: prng.u64(),
      postChecksum: prng.u64(),
    };
    return { header, pages };
  }

  it('decodes to exactly what was encoded (300 random cases)', () => {
    const prng = new Prng(0x5eed);
    for (let i = 0; i < 300; i++) {
      const { header, pages } = randomCase(prng);
      const bytes = encodeSegment(header, pages);
      const decoded = decodeSegment(bytes);
      const expectedHeader: SegmentHeader = { ...header, formatVersion: 1, pageCount: pages.length };
      expect(decoded.header).toEqual(expectedHeader);
      expect(decodeSegmentHeader(bytes)).toEqual(expectedHeader);
      expectPagesEqual(decoded.pages, sortedCopy(pages));
      // Encoding is deterministic: the decoded segment encodes to the same bytes.
      expect(encodeSegment(decoded.header, decoded.pages).equals(bytes)).toBe(true);
    }
  });

  it('reads a segment inside a larger buffer and returns pages that do not share its memory', () => {
    const inner = segmentWith([1, 2, 3]);
    const outer = new Uint8Array(inner.length + 100);
    outer.set(inner, 50);
    const view = outer.subarray(50, 50 + inner.length);
    const { pages } = decodeSegment(view);
    const before = Buffer.from(pages[0]?.data ?? Buffer.alloc(0));
    outer.fill(0xee);
    expect(pages[0]?.data.equals(before)).toBe(true);
  });
});

describe('decodeSegment: rejection', () => {
  const valid = segmentWith([1, 2, 3]);

  it('reports a short input as truncated, before anything else', () => {
    expectRejected(Buffer.alloc(0), 'SEGMENT_TRUNCATED', /needs at least 104 bytes, found 0/);
    expectRejected(valid.subarray(0, 103), 'SEGMENT_TRUNCATED', /found 103/);
    expectRejected(Buffer.from('garbage'), 'SEGMENT_TRUNCATED', /found 7/);
  });

  it('reports a wrong magic before the checksum', () => {
    const bytes = Buffer.from(valid);
    bytes.write('SQLi', 0, 'ascii');
    expectRejected(bytes, 'SEGMENT_BAD_MAGIC', /expected magic "LBSG" \(4c425347\), found 53514c69/);
  });

  it('reports any change covered by the trailer as a checksum mismatch', () => {
    const bytes = Buffer.from(valid);
    bytes[200] = (bytes[200] ?? 0) ^ 1;
    expectRejected(bytes, 'SEGMENT_CHECKSUM_MISMATCH', /trailer checksum mismatch: .* hash to [0-9a-f]{16}, trailer holds [0-9a-f]{16}/);
    const trailer = Buffer.from(valid);
    trailer[trailer.length - 1] = (trailer[trailer.length - 1] ?? 0) ^ 0x80;
    expectRejected(trailer, 'SEGMENT_CHECKSUM_MISMATCH', /trailer checksum mismatch/);
  });

  it('checks the trailer before the version', () => {
    const bytes = Buffer.from(valid);
    bytes.writeUInt16BE(2, 4);
    expectRejected(bytes, 'SEGMENT_CHECKSUM_MISMATCH', /checksum/);
    expectRejected(reseal(bytes), 'SEGMENT_UNSUPPORTED_VERSION', /version 2 is not supported, expected 1/);
    expectRejected(
      patched(valid, (b) => b.writeUInt16BE(0, 4)),
      'SEGMENT_UNSUPPORTED_VERSION',
      /version 0/,
    );
  });

  it.each<[string, (b: Buffer) => void, RegExp]>([
    ['non-zero flags', (b) => b.writeUInt16BE(1, 6), /flags at offset 6..7 must be zero, found 0001/],
    ['a non-zero reserved byte', (b) => (b[95] = 9), /reserved header bytes at offset 80..95 must be zero, found 0{30}09/],
    ['a page size not a power of two', (b) => b.writeUInt32BE(1000, 48), /page size 1000 is not a power of two/],
    ['a page size below 512', (b) => b.writeUInt32BE(256, 48), /page size 256/],
    ['a page size above 65536', (b) => b.writeUInt32BE(131072, 48), /page size 131072/],
    [
      'a valid but different page size',
      (b) => b.writeUInt32BE(1024, 48),
      /uncompressed length is 1548, expected 3 \* \(4 \+ 1024\) = 3084/,
    ],
    ['a commit time beyond 2^53', (b) => b.writeBigUInt64BE(1n << 53n, 40), /commit time 9007199254740992 ms is beyond 9007199254740991/],
    ['more pages than the database has', (b) => b.writeUInt32BE(2, 52), /page count 3 exceeds the database size of 2 pages/],
    ['a page count above the pages present', (b) => b.writeUInt32BE(4, 56), /the body holds 3 pages, the header declares 4/],
    ['a page count below the pages present', (b) => b.writeUInt32BE(2, 56), /3 more pages would make 3, the header declares 2/],
    ['a chunk claiming 0 pages', (b) => b.writeUInt32BE(0, 96), /pages in chunk is 0, expected 1..256/],
    ['a chunk claiming 257 pages', (b) => b.writeUInt32BE(257, 96), /pages in chunk is 257/],
    ['a wrong uncompressed length', (b) => b.writeUInt32BE(1547, 100), /uncompressed length is 1547, expected 3 \* \(4 \+ 512\) = 1548/],
    ['an absurd uncompressed length', (b) => b.writeUInt32BE(MAX_U32, 100), /uncompressed length is 4294967295/],
    [
      'a compressed length past the trailer',
      (b) => b.writeUInt32BE(b.readUInt32BE(104) + 1, 104),
      /compressed length is \d+, expected 4..\d+ \(the bytes before the trailer\)/,
    ],
    ['a compressed length below 4', (b) => b.writeUInt32BE(3, 104), /compressed length is 3/],
    [
      'an LZ4 size prefix that disagrees',
      (b) => b.writeUInt32LE(1549, 108),
      /LZ4 size prefix is 1549, expected the uncompressed length 1548/,
    ],
  ])('rejects %s as corrupt (trailer recomputed)', (_, edit, message) => {
    expectRejected(patched(valid, edit), 'SEGMENT_CORRUPT', message);
  });

  it('checks header rules in decodeSegmentHeader too, without looking at the trailer', () => {
    const head = Buffer.from(valid.subarray(0, SEGMENT_HEADER_SIZE));
    expect(decodeSegmentHeader(head).pageCount).toBe(3);
    expect(decodeError(head.subarray(0, 95), decodeSegmentHeader).code).toBe('SEGMENT_TRUNCATED');
    head.writeUInt16BE(3, 4);
    expect(decodeError(head, decodeSegmentHeader).code).toBe('SEGMENT_UNSUPPORTED_VERSION');
    head.writeUInt16BE(1, 4);
    head[81] = 1;
    expect(decodeError(head, decodeSegmentHeader).code).toBe('SEGMENT_CORRUPT');
    head.write('LBSX', 0, 'ascii');
    expect(decodeError(head, decodeSegmentHeader).code).toBe('SEGMENT_BAD_MAGIC');
  });

  it('rejects LZ4 data that is not LZ4, wrapping the library error', () => {
    const garbage = Buffer.concat([Buffer.alloc(4), Buffer.from('0f0f0f0f0f0f0f0f', 'hex')]);
    garbage.writeUInt32LE(516, 0);
    const error = expectRejected(
      assemble(1, [chunkFromPayload(1, 516, garbage)]),
      'SEGMENT_CORRUPT',
      /chunk 0 at offset 96: LZ4 data is invalid/,
    );
    expect(error.cause).toBeInstanceOf(Error);
  });

  it('rejects LZ4 data that decompresses to fewer bytes than declared', () => {
    const payload = compressSync(Buffer.alloc(100, 1));
    payload.writeUInt32LE(516, 0);
    expectRejected(assemble(1, [chunkFromPayload(1, 516, payload)]), 'SEGMENT_CORRUPT', /decompresses to 100 bytes, expected 516/);
  });

  it.each<[string, number, number[][], RegExp]>([
    ['descending page numbers', 2, [[2, 1]], /page number 1 must be above 2/],
    ['a duplicate page in one chunk', 2, [[4, 4]], /page number 4 must be above 4/],
    ['a duplicate page across chunks', 257, [range(1, 256), [256]], /page number 256 must be above 256/],
    ['page number 0', 1, [[0]], /page number 0 must be above 0/],
    ['a page beyond the database size', 1, [[1001]], /page number 1001 must be above 0 .* at most 1000/],
    ['a short chunk followed by another', 3, [[1], [2, 3]], /chunk 1 at offset \d+ follows a chunk of fewer than 256 pages/],
  ])('rejects %s', (_, pageCount, chunks, message) => {
    expectRejected(
      assemble(
        pageCount,
        chunks.map((numbers) => chunk(numbers)),
      ),
      'SEGMENT_CORRUPT',
      message,
    );
  });

  it('accepts what assemble() builds when nothing lies (the helpers themselves are sound)', () => {
    const { pages } = decodeSegment(assemble(258, [chunk(range(1, 256)), chunk([300, 999])]));
    expect(pages.map((p) => p.pageNumber)).toEqual([...range(1, 256), 300, 999]);
  });

  it('rejects bytes left over after the last chunk', () => {
    const body = chunk([1, 2, 3]);
    expectRejected(
      assemble(3, [body, Buffer.alloc(5)]),
      'SEGMENT_CORRUPT',
      /5 bytes at offset 146 follow the last of the 3 pages the header declares/,
    );
    expectRejected(assemble(3, [body, chunk([4])]), 'SEGMENT_CORRUPT', /\d+ bytes at offset 146 follow the last of the 3 pages/);
    expectRejected(assemble(0, [Buffer.alloc(1)]), 'SEGMENT_CORRUPT', /1 bytes at offset 96 follow the last of the 0 pages/);
    expectRejected(assemble(0, [chunk([1])]), 'SEGMENT_CORRUPT', /follow the last of the 0 pages/);
    expectRejected(assemble(4, [body, chunk([4])]), 'SEGMENT_CORRUPT', /chunk 1 at offset 146 follows a chunk of fewer than 256 pages/);
    expectRejected(
      assemble(257, [chunk(range(1, 256)), Buffer.alloc(5)]),
      'SEGMENT_CORRUPT',
      /chunk 1 at offset \d+: a chunk header needs 12 bytes, only 5 remain before the trailer/,
    );
  });

  it('rejects an input that is not bytes with a SegmentFormatError', () => {
    for (const input of [undefined, null, 'LBSG', 42, {}]) {
      const error = decodeError(input as unknown as Uint8Array);
      expect(error.code).toBe('SEGMENT_CORRUPT');
    }
  });

  it('is a LitebaseError with status 500 and JSON-safe details', () => {
    const error = expectRejected(
      patched(valid, (b) => b.writeUInt32BE(1547, 100)),
      'SEGMENT_CORRUPT',
      /uncompressed/,
    );
    expect(error).toBeInstanceOf(LitebaseError);
    expect(error.status).toBe(500);
    expect(error.name).toBe('SegmentFormatError');
    expect(JSON.parse(JSON.stringify(error.details))).toEqual({ offset: 96, expected: 1548, found: 1547 });
  });
});
