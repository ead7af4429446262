import { createHash, hash } from 'node:crypto';
import { compressSync, uncompressSync } from 'lz4-napi';
import { LitebaseError, type ErrorCodeIn } from '../errors.js';
import { uuidFromBytes, uuidToBytes } from './uuid.js';

/**
 * The log segment codec (docs/FORMAT.md is the normative description; keep the two in step).
 * Pure: bytes in, bytes out. Reading and writing files is the log directory's job.
 *
 * A segment is a 96-byte header, a body of LZ4-compressed chunks of page images, and an 8-byte
 * trailer (the first 8 bytes of SHA-256 over everything before it). The decoder verifies the
 * trailer before it decompresses anything, so damaged bytes never reach LZ4, and it answers every
 * bad input with a SegmentFormatError, never with anything else.
 */

export const SEGMENT_FORMAT_VERSION = 1;
export const SEGMENT_HEADER_SIZE = 96;
export const SEGMENT_TRAILER_SIZE = 8;

/** Page images are grouped into chunks of this many pages (the last chunk may hold fewer). */
export const SEGMENT_CHUNK_PAGES = 256;

export const SEGMENT_MIN_PAGE_SIZE = 512;
export const SEGMENT_MAX_PAGE_SIZE = 65536;

const MAGIC = Buffer.from('LBSG', 'ascii');
const CHUNK_HEADER_SIZE = 12;
const PAGE_NUMBER_SIZE = 4;
/** lz4-napi's compressSync prepends the uncompressed length as a u32 little-endian. */
const LZ4_SIZE_PREFIX = 4;
const MAX_U32 = 0xffff_ffff;
const MAX_U64 = (1n << 64n) - 1n;
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Field offsets in the header (docs/FORMAT.md, "Header"). */
const OFFSET = {
  magic: 0,
  formatVersion: 4,
  flags: 6,
  databaseId: 8,
  term: 24,
  position: 32,
  commitTimeMs: 40,
  pageSize: 48,
  databaseSizePages: 52,
  pageCount: 56,
  transactionCount: 60,
  preChecksum: 64,
  postChecksum: 72,
  reserved: 80,
} as const;

export interface PageImage {
  pageNumber: number;
  /** Exactly `pageSize` bytes. */
  data: Buffer;
}

export interface SegmentHeader {
  formatVersion: number;
  /** UUID string (36 chars, lower-case); stored as 16 raw bytes. */
  databaseId: string;
  /** u64 */
  term: bigint;
  /** u64 log sequence number: >= 1 for segments, 0 only for a checkpoint of an empty database. */
  position: bigint;
  /** Unix ms; u64 on disk, at most Number.MAX_SAFE_INTEGER. */
  commitTimeMs: number;
  /** Power of two in 512..65536. */
  pageSize: number;
  /** u32: size of the database in pages after this segment. */
  databaseSizePages: number;
  /** u32: number of page images in the body. */
  pageCount: number;
  /** u32: client transactions grouped in this segment (group commit). */
  transactionCount: number;
  /** u64 rolling checksum of the whole database before this segment. */
  preChecksum: bigint;
  /** u64 rolling checksum of the whole database after this segment. */
  postChecksum: bigint;
}

export type SegmentHeaderInput = Omit<SegmentHeader, 'formatVersion' | 'pageCount'>;

export type SegmentFormatErrorCode = ErrorCodeIn<'segment'>;

export const SEGMENT_FORMAT_ERROR_CODES: readonly SegmentFormatErrorCode[] = [
  'SEGMENT_TRUNCATED',
  'SEGMENT_BAD_MAGIC',
  'SEGMENT_UNSUPPORTED_VERSION',
  'SEGMENT_CHECKSUM_MISMATCH',
  'SEGMENT_CORRUPT',
];

/**
 * Bytes that are not a valid segment. The codec knows no file names: whoever read the bytes adds
 * the path (docs/ARCHITECTURE.md §2.4). `details` holds only strings and numbers so it serializes as JSON.
 */
export class SegmentFormatError extends LitebaseError {
  declare readonly code: SegmentFormatErrorCode;

  constructor(
    code: SegmentFormatErrorCode,
    message: string,
    options: { details?: Record<string, string | number | boolean>; cause?: unknown } = {},
  ) {
    super(code, message, { details: options.details ?? {}, cause: options.cause });
    this.name = 'SegmentFormatError';
  }
}

// ---------------------------------------------------------------------------------------------
// Encoding

/**
 * Encode one segment. `pages` may come in any order (a sorted copy is encoded); `pageCount` is
 * computed here. Invalid input is a caller bug, not damaged data, so it throws a RangeError.
 */
export function encodeSegment(header: SegmentHeaderInput, pages: readonly PageImage[]): Buffer {
  validateHeaderInput(header);
  const sorted = sortedPages(pages, header);
  const headerBytes = encodeHeader({ ...header, formatVersion: SEGMENT_FORMAT_VERSION, pageCount: sorted.length });
  const parts: Buffer[] = [headerBytes];
  for (let start = 0; start < sorted.length; start += SEGMENT_CHUNK_PAGES) {
    parts.push(...encodeChunk(sorted.slice(start, start + SEGMENT_CHUNK_PAGES), header.pageSize));
  }
  // Hash the parts as they are, so the body is copied once, into the result.
  const hasher = createHash('sha256');
  for (const part of parts) hasher.update(part);
  parts.push(hasher.digest().subarray(0, SEGMENT_TRAILER_SIZE));
  return Buffer.concat(parts);
}

/** The 8 trailer bytes that `bytes` (header + body) should be followed by. */
export function segmentChecksum(bytes: Uint8Array): Buffer {
  // One-shot: every segment a replica applies is hashed here, and for a small segment a Hash
  // object costs more than the hashing.
  return hash('sha256', bytes, 'buffer').subarray(0, SEGMENT_TRAILER_SIZE);
}

function validateHeaderInput(header: SegmentHeaderInput): void {
  if (typeof header.databaseId !== 'string' || !UUID_PATTERN.test(header.databaseId)) {
    throw new RangeError(
      `encodeSegment: databaseId must be a lower-case UUID (8-4-4-4-12 hex digits), got ${JSON.stringify(header.databaseId)}`,
    );
  }
  requireU64('term', header.term);
  requireU64('position', header.position);
  requireU64('preChecksum', header.preChecksum);
  requireU64('postChecksum', header.postChecksum);
  if (!Number.isSafeInteger(header.commitTimeMs) || header.commitTimeMs < 0) {
    throw new RangeError(`encodeSegment: commitTimeMs must be a non-negative safe integer, got ${header.commitTimeMs}`);
  }
  if (!isValidPageSize(header.pageSize)) {
    throw new RangeError(`encodeSegment: pageSize must be a power of two in 512..65536, got ${header.pageSize}`);
  }
  requireU32('databaseSizePages', header.databaseSizePages);
  requireU32('transactionCount', header.transactionCount);
}

function requireU64(field: string, value: bigint): void {
  if (typeof value !== 'bigint' || value < 0n || value > MAX_U64) {
    throw new RangeError(`encodeSegment: ${field} must be a bigint in 0..2^64-1, got ${String(value)}`);
  }
}

function requireU32(field: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > MAX_U32) {
    throw new RangeError(`encodeSegment: ${field} must be an integer in 0..2^32-1, got ${value}`);
  }
}

function isValidPageSize(pageSize: number): boolean {
  return (
    Number.isInteger(pageSize) &&
    pageSize >= SEGMENT_MIN_PAGE_SIZE &&
    pageSize <= SEGMENT_MAX_PAGE_SIZE &&
    (pageSize & (pageSize - 1)) === 0
  );
}

/** A sorted copy of `pages`, after checking every page against the header. */
function sortedPages(pages: readonly PageImage[], header: SegmentHeaderInput): PageImage[] {
  const sorted = [...pages].sort((a, b) => a.pageNumber - b.pageNumber);
  let previous = 0;
  for (const { pageNumber, data } of sorted) {
    if (!Number.isInteger(pageNumber) || pageNumber < 1 || pageNumber > header.databaseSizePages) {
      throw new RangeError(`encodeSegment: page number ${pageNumber} is outside 1..${header.databaseSizePages} (databaseSizePages)`);
    }
    if (pageNumber === previous) throw new RangeError(`encodeSegment: page ${pageNumber} is given more than once`);
    if (!(data instanceof Uint8Array) || data.length !== header.pageSize) {
      throw new RangeError(`encodeSegment: page ${pageNumber} has ${data?.length ?? 'no'} bytes, expected pageSize ${header.pageSize}`);
    }
    previous = pageNumber;
  }
  return sorted;
}

function encodeHeader(header: SegmentHeader): Buffer {
  const bytes = Buffer.alloc(SEGMENT_HEADER_SIZE); // zero-filled: flags and reserved stay 0
  MAGIC.copy(bytes, OFFSET.magic);
  bytes.writeUInt16BE(header.formatVersion, OFFSET.formatVersion);
  uuidToBytes(header.databaseId).copy(bytes, OFFSET.databaseId);
  bytes.writeBigUInt64BE(header.term, OFFSET.term);
  bytes.writeBigUInt64BE(header.position, OFFSET.position);
  bytes.writeBigUInt64BE(BigInt(header.commitTimeMs), OFFSET.commitTimeMs);
  bytes.writeUInt32BE(header.pageSize, OFFSET.pageSize);
  bytes.writeUInt32BE(header.databaseSizePages, OFFSET.databaseSizePages);
  bytes.writeUInt32BE(header.pageCount, OFFSET.pageCount);
  bytes.writeUInt32BE(header.transactionCount, OFFSET.transactionCount);
  bytes.writeBigUInt64BE(header.preChecksum, OFFSET.preChecksum);
  bytes.writeBigUInt64BE(header.postChecksum, OFFSET.postChecksum);
  return bytes;
}

/** The chunk header and its compressed payload. */
function encodeChunk(pages: readonly PageImage[], pageSize: number): [Buffer, Buffer] {
  const raw = Buffer.allocUnsafe(pages.length * (PAGE_NUMBER_SIZE + pageSize)); // every byte is written below
  let offset = 0;
  for (const { pageNumber, data } of pages) {
    offset = raw.writeUInt32BE(pageNumber, offset);
    raw.set(data, offset);
    offset += pageSize;
  }
  const compressed = compressSync(raw);
  const chunkHeader = Buffer.alloc(CHUNK_HEADER_SIZE);
  chunkHeader.writeUInt32BE(pages.length, 0);
  chunkHeader.writeUInt32BE(raw.length, 4);
  chunkHeader.writeUInt32BE(compressed.length, 8);
  return [chunkHeader, compressed];
}

// ---------------------------------------------------------------------------------------------
// Decoding

export interface DecodeOptions {
  /**
   * hasValidTrailer() was true for exactly these bytes already: the read-ahead workers of
   * src/log/segment-prefetch.ts check trailers off the thread that applies segments.
   */
  trailerVerified?: boolean;
}

/** Whether `bytes` start with the segment magic `LBSG` (how `litebase inspect` tells a segment container from other files). */
export function hasSegmentMagic(bytes: Uint8Array): boolean {
  return bytes.length >= MAGIC.length && MAGIC.equals(bytes.subarray(0, MAGIC.length));
}

/** Whether the last 8 bytes are the trailer of the bytes before them (step 3 of docs/FORMAT.md §6). */
export function hasValidTrailer(bytes: Uint8Array): boolean {
  if (bytes.length < SEGMENT_HEADER_SIZE + SEGMENT_TRAILER_SIZE) return false;
  const end = bytes.length - SEGMENT_TRAILER_SIZE;
  return segmentChecksum(bytes.subarray(0, end)).equals(bytes.subarray(end));
}

/**
 * Decode and fully verify one segment. Throws only SegmentFormatError, whatever `bytes` hold.
 * Returned page images may share memory with one another (one buffer per chunk), never with
 * `bytes`.
 */
export function decodeSegment(bytes: Uint8Array, options: DecodeOptions = {}): { header: SegmentHeader; pages: PageImage[] } {
  return neverThrowOther(() => {
    const buffer = asBuffer(bytes);
    requireLength(buffer, SEGMENT_HEADER_SIZE + SEGMENT_TRAILER_SIZE, 'a segment (header and trailer)');
    requireMagic(buffer);
    if (!options.trailerVerified) requireTrailer(buffer);
    const header = parseHeader(buffer);
    const pages = decodeBody(buffer.subarray(0, buffer.length - SEGMENT_TRAILER_SIZE), header);
    return { header, pages };
  });
}

/** Where one chunk is in a segment file, as its chunk header declares it (docs/FORMAT.md §4). */
export interface SegmentChunkLayout {
  /** Offset of the chunk header from the start of the file. */
  offset: number;
  pagesInChunk: number;
  uncompressedLength: number;
  compressedLength: number;
}

/**
 * decodeSegment, also answering where each chunk lies: for `litebase inspect`, which prints the
 * layout of a file it verifies. Same checks, same errors.
 */
export function decodeSegmentLayout(
  bytes: Uint8Array,
  options: DecodeOptions = {},
): { header: SegmentHeader; pages: PageImage[]; chunks: SegmentChunkLayout[] } {
  return neverThrowOther(() => {
    const buffer = asBuffer(bytes);
    requireLength(buffer, SEGMENT_HEADER_SIZE + SEGMENT_TRAILER_SIZE, 'a segment (header and trailer)');
    requireMagic(buffer);
    if (!options.trailerVerified) requireTrailer(buffer);
    const header = parseHeader(buffer);
    const chunks: SegmentChunkLayout[] = [];
    const pages = decodeBody(buffer.subarray(0, buffer.length - SEGMENT_TRAILER_SIZE), header, chunks);
    return { header, pages, chunks };
  });
}

/**
 * Decode and validate the header alone, from the first 96 bytes or more. The trailer is not
 * checked: a reader that needs only the header (a tailer sorting out positions and terms) gets
 * it without reading the body, and must still call decodeSegment before applying anything.
 */
export function decodeSegmentHeader(bytes: Uint8Array): SegmentHeader {
  return neverThrowOther(() => {
    const buffer = asBuffer(bytes);
    requireLength(buffer, SEGMENT_HEADER_SIZE, 'a segment header');
    requireMagic(buffer);
    return parseHeader(buffer);
  });
}

/**
 * The decoder promises callers one error type. Every check above should already throw a
 * SegmentFormatError; this net turns a bug (say, a read past the end) into one too, with
 * `details.internal` set so that the fuzz tests can tell such a bug from a rejected input.
 */
function neverThrowOther<T>(decode: () => T): T {
  try {
    return decode();
  } catch (error) {
    if (error instanceof SegmentFormatError) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    throw new SegmentFormatError('SEGMENT_CORRUPT', `segment could not be decoded: ${reason}`, {
      details: { internal: true },
      cause: error,
    });
  }
}

function asBuffer(bytes: Uint8Array): Buffer {
  if (!(bytes instanceof Uint8Array)) {
    throw new SegmentFormatError('SEGMENT_CORRUPT', `expected segment bytes as a Uint8Array, found ${typeof bytes}`);
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function requireLength(buffer: Buffer, minimum: number, what: string): void {
  if (buffer.length < minimum) {
    throw new SegmentFormatError('SEGMENT_TRUNCATED', `${what} needs at least ${minimum} bytes, found ${buffer.length}`, {
      details: { expected: minimum, found: buffer.length },
    });
  }
}

function requireMagic(buffer: Buffer): void {
  const found = buffer.subarray(OFFSET.magic, OFFSET.magic + MAGIC.length);
  if (!found.equals(MAGIC)) {
    throw new SegmentFormatError(
      'SEGMENT_BAD_MAGIC',
      `not a segment: expected magic "LBSG" (${MAGIC.toString('hex')}), found ${found.toString('hex')}`,
      { details: { expected: MAGIC.toString('hex'), found: found.toString('hex') } },
    );
  }
}

function requireTrailer(buffer: Buffer): void {
  const end = buffer.length - SEGMENT_TRAILER_SIZE;
  const expected = segmentChecksum(buffer.subarray(0, end));
  const found = buffer.subarray(end);
  if (!found.equals(expected)) {
    throw new SegmentFormatError(
      'SEGMENT_CHECKSUM_MISMATCH',
      `trailer checksum mismatch: the ${end} bytes before the trailer hash to ${expected.toString('hex')}, trailer holds ${found.toString('hex')}`,
      { details: { expected: expected.toString('hex'), found: found.toString('hex') } },
    );
  }
}

function corrupt(message: string, details: Record<string, string | number> = {}): SegmentFormatError {
  return new SegmentFormatError('SEGMENT_CORRUPT', message, { details });
}

/** Reads the header fields and applies every rule that concerns the header alone. */
function parseHeader(buffer: Buffer): SegmentHeader {
  const formatVersion = buffer.readUInt16BE(OFFSET.formatVersion);
  if (formatVersion !== SEGMENT_FORMAT_VERSION) {
    throw new SegmentFormatError(
      'SEGMENT_UNSUPPORTED_VERSION',
      `segment format version ${formatVersion} is not supported, expected ${SEGMENT_FORMAT_VERSION}`,
      { details: { expected: SEGMENT_FORMAT_VERSION, found: formatVersion } },
    );
  }
  requireZero(buffer, OFFSET.flags, OFFSET.databaseId, 'flags');
  requireZero(buffer, OFFSET.reserved, SEGMENT_HEADER_SIZE, 'reserved header bytes');
  const header: SegmentHeader = {
    formatVersion,
    databaseId: uuidFromBytes(buffer.subarray(OFFSET.databaseId, OFFSET.databaseId + 16)),
    term: buffer.readBigUInt64BE(OFFSET.term),
    position: buffer.readBigUInt64BE(OFFSET.position),
    commitTimeMs: readCommitTime(buffer),
    pageSize: buffer.readUInt32BE(OFFSET.pageSize),
    databaseSizePages: buffer.readUInt32BE(OFFSET.databaseSizePages),
    pageCount: buffer.readUInt32BE(OFFSET.pageCount),
    transactionCount: buffer.readUInt32BE(OFFSET.transactionCount),
    preChecksum: buffer.readBigUInt64BE(OFFSET.preChecksum),
    postChecksum: buffer.readBigUInt64BE(OFFSET.postChecksum),
  };
  if (!isValidPageSize(header.pageSize)) {
    throw corrupt(`page size ${header.pageSize} is not a power of two in 512..65536`, { found: header.pageSize });
  }
  // Page numbers are unique and within 1..databaseSizePages, so there cannot be more of them.
  if (header.pageCount > header.databaseSizePages) {
    throw corrupt(`page count ${header.pageCount} exceeds the database size of ${header.databaseSizePages} pages`, {
      expected: `<= ${header.databaseSizePages}`,
      found: header.pageCount,
    });
  }
  return header;
}

function requireZero(buffer: Buffer, start: number, end: number, what: string): void {
  for (let offset = start; offset < end; offset++) {
    if (buffer[offset] !== 0) {
      const found = buffer.subarray(start, end).toString('hex');
      throw corrupt(`${what} at offset ${start}..${end - 1} must be zero, found ${found}`, { offset, found });
    }
  }
}

/** The API exposes commit time as a number, so a value it cannot hold exactly is rejected. */
function readCommitTime(buffer: Buffer): number {
  const value = buffer.readBigUInt64BE(OFFSET.commitTimeMs);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw corrupt(`commit time ${value} ms is beyond ${Number.MAX_SAFE_INTEGER}`, { found: value.toString() });
  }
  return Number(value);
}

/** Walks the chunks of `body` (header + body, without the trailer); `layout` collects where each chunk is. */
function decodeBody(body: Buffer, header: SegmentHeader, layout?: SegmentChunkLayout[]): PageImage[] {
  const pages: PageImage[] = [];
  let offset = SEGMENT_HEADER_SIZE;
  let chunkIndex = 0;
  let lastChunkWasShort = false;
  while (offset < body.length) {
    if (pages.length === header.pageCount) {
      throw corrupt(
        `${body.length - offset} bytes at offset ${offset} follow the last of the ${header.pageCount} pages the header declares; the trailer must come next`,
        { offset, expected: 0, found: body.length - offset },
      );
    }
    if (lastChunkWasShort) {
      throw corrupt(
        `chunk ${chunkIndex} at offset ${offset} follows a chunk of fewer than ${SEGMENT_CHUNK_PAGES} pages; only the last chunk may be short`,
        { offset },
      );
    }
    const chunk = readChunk(body, offset, chunkIndex, header, pages.length);
    decodePages(chunk.raw, offset, header, pages);
    layout?.push({
      offset,
      pagesInChunk: chunk.pagesInChunk,
      uncompressedLength: chunk.raw.length,
      compressedLength: chunk.next - offset - CHUNK_HEADER_SIZE,
    });
    lastChunkWasShort = chunk.pagesInChunk < SEGMENT_CHUNK_PAGES;
    offset = chunk.next;
    chunkIndex++;
  }
  if (pages.length !== header.pageCount) {
    throw corrupt(`the body holds ${pages.length} pages, the header declares ${header.pageCount}`, {
      expected: header.pageCount,
      found: pages.length,
    });
  }
  return pages;
}

interface Chunk {
  pagesInChunk: number;
  raw: Buffer;
  /** Offset just past this chunk. */
  next: number;
}

/**
 * Reads one chunk header, checks every declared length against the header and the bytes that are
 * actually there, and only then decompresses, so a lying length can neither make us allocate
 * beyond 256 * (4 + 65536) bytes nor hand LZ4 a slice it would read past.
 */
function readChunk(body: Buffer, offset: number, chunkIndex: number, header: SegmentHeader, pagesSoFar: number): Chunk {
  const where = `chunk ${chunkIndex} at offset ${offset}`;
  const available = body.length - offset;
  if (available < CHUNK_HEADER_SIZE) {
    throw corrupt(`${where}: a chunk header needs ${CHUNK_HEADER_SIZE} bytes, only ${available} remain before the trailer`, {
      offset,
      expected: CHUNK_HEADER_SIZE,
      found: available,
    });
  }
  const pagesInChunk = body.readUInt32BE(offset);
  const uncompressedLength = body.readUInt32BE(offset + 4);
  const compressedLength = body.readUInt32BE(offset + 8);
  if (pagesInChunk < 1 || pagesInChunk > SEGMENT_CHUNK_PAGES) {
    throw corrupt(`${where}: pages in chunk is ${pagesInChunk}, expected 1..${SEGMENT_CHUNK_PAGES}`, {
      offset,
      found: pagesInChunk,
    });
  }
  if (pagesSoFar + pagesInChunk > header.pageCount) {
    throw corrupt(`${where}: ${pagesInChunk} more pages would make ${pagesSoFar + pagesInChunk}, the header declares ${header.pageCount}`, {
      offset,
      expected: header.pageCount,
      found: pagesSoFar + pagesInChunk,
    });
  }
  const expectedLength = pagesInChunk * (PAGE_NUMBER_SIZE + header.pageSize);
  if (uncompressedLength !== expectedLength) {
    throw corrupt(
      `${where}: uncompressed length is ${uncompressedLength}, expected ${pagesInChunk} * (4 + ${header.pageSize}) = ${expectedLength}`,
      { offset, expected: expectedLength, found: uncompressedLength },
    );
  }
  const payloadStart = offset + CHUNK_HEADER_SIZE;
  const payloadRoom = body.length - payloadStart;
  if (compressedLength < LZ4_SIZE_PREFIX || compressedLength > payloadRoom) {
    throw corrupt(
      `${where}: compressed length is ${compressedLength}, expected ${LZ4_SIZE_PREFIX}..${payloadRoom} (the bytes before the trailer)`,
      { offset, expected: `${LZ4_SIZE_PREFIX}..${payloadRoom}`, found: compressedLength },
    );
  }
  const payload = body.subarray(payloadStart, payloadStart + compressedLength);
  const raw = decompress(payload, uncompressedLength, where, offset);
  return { pagesInChunk, raw, next: payloadStart + compressedLength };
}

function decompress(payload: Buffer, uncompressedLength: number, where: string, offset: number): Buffer {
  // The LZ4 library allocates what the prefix says; it must agree with the length checked above.
  const prefix = payload.readUInt32LE(0);
  if (prefix !== uncompressedLength) {
    throw corrupt(`${where}: LZ4 size prefix is ${prefix}, expected the uncompressed length ${uncompressedLength}`, {
      offset,
      expected: uncompressedLength,
      found: prefix,
    });
  }
  let raw: Buffer;
  try {
    raw = uncompressSync(payload);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new SegmentFormatError('SEGMENT_CORRUPT', `${where}: LZ4 data is invalid: ${reason}`, {
      details: { offset },
      cause: error,
    });
  }
  if (raw.length !== uncompressedLength) {
    throw corrupt(`${where}: LZ4 data decompresses to ${raw.length} bytes, expected ${uncompressedLength}`, {
      offset,
      expected: uncompressedLength,
      found: raw.length,
    });
  }
  return raw;
}

/** Splits a chunk's raw bytes into page images, appending them to `pages`. */
function decodePages(raw: Buffer, chunkOffset: number, header: SegmentHeader, pages: PageImage[]): void {
  const stride = PAGE_NUMBER_SIZE + header.pageSize;
  for (let offset = 0; offset < raw.length; offset += stride) {
    const pageNumber = raw.readUInt32BE(offset);
    const previous = pages.at(-1)?.pageNumber ?? 0;
    if (pageNumber <= previous || pageNumber > header.databaseSizePages) {
      throw corrupt(
        `chunk at offset ${chunkOffset}: page number ${pageNumber} must be above ${previous} (ascending, unique) and at most ${header.databaseSizePages} (database size)`,
        { offset: chunkOffset, expected: `${previous + 1}..${header.databaseSizePages}`, found: pageNumber },
      );
    }
    pages.push({ pageNumber, data: raw.subarray(offset + PAGE_NUMBER_SIZE, offset + stride) });
  }
}
