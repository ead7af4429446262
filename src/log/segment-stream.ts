import { createHash, type Hash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { compress, compressSync, uncompressSync } from 'lz4-napi';
import {
  decodeSegmentHeader,
  encodeSegment,
  SEGMENT_CHUNK_PAGES,
  SEGMENT_HEADER_SIZE,
  SEGMENT_TRAILER_SIZE,
  SegmentFormatError,
  type PageImage,
  type SegmentChunkLayout,
  type SegmentFormatErrorCode,
  type SegmentHeader,
  type SegmentHeaderInput,
} from '../format/segment-codec.js';

/**
 * The segment container (docs/FORMAT.md) written and read as a stream, for files too large to hold
 * in memory: checkpoints (every page of a database) and restores. The bytes are exactly those of
 * `encodeSegment` for the same header and pages; `decodeSegment` and this reader accept and reject
 * the same files with the same codes.
 *
 * The writer needs the page count up front, because it is in the header: a checkpoint knows it (the
 * database size at its position). It writes the header, then one chunk per 256 pages as they come,
 * and hashes as it goes, so the trailer is ready when the last page is written.
 *
 * The reader makes two passes: the first hashes the whole file and checks the trailer, so that no
 * damaged byte reaches the LZ4 decoder; the second yields the pages chunk by chunk. Memory is one
 * chunk (at most 256 pages) plus a read buffer, whatever the size of the file.
 */

const MAGIC = Buffer.from('LBSG', 'ascii');
const CHUNK_HEADER_SIZE = 12;
const PAGE_NUMBER_SIZE = 4;
const LZ4_SIZE_PREFIX = 4;
const PAGE_COUNT_OFFSET = 56;
const MAX_U32 = 0xffff_ffff;
const HASH_READ_BYTES = 4 * 1024 * 1024;

export interface StreamHeaderInput extends SegmentHeaderInput {
  /** Page images the body will hold (u32): for a checkpoint, the database size. */
  pageCount: number;
}

export interface WrittenSegmentFile {
  /** Bytes in the file, trailer included. */
  bytes: number;
  /**
   * SHA-256 of the whole file, hex: lets an upload be checked without reading the file again.
   * Empty when the writer was created with `{ sha256: false }`.
   */
  sha256: string;
}

/**
 * Writes one segment file. Give it pages in ascending order, in batches of any size; it keeps
 * references to at most 255 pages until their chunk is full, so a caller must not reuse a page's
 * buffer until `finish()` (or give batches of 256, which are written at once).
 */
export class SegmentFileWriter {
  private readonly fileHash: Hash | undefined;
  private readonly trailerHash: Hash = createHash('sha256');
  private pending: PageImage[] = [];
  /** The raw bytes of a chunk being compressed, reused for every chunk (compression is awaited). */
  private raw: Buffer | undefined;
  private written = 0;
  private bytes = 0;
  private lastPage = 0;
  private done = false;

  private constructor(
    readonly file: string,
    private readonly handle: fs.FileHandle,
    readonly header: StreamHeaderInput,
    sha256: boolean,
    private readonly compressHere: boolean,
  ) {
    this.fileHash = sha256 ? createHash('sha256') : undefined;
  }

  /**
   * Creates `file` exclusively (it must not exist) and writes the header. `sha256: false` skips the
   * whole file's hash (a log segment is never uploaded as it is written: one hash fewer per byte).
   * `compressOnThisThread` compresses each chunk synchronously instead of on the thread pool.
   */
  static async create(
    file: string,
    header: StreamHeaderInput,
    options: { sha256?: boolean; compressOnThisThread?: boolean } = {},
  ): Promise<SegmentFileWriter> {
    if (!Number.isInteger(header.pageCount) || header.pageCount < 0 || header.pageCount > MAX_U32) {
      throw new RangeError(`SegmentFileWriter: pageCount must be an integer in 0..2^32-1, got ${header.pageCount}`);
    }
    if (header.pageCount > header.databaseSizePages) {
      throw new RangeError(`SegmentFileWriter: pageCount ${header.pageCount} exceeds databaseSizePages ${header.databaseSizePages}`);
    }
    // The codec validates the header and lays it out; only the page count differs from an empty segment.
    const { pageCount, ...input } = header;
    const headerBytes = Buffer.from(encodeSegment(input, []).subarray(0, SEGMENT_HEADER_SIZE));
    headerBytes.writeUInt32BE(pageCount, PAGE_COUNT_OFFSET);
    const handle = await fs.open(file, 'wx');
    const writer = new SegmentFileWriter(file, handle, header, options.sha256 ?? true, options.compressOnThisThread ?? false);
    try {
      await writer.append(headerBytes);
    } catch (error) {
      await writer.abort();
      throw error;
    }
    return writer;
  }

  /** Pages written so far (including those waiting for their chunk to fill). */
  get pagesWritten(): number {
    return this.written + this.pending.length;
  }

  async writePages(pages: readonly PageImage[]): Promise<void> {
    for (const page of pages) {
      this.checkPage(page);
      this.pending.push(page);
      if (this.pending.length === SEGMENT_CHUNK_PAGES) await this.flushChunk();
    }
  }

  /** Writes the last chunk and the trailer, fsyncs and closes the file. */
  async finish(): Promise<WrittenSegmentFile> {
    if (this.done) throw new Error(`SegmentFileWriter: ${this.file} is already finished`);
    if (this.pending.length > 0) await this.flushChunk();
    if (this.written !== this.header.pageCount) {
      await this.abort();
      throw new RangeError(
        `SegmentFileWriter: ${this.written} pages written to ${this.file}, the header declares ${this.header.pageCount}`,
      );
    }
    const trailer = this.trailerHash.digest().subarray(0, SEGMENT_TRAILER_SIZE);
    await this.append(trailer, false);
    await this.handle.sync();
    await this.handle.close();
    this.done = true;
    return { bytes: this.bytes, sha256: this.fileHash?.digest('hex') ?? '' };
  }

  /** Closes and removes the file (after a failure). */
  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.handle.close().catch(() => undefined);
    await fs.rm(this.file, { force: true });
  }

  private checkPage(page: PageImage): void {
    const { pageNumber, data } = page;
    if (!Number.isInteger(pageNumber) || pageNumber <= this.lastPage || pageNumber > this.header.databaseSizePages) {
      throw new RangeError(
        `SegmentFileWriter: page number ${pageNumber} must be above ${this.lastPage} (ascending) and at most ${this.header.databaseSizePages}`,
      );
    }
    if (!(data instanceof Uint8Array) || data.length !== this.header.pageSize) {
      throw new RangeError(`SegmentFileWriter: page ${pageNumber} has ${data?.length ?? 'no'} bytes, expected ${this.header.pageSize}`);
    }
    if (this.pagesWritten >= this.header.pageCount) {
      throw new RangeError(`SegmentFileWriter: more than the ${this.header.pageCount} pages the header declares`);
    }
    this.lastPage = pageNumber;
  }

  private async flushChunk(): Promise<void> {
    const pages = this.pending;
    this.pending = [];
    const pageSize = this.header.pageSize;
    const rawLength = pages.length * (PAGE_NUMBER_SIZE + pageSize);
    if (this.raw === undefined || this.raw.length < rawLength)
      this.raw = Buffer.allocUnsafe(SEGMENT_CHUNK_PAGES * (PAGE_NUMBER_SIZE + pageSize));
    const raw = this.raw.subarray(0, rawLength);
    let offset = 0;
    for (const { pageNumber, data } of pages) {
      offset = raw.writeUInt32BE(pageNumber, offset);
      raw.set(data, offset);
      offset += pageSize;
    }
    // On the libuv thread pool by default: a large checkpoint does not hold the event loop. On this
    // thread when asked: lz4-napi's output then comes from this thread's allocator, and resident
    // memory stayed lower (a streamed 1 GiB segment).
    const compressed = this.compressHere ? compressSync(raw) : await compress(raw);
    const chunkHeader = Buffer.alloc(CHUNK_HEADER_SIZE);
    chunkHeader.writeUInt32BE(pages.length, 0);
    chunkHeader.writeUInt32BE(raw.length, 4);
    chunkHeader.writeUInt32BE(compressed.length, 8);
    await this.append(chunkHeader);
    await this.append(compressed);
    this.written += pages.length;
  }

  private async append(bytes: Buffer, coveredByTrailer = true): Promise<void> {
    let offset = 0;
    while (offset < bytes.length) {
      const { bytesWritten } = await this.handle.write(bytes, offset, bytes.length - offset, this.bytes + offset);
      offset += bytesWritten;
    }
    // The trailer covers everything before it; the file hash covers the trailer too.
    this.fileHash?.update(bytes);
    if (coveredByTrailer) this.trailerHash.update(bytes);
    this.bytes += bytes.length;
  }
}

/**
 * Where a segment lies in a file: the whole file (a segment file), or `length` bytes at `offset`
 * (a record of a term log file, docs/FORMAT.md §1.2).
 */
export interface SegmentSlice {
  offset?: number;
  length?: number;
}

/** A file handle that reads only a slice of its file, at offsets counted from the slice's start. */
class SliceHandle {
  private constructor(
    private readonly handle: fs.FileHandle,
    private readonly base: number,
    readonly size: number,
  ) {}

  static async open(file: string, slice: SegmentSlice = {}): Promise<SliceHandle> {
    const handle = await fs.open(file, 'r');
    try {
      const base = slice.offset ?? 0;
      const size = slice.length ?? Math.max(0, (await handle.stat()).size - base);
      return new SliceHandle(handle, base, size);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  async read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    const room = Math.max(0, Math.min(length, this.size - position));
    if (room === 0) return { bytesRead: 0 };
    return this.handle.read(buffer, offset, room, this.base + position);
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/**
 * Reads one segment file without holding it in memory. `open` runs the checks of docs/FORMAT.md
 * §6 that need no decompression (1 to 5, the trailer over the whole file); `chunks()` runs checks 6
 * and 7 as it goes and yields the page images chunk by chunk. Every error is a SegmentFormatError
 * whose message starts with the file's path (or the `name` given to `open`).
 */
export class SegmentFileReader {
  private constructor(
    readonly file: string,
    private readonly name: string,
    private readonly handle: SliceHandle,
    readonly header: SegmentHeader,
    /** Bytes in the file, trailer included. */
    readonly size: number,
  ) {}

  /** Where the chunk `chunks()` yielded last lies (for `litebase inspect`). */
  lastChunk: SegmentChunkLayout | undefined;

  static async open(file: string, options: { name?: string } & SegmentSlice = {}): Promise<SegmentFileReader> {
    const name = options.name ?? file;
    const handle = await SliceHandle.open(file, options);
    try {
      const { size } = handle;
      if (size < SEGMENT_HEADER_SIZE + SEGMENT_TRAILER_SIZE) {
        throw formatError(
          name,
          'SEGMENT_TRUNCATED',
          `a segment (header and trailer) needs at least ${SEGMENT_HEADER_SIZE + SEGMENT_TRAILER_SIZE} bytes, found ${size}`,
          {
            expected: SEGMENT_HEADER_SIZE + SEGMENT_TRAILER_SIZE,
            found: size,
          },
        );
      }
      const headerBytes = await readExactly(handle, SEGMENT_HEADER_SIZE, 0);
      const magic = headerBytes.subarray(0, MAGIC.length);
      if (!magic.equals(MAGIC)) {
        throw formatError(
          name,
          'SEGMENT_BAD_MAGIC',
          `not a segment: expected magic "LBSG" (${MAGIC.toString('hex')}), found ${magic.toString('hex')}`,
          {
            expected: MAGIC.toString('hex'),
            found: magic.toString('hex'),
          },
        );
      }
      await verifyTrailer(handle, size, name);
      let header: SegmentHeader;
      try {
        header = decodeSegmentHeader(headerBytes);
      } catch (error) {
        throw withName(error, name);
      }
      return new SegmentFileReader(file, name, handle, header, size);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** The page images, one array per chunk, in ascending page order. */
  async *chunks(): AsyncGenerator<PageImage[]> {
    const { header, name } = this;
    const end = this.size - SEGMENT_TRAILER_SIZE;
    let offset = SEGMENT_HEADER_SIZE;
    let pagesSoFar = 0;
    let previousPage = 0;
    let chunkIndex = 0;
    let lastChunkWasShort = false;
    while (offset < end) {
      if (pagesSoFar === header.pageCount) {
        throw corrupt(
          name,
          `${end - offset} bytes at offset ${offset} follow the last of the ${header.pageCount} pages the header declares; the trailer must come next`,
          {
            offset,
            expected: 0,
            found: end - offset,
          },
        );
      }
      if (lastChunkWasShort) {
        throw corrupt(
          name,
          `chunk ${chunkIndex} at offset ${offset} follows a chunk of fewer than ${SEGMENT_CHUNK_PAGES} pages; only the last chunk may be short`,
          {
            offset,
          },
        );
      }
      const where = `chunk ${chunkIndex} at offset ${offset}`;
      const available = end - offset;
      if (available < CHUNK_HEADER_SIZE) {
        throw corrupt(name, `${where}: a chunk header needs ${CHUNK_HEADER_SIZE} bytes, only ${available} remain before the trailer`, {
          offset,
          expected: CHUNK_HEADER_SIZE,
          found: available,
        });
      }
      const chunkHeader = await readExactly(this.handle, CHUNK_HEADER_SIZE, offset);
      const pagesInChunk = chunkHeader.readUInt32BE(0);
      const uncompressedLength = chunkHeader.readUInt32BE(4);
      const compressedLength = chunkHeader.readUInt32BE(8);
      if (pagesInChunk < 1 || pagesInChunk > SEGMENT_CHUNK_PAGES) {
        throw corrupt(name, `${where}: pages in chunk is ${pagesInChunk}, expected 1..${SEGMENT_CHUNK_PAGES}`, {
          offset,
          found: pagesInChunk,
        });
      }
      if (pagesSoFar + pagesInChunk > header.pageCount) {
        throw corrupt(
          name,
          `${where}: ${pagesInChunk} more pages would make ${pagesSoFar + pagesInChunk}, the header declares ${header.pageCount}`,
          {
            offset,
            expected: header.pageCount,
            found: pagesSoFar + pagesInChunk,
          },
        );
      }
      const expectedLength = pagesInChunk * (PAGE_NUMBER_SIZE + header.pageSize);
      if (uncompressedLength !== expectedLength) {
        throw corrupt(
          name,
          `${where}: uncompressed length is ${uncompressedLength}, expected ${pagesInChunk} * (4 + ${header.pageSize}) = ${expectedLength}`,
          {
            offset,
            expected: expectedLength,
            found: uncompressedLength,
          },
        );
      }
      const payloadStart = offset + CHUNK_HEADER_SIZE;
      const payloadRoom = end - payloadStart;
      if (compressedLength < LZ4_SIZE_PREFIX || compressedLength > payloadRoom) {
        throw corrupt(
          name,
          `${where}: compressed length is ${compressedLength}, expected ${LZ4_SIZE_PREFIX}..${payloadRoom} (the bytes before the trailer)`,
          {
            offset,
            expected: `${LZ4_SIZE_PREFIX}..${payloadRoom}`,
            found: compressedLength,
          },
        );
      }
      const payload = await readExactly(this.handle, compressedLength, payloadStart);
      const raw = decompress(payload, uncompressedLength, where, offset, name);
      const stride = PAGE_NUMBER_SIZE + header.pageSize;
      const pages: PageImage[] = [];
      for (let at = 0; at < raw.length; at += stride) {
        const pageNumber = raw.readUInt32BE(at);
        if (pageNumber <= previousPage || pageNumber > header.databaseSizePages) {
          throw corrupt(
            name,
            `chunk at offset ${offset}: page number ${pageNumber} must be above ${previousPage} (ascending, unique) and at most ${header.databaseSizePages} (database size)`,
            { offset, expected: `${previousPage + 1}..${header.databaseSizePages}`, found: pageNumber },
          );
        }
        previousPage = pageNumber;
        pages.push({ pageNumber, data: raw.subarray(at + PAGE_NUMBER_SIZE, at + stride) });
      }
      pagesSoFar += pagesInChunk;
      lastChunkWasShort = pagesInChunk < SEGMENT_CHUNK_PAGES;
      this.lastChunk = { offset, pagesInChunk, uncompressedLength, compressedLength };
      offset = payloadStart + compressedLength;
      chunkIndex++;
      yield pages;
    }
    if (pagesSoFar !== header.pageCount) {
      throw corrupt(name, `the body holds ${pagesSoFar} pages, the header declares ${header.pageCount}`, {
        expected: header.pageCount,
        found: pagesSoFar,
      });
    }
  }

  async close(): Promise<void> {
    await this.handle.close().catch(() => undefined);
  }
}

/** Reads and validates only the header of a segment file (no trailer check: see FORMAT.md §6). */
export async function readSegmentFileHeader(file: string, name = file, slice: SegmentSlice = {}): Promise<SegmentHeader> {
  const handle = await SliceHandle.open(file, slice);
  try {
    const { size } = handle;
    if (size < SEGMENT_HEADER_SIZE) {
      throw formatError(name, 'SEGMENT_TRUNCATED', `a segment header needs at least ${SEGMENT_HEADER_SIZE} bytes, found ${size}`, {
        expected: SEGMENT_HEADER_SIZE,
        found: size,
      });
    }
    try {
      return decodeSegmentHeader(await readExactly(handle, SEGMENT_HEADER_SIZE, 0));
    } catch (error) {
      throw withName(error, name);
    }
  } finally {
    await handle.close();
  }
}

async function verifyTrailer(handle: SliceHandle, size: number, name: string): Promise<void> {
  const end = size - SEGMENT_TRAILER_SIZE;
  const hash = createHash('sha256');
  const buffer = Buffer.allocUnsafe(Math.min(HASH_READ_BYTES, Math.max(end, 1)));
  for (let offset = 0; offset < end;) {
    const length = Math.min(buffer.length, end - offset);
    const { bytesRead } = await handle.read(buffer, 0, length, offset);
    if (bytesRead === 0)
      throw formatError(name, 'SEGMENT_TRUNCATED', `the file ended at ${offset} bytes while it was read, expected ${size}`);
    hash.update(buffer.subarray(0, bytesRead));
    offset += bytesRead;
  }
  const expected = hash.digest().subarray(0, SEGMENT_TRAILER_SIZE);
  const found = await readExactly(handle, SEGMENT_TRAILER_SIZE, end);
  if (!found.equals(expected)) {
    throw formatError(
      name,
      'SEGMENT_CHECKSUM_MISMATCH',
      `trailer checksum mismatch: the ${end} bytes before the trailer hash to ${expected.toString('hex')}, trailer holds ${found.toString('hex')}`,
      { expected: expected.toString('hex'), found: found.toString('hex') },
    );
  }
}

function decompress(payload: Buffer, uncompressedLength: number, where: string, offset: number, name: string): Buffer {
  const prefix = payload.readUInt32LE(0);
  if (prefix !== uncompressedLength) {
    throw corrupt(name, `${where}: LZ4 size prefix is ${prefix}, expected the uncompressed length ${uncompressedLength}`, {
      offset,
      expected: uncompressedLength,
      found: prefix,
    });
  }
  let raw: Buffer;
  try {
    // Synchronous on purpose: lz4-napi's async uncompress leaves its output memory with the
    // thread pool's allocator, and resident memory grew by the size of the file in a test.
    raw = uncompressSync(payload);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new SegmentFormatError('SEGMENT_CORRUPT', `${name}: ${where}: LZ4 data is invalid: ${reason}`, {
      details: { offset },
      cause: error,
    });
  }
  if (raw.length !== uncompressedLength) {
    throw corrupt(name, `${where}: LZ4 data decompresses to ${raw.length} bytes, expected ${uncompressedLength}`, {
      offset,
      expected: uncompressedLength,
      found: raw.length,
    });
  }
  return raw;
}

async function readExactly(handle: SliceHandle, length: number, position: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await handle.read(buffer, filled, length - filled, position + filled);
    if (bytesRead === 0) {
      throw new SegmentFormatError(
        'SEGMENT_TRUNCATED',
        `the file ended at ${position + filled} bytes, ${length - filled} more were expected`,
      );
    }
    filled += bytesRead;
  }
  return buffer;
}

function formatError(
  name: string,
  code: SegmentFormatErrorCode,
  message: string,
  details: Record<string, string | number> = {},
): SegmentFormatError {
  return new SegmentFormatError(code, `${name}: ${message}`, { details });
}

function corrupt(name: string, message: string, details: Record<string, string | number> = {}): SegmentFormatError {
  return formatError(name, 'SEGMENT_CORRUPT', message, details);
}

function withName(error: unknown, name: string): unknown {
  if (error instanceof SegmentFormatError) {
    return new SegmentFormatError(error.code, `${name}: ${error.message}`, {
      details: error.details as Record<string, string | number | boolean>,
      cause: error,
    });
  }
  return error;
}
