import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { PageImage, SegmentHeader, SegmentHeaderInput } from '../../src/format/segment-codec.js';

/**
 * The golden segment cases (fixtures/segments/<name>.seg and <name>.json). Everything here is
 * deterministic: the committed fixtures were produced from it, so changing a case, the PRNG or the
 * page generator changes the expected bytes. Regenerate with
 *   UPDATE_GOLDEN=1 npx vitest run test/unit/format/segment-codec.test.ts
 * and review the diff: a change in a .seg file is a change in the on-disk format.
 */

export const GOLDEN_DIR = fileURLToPath(new URL('../../fixtures/segments/', import.meta.url));

export const MAX_U64 = (1n << 64n) - 1n;
export const MAX_U32 = 0xffff_ffff;

/** Small, seeded PRNG (mulberry32), so tests and fixtures need no dependency and replay exactly. */
export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in 0..2^32-1. */
  u32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1), like Math.random. */
  float(): number {
    return this.u32() / 2 ** 32;
  }

  /** Uniform in 0..bound-1 (bound <= 2^32; the slight modulo bias does not matter here). */
  below(bound: number): number {
    return this.u32() % bound;
  }

  /** Uniform in min..max inclusive. */
  between(min: number, max: number): number {
    return min + this.below(max - min + 1);
  }

  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }

  chance(probability: number): boolean {
    return this.u32() / 2 ** 32 < probability;
  }

  pick<T>(items: readonly T[]): T {
    const item = items[this.below(items.length)];
    if (item === undefined) throw new RangeError('pick from an empty list');
    return item;
  }

  bytes(length: number): Buffer {
    const out = Buffer.allocUnsafe(length);
    for (let i = 0; i < length; i++) out[i] = this.u32() & 0xff;
    return out;
  }

  uuid(): string {
    const hex = this.bytes(16).toString('hex');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }
}

/**
 * A page that looks a little like a SQLite b-tree page: mostly zeros, a small header, a random
 * run of "cell" bytes and a pattern at the end. Random enough that a page mix-up shows, compressible
 * enough that the fixtures stay small.
 */
export function makePage(prng: Prng, pageNumber: number, pageSize: number): Buffer {
  const page = Buffer.alloc(pageSize);
  page.writeUInt32BE(pageNumber, 0);
  page.writeUInt32BE(prng.u32(), 4);
  const runLength = prng.between(16, 144);
  const runStart = prng.between(8, pageSize - 32 - runLength);
  prng.bytes(runLength).copy(page, runStart);
  for (let i = pageSize - 32; i < pageSize; i++) page[i] = (pageNumber * 31 + i) & 0xff;
  return page;
}

export function makePages(prng: Prng, pageNumbers: readonly number[], pageSize: number): PageImage[] {
  return pageNumbers.map((pageNumber) => ({ pageNumber, data: makePage(prng, pageNumber, pageSize) }));
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * The rolling database checksum exactly as docs/FORMAT.md defines it, written again here (not
 * imported from src/log/rolling-checksum.ts) so the fixtures check the definition, not the code.
 * Pages of the database that `pages` does not hold are all zero bytes.
 */
export function databaseChecksum(pages: readonly PageImage[], databaseSizePages: number, pageSize: number): bigint {
  const byNumber = new Map(pages.map((page) => [page.pageNumber, page.data]));
  const zeros = Buffer.alloc(pageSize);
  let checksum = 0n;
  for (let pageNumber = 1; pageNumber <= databaseSizePages; pageNumber++) {
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(pageNumber);
    const digest = createHash('sha256')
      .update(prefix)
      .update(byNumber.get(pageNumber) ?? zeros)
      .digest();
    checksum ^= digest.readBigUInt64BE(0);
  }
  return checksum;
}

export interface GoldenCase {
  name: string;
  description: string;
  header: SegmentHeaderInput;
  pages: PageImage[];
}

const GOLDEN_DATABASE_ID = '6f1c0b52-3d4e-4a8b-9c2d-7e5f10a2b3c4';
/** 2026-01-01T00:00:00Z */
const GOLDEN_TIME_MS = 1_767_225_600_000;

export function goldenCases(): GoldenCase[] {
  return [emptyCase(), onePageCase(), twoChunkCase(), maxValuesCase(), largePageCase()];
}

function emptyCase(): GoldenCase {
  return {
    name: 'empty',
    description: 'A segment with no page images (a transaction that changed nothing): zero chunks, header then trailer.',
    header: {
      databaseId: GOLDEN_DATABASE_ID,
      term: 1n,
      position: 7n,
      commitTimeMs: GOLDEN_TIME_MS,
      pageSize: 4096,
      databaseSizePages: 3,
      transactionCount: 1,
      preChecksum: 0x0123_4567_89ab_cdefn,
      postChecksum: 0x0123_4567_89ab_cdefn,
    },
    pages: [],
  };
}

function onePageCase(): GoldenCase {
  const pages = makePages(new Prng(1), [1], 4096);
  return {
    name: 'one-page-4096',
    description:
      'The first segment of a new database: one 4096-byte page, preChecksum 0 (empty database), postChecksum the real rolling checksum of the one page.',
    header: {
      databaseId: GOLDEN_DATABASE_ID,
      term: 1n,
      position: 1n,
      commitTimeMs: GOLDEN_TIME_MS,
      pageSize: 4096,
      databaseSizePages: 1,
      transactionCount: 1,
      preChecksum: 0n,
      postChecksum: databaseChecksum(pages, 1, 4096),
    },
    pages,
  };
}

function twoChunkCase(): GoldenCase {
  const pageNumbers = Array.from({ length: 300 }, (_, i) => i + 1);
  const pages = makePages(new Prng(2), pageNumbers, 4096);
  return {
    name: 'two-chunks-300-pages',
    description:
      '300 pages of 4096 bytes: a full chunk of 256 pages and a last chunk of 44. Real rolling checksums, from an empty database.',
    header: {
      databaseId: GOLDEN_DATABASE_ID,
      term: 3n,
      position: 2n,
      commitTimeMs: GOLDEN_TIME_MS + 1234,
      pageSize: 4096,
      databaseSizePages: 300,
      transactionCount: 12,
      preChecksum: 0n,
      postChecksum: databaseChecksum(pages, 300, 4096),
    },
    pages,
  };
}

function maxValuesCase(): GoldenCase {
  const pageNumbers = [1, 2, 255, 256, 65536, MAX_U32];
  return {
    name: 'max-values-512',
    description:
      '512-byte pages, every integer field at or near its maximum: term and position 2^64-1, commit time 2^53-1, database size and last page number 2^32-1, checksums above 2^53.',
    header: {
      databaseId: 'ffffffff-ffff-ffff-ffff-ffffffffffff',
      term: MAX_U64,
      position: MAX_U64,
      commitTimeMs: Number.MAX_SAFE_INTEGER,
      pageSize: 512,
      databaseSizePages: MAX_U32,
      transactionCount: MAX_U32,
      preChecksum: 0xfedc_ba98_7654_3210n,
      postChecksum: MAX_U64,
    },
    pages: makePages(new Prng(4), pageNumbers, 512),
  };
}

function largePageCase(): GoldenCase {
  return {
    name: 'two-pages-65536',
    description: 'The largest page size (65536) with two non-adjacent pages, and a database that shrank to 10 pages.',
    header: {
      databaseId: '00000000-0000-0000-0000-000000000000',
      term: 2n,
      position: 9_000_000_000n,
      commitTimeMs: 0,
      pageSize: 65536,
      databaseSizePages: 10,
      transactionCount: 3,
      preChecksum: 0x8000_0000_0000_0001n,
      postChecksum: 0x0000_0000_0000_0002n,
    },
    pages: makePages(new Prng(5), [10, 3], 65536),
  };
}

/** What fixtures/segments/<name>.json holds (docs/FORMAT.md, "Golden files"). */
export interface GoldenDescription {
  description: string;
  segment: { file: string; bytes: number; sha256: string };
  header: {
    formatVersion: number;
    databaseId: string;
    term: string;
    position: string;
    commitTimeMs: number;
    pageSize: number;
    databaseSizePages: number;
    pageCount: number;
    transactionCount: number;
    preChecksum: string;
    postChecksum: string;
  };
  chunks: Array<{ offset: number; pagesInChunk: number; uncompressedLength: number; compressedLength: number }>;
  pages: Array<{ pageNumber: number; sha256: string }>;
}

/** u64 checksums are written as 16 lower-case hex digits, the way logs and errors show them. */
export const formatChecksumHex = (checksum: bigint): string => checksum.toString(16).padStart(16, '0');

export function describeGolden(golden: GoldenCase, bytes: Buffer): GoldenDescription {
  const sorted = [...golden.pages].sort((a, b) => a.pageNumber - b.pageNumber);
  const header: SegmentHeader = { ...golden.header, formatVersion: 1, pageCount: sorted.length };
  return {
    description: golden.description,
    segment: { file: `${golden.name}.seg`, bytes: bytes.length, sha256: sha256Hex(bytes) },
    header: {
      formatVersion: header.formatVersion,
      databaseId: header.databaseId,
      term: header.term.toString(),
      position: header.position.toString(),
      commitTimeMs: header.commitTimeMs,
      pageSize: header.pageSize,
      databaseSizePages: header.databaseSizePages,
      pageCount: header.pageCount,
      transactionCount: header.transactionCount,
      preChecksum: formatChecksumHex(header.preChecksum),
      postChecksum: formatChecksumHex(header.postChecksum),
    },
    chunks: listChunks(bytes),
    pages: sorted.map(({ pageNumber, data }) => ({ pageNumber, sha256: sha256Hex(data) })),
  };
}

/** The chunk headers of an encoded segment, read by walking the lengths (no validation). */
export function listChunks(bytes: Buffer): GoldenDescription['chunks'] {
  const chunks: GoldenDescription['chunks'] = [];
  const end = bytes.length - 8;
  for (let offset = 96; offset + 12 <= end;) {
    const chunk = {
      offset,
      pagesInChunk: bytes.readUInt32BE(offset),
      uncompressedLength: bytes.readUInt32BE(offset + 4),
      compressedLength: bytes.readUInt32BE(offset + 8),
    };
    chunks.push(chunk);
    offset += 12 + chunk.compressedLength;
  }
  return chunks;
}

/** Turns a description's header back into the decoder's types. */
export function expectedHeader(description: GoldenDescription): SegmentHeader {
  const { header } = description;
  return {
    ...header,
    term: BigInt(header.term),
    position: BigInt(header.position),
    preChecksum: BigInt(`0x${header.preChecksum}`),
    postChecksum: BigInt(`0x${header.postChecksum}`),
  };
}
