import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { compressSync } from 'lz4-napi';
import { LitebaseError } from '../errors.js';
import { formatChecksum, hashPageImage, pageHash } from './rolling-checksum.js';
import {
  decodeSegment,
  decodeSegmentHeader,
  SEGMENT_HEADER_SIZE,
  SEGMENT_TRAILER_SIZE,
  segmentChecksum,
  type SegmentHeader,
} from './segment-codec.js';
import { checkedUncompress, decodePicks, sliceBlock, PAGE_NUMBER_SIZE, LZ4_SIZE_PREFIX, type PickList } from './bundle-picks.js';
import { collectNewestFirst, type SegmentSource } from './segment-source.js';
import { uuidFromBytes, uuidToBytes } from './uuid.js';

/**
 * Bundles: archived segments first..last in one object (docs/FORMAT.md §11.1).
 *
 * Format 2 (written since 2026-11-25) is **page-major**: the segments' headers in a table, then for
 * every page the bundle touches, its newest image in the bundle (LZ4 blocks of consecutive pages)
 * and its older images, each LZ4-compressed against the next newer image of the same page (a
 * reverse delta: a page written 500 times in a bundle costs one image and 499 small deltas). A
 * restore to a point after the bundle reads only the newest images, and only the blocks that hold
 * pages nothing newer overwrote; a restore to a point inside it walks the deltas of the pages the
 * later segments changed. Every segment's header and page set is kept, so the bundle is a lossless
 * re-encoding of its segments (`segmentPages`).
 *
 * Integrity, piece by piece, so that a restore checks exactly what it reads: a checksum over the
 * header and tables, a CRC-32 of every compressed block and older image (checked before it is
 * decompressed), and each image's page hash (FORMAT.md §7) in the tables, which a restore sums for
 * its final checksum instead of hashing the pages again. A trailer (8 bytes of SHA-256) covers the
 * whole object as well.
 *
 * Format 1 (read only): a sequence of records, each a u32 big-endian length and one whole segment
 * file as it was in the log.
 */

export const BUNDLE_LENGTH_SIZE = 4;
export const BUNDLE_MAGIC = Buffer.from('LBBN', 'ascii');
export const BUNDLE_FORMAT_VERSION = 2;
export const BUNDLE_HEADER_SIZE = 64;
export const BUNDLE_TRAILER_SIZE = 8;
const SEGMENT_ENTRY_SIZE = 48;
const PAGE_ENTRY_SIZE = 20;
const HISTORY_ENTRY_SIZE = 20;
/** Header bytes covered by the tables checksum (everything before it). */
const TABLES_CHECKSUM_OFFSET = 52;
const BLOCK_ENTRY_SIZE = 12;
/** Newest images are compressed in blocks of about this many raw bytes (16 pages of 4 KiB). */
const BLOCK_RAW_BYTES = 64 * 1024;
const MIN_SEGMENT_BYTES = SEGMENT_HEADER_SIZE + SEGMENT_TRAILER_SIZE;
const MAX_SAFE_MS = BigInt(Number.MAX_SAFE_INTEGER);

export class BundleFormatError extends LitebaseError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('ARCHIVE_CORRUPT', message, { details });
    this.name = 'BundleFormatError';
  }
}

/** Pages per block for a page size: at least one, about 64 KiB of images. */
export function blockPagesFor(pageSize: number): number {
  return Math.max(1, Math.floor(BLOCK_RAW_BYTES / pageSize));
}

// ---- writing (format 2) -------------------------------------------------------------------------

// ---- writing (format 2) -------------------------------------------------------------------------

/** One page image given to a bundle: which page, from which of its segments, where it is stored. */
export interface BundleImageVersion {
  pageNumber: number;
  segment: number;
  /** Where its image is in the spill file. */
  offset: number;
  /** Its page hash (FORMAT.md §7), once read back for encoding. */
  hash?: bigint;
}

/**
 * Blocks (or older images) compressed between two turns of the event loop. On this thread, not on
 * the libuv thread pool: lz4-napi's outputs come from the compressing thread's heap of its own
 * allocator, and the pool's threads, idle once a compaction's archive is done, kept their freed
 * pages resident (docs/ARCHITECTURE.md §18).
 */
const COMPRESS_BATCH = 8;

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Where `encodeBundle` reads page images from and writes the bundle to (a spill file and the bundle file, for BundleWriter). */
export interface BundleOutput {
  /** Reads the image stored at `offset` (a version's `offset`) into `into`. */
  readImage(into: Buffer, offset: number): void;
  /** Writes `bytes` at `offset` of the bundle. */
  write(bytes: Uint8Array, offset: number): void;
  /** Reads back bytes of the bundle written before. */
  read(into: Buffer, offset: number): void;
}

/**
 * Lays out a format 2 bundle through `io`: the tables have fixed sizes, so the compressed data is
 * written first at its final offset, the tables and header after it, then the file is hashed once
 * for the trailer. Compression runs on the libuv thread pool (a bundle does not hold the event loop
 * of the server it is built in); images are read from the spill file synchronously (page cache).
 */
export async function encodeBundle(
  segments: readonly SegmentHeader[],
  versions: BundleImageVersion[],
  pageSize: number,
  io: BundleOutput,
): Promise<{ bytes: number; sha256: string }> {
  const { readImage, write, read } = io;
  // Page-major: ascending page number, then ascending segment (the newest image last).
  versions.sort((a, b) => a.pageNumber - b.pageNumber || a.segment - b.segment);
  const pages: Array<{ pageNumber: number; newest: BundleImageVersion; older: BundleImageVersion[] }> = [];
  for (const version of versions) {
    const current = pages.at(-1);
    if (current && current.pageNumber === version.pageNumber) {
      current.older.push(current.newest);
      current.newest = version;
    } else {
      pages.push({ pageNumber: version.pageNumber, newest: version, older: [] });
    }
  }
  const historyCount = versions.length - pages.length;
  const blockPages = blockPagesFor(pageSize);
  const blockCount = Math.ceil(pages.length / blockPages);
  const dataStart =
    BUNDLE_HEADER_SIZE +
    segments.length * SEGMENT_ENTRY_SIZE +
    pages.length * PAGE_ENTRY_SIZE +
    historyCount * HISTORY_ENTRY_SIZE +
    blockCount * BLOCK_ENTRY_SIZE;

  {
    let offset = dataStart;
    const append = (compressed: Buffer): number => {
      write(compressed, offset);
      offset += compressed.length;
      return compressed.length;
    };
    const blockTable = Buffer.alloc(blockCount * BLOCK_ENTRY_SIZE);
    const stride = PAGE_NUMBER_SIZE + pageSize;
    for (let batch = 0; batch < blockCount; batch += COMPRESS_BATCH) {
      const raws: Buffer[] = [];
      for (let block = batch; block < Math.min(blockCount, batch + COMPRESS_BATCH); block++) {
        const members = pages.slice(block * blockPages, (block + 1) * blockPages);
        const raw = Buffer.allocUnsafe(members.length * stride);
        members.forEach((page, i) => {
          raw.writeUInt32BE(page.pageNumber, i * stride);
          const image = raw.subarray(i * stride + PAGE_NUMBER_SIZE, (i + 1) * stride);
          readImage(image, page.newest.offset);
          page.newest.hash = hashPageImage(page.pageNumber, image);
        });
        raws.push(raw);
      }
      const compressed = raws.map((raw) => compressSync(raw));
      await yieldToEventLoop();
      compressed.forEach((payload, i) => {
        const block = batch + i;
        blockTable.writeUInt32BE((raws[i] as Buffer).length / stride, block * BLOCK_ENTRY_SIZE);
        blockTable.writeUInt32BE(payload.length, block * BLOCK_ENTRY_SIZE + 4);
        blockTable.writeUInt32BE(crc32(payload), block * BLOCK_ENTRY_SIZE + 8);
        append(payload);
      });
    }
    // Older images, newest first within a page, each against the next newer one as dictionary.
    const historyTable = Buffer.alloc(historyCount * HISTORY_ENTRY_SIZE);
    let historyAt = 0;
    let pending: Array<{ segment: number; image: Buffer; dictionary: Buffer; hash: bigint }> = [];
    const flush = async (): Promise<void> => {
      const compressed = pending.map(({ image, dictionary }) => compressSync(image, dictionary));
      await yieldToEventLoop();
      compressed.forEach((payload, i) => {
        const entry = pending[i] as { segment: number; hash: bigint };
        historyTable.writeUInt32BE(entry.segment, historyAt);
        historyTable.writeUInt32BE(payload.length, historyAt + 4);
        historyTable.writeUInt32BE(crc32(payload), historyAt + 8);
        historyTable.writeBigUInt64BE(entry.hash, historyAt + 12);
        append(payload);
        historyAt += HISTORY_ENTRY_SIZE;
      });
      pending = [];
    };
    for (const page of pages) {
      if (page.older.length === 0) continue;
      let newer = Buffer.allocUnsafe(pageSize);
      readImage(newer, page.newest.offset);
      for (let i = page.older.length - 1; i >= 0; i--) {
        const version = page.older[i] as BundleImageVersion;
        const image = Buffer.allocUnsafe(pageSize);
        readImage(image, version.offset);
        pending.push({ segment: version.segment, image, dictionary: newer, hash: pageHash(page.pageNumber, image) });
        newer = image;
        if (pending.length >= COMPRESS_BATCH * 8) await flush();
      }
    }
    await flush();
    const pageTable = Buffer.alloc(pages.length * PAGE_ENTRY_SIZE);
    pages.forEach((page, i) => {
      pageTable.writeUInt32BE(page.pageNumber, i * PAGE_ENTRY_SIZE);
      pageTable.writeUInt32BE(page.newest.segment, i * PAGE_ENTRY_SIZE + 4);
      pageTable.writeUInt32BE(page.older.length, i * PAGE_ENTRY_SIZE + 8);
      pageTable.writeBigUInt64BE(page.newest.hash as bigint, i * PAGE_ENTRY_SIZE + 12);
    });
    const segmentTable = Buffer.alloc(segments.length * SEGMENT_ENTRY_SIZE);
    segments.forEach((segment, i) => {
      const at = i * SEGMENT_ENTRY_SIZE;
      segmentTable.writeBigUInt64BE(segment.term, at);
      segmentTable.writeBigUInt64BE(BigInt(segment.commitTimeMs), at + 8);
      segmentTable.writeUInt32BE(segment.databaseSizePages, at + 16);
      segmentTable.writeUInt32BE(segment.pageCount, at + 20);
      segmentTable.writeUInt32BE(segment.transactionCount, at + 24);
      segmentTable.writeBigUInt64BE(segment.preChecksum, at + 32);
      segmentTable.writeBigUInt64BE(segment.postChecksum, at + 40);
    });
    const first = segments[0] as SegmentHeader;
    const header = Buffer.alloc(BUNDLE_HEADER_SIZE);
    BUNDLE_MAGIC.copy(header, 0);
    header.writeUInt16BE(BUNDLE_FORMAT_VERSION, 4);
    uuidToBytes(first.databaseId).copy(header, 8);
    header.writeBigUInt64BE(first.position, 24);
    header.writeUInt32BE(segments.length, 32);
    header.writeUInt32BE(pageSize, 36);
    header.writeUInt32BE(pages.length, 40);
    header.writeUInt32BE(historyCount, 44);
    header.writeUInt32BE(blockCount, 48);
    const tables = [segmentTable, pageTable, historyTable, blockTable];
    tablesChecksum(header, tables).copy(header, TABLES_CHECKSUM_OFFSET);
    let at = 0;
    for (const part of [header, ...tables]) {
      write(part, at);
      at += part.length;
    }
    // One pass over the file for the trailer (bytes before it) and the object's SHA-256 (all of it).
    const trailerHash = createHash('sha256');
    const fileHash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(4 * 1024 * 1024);
    for (let position = 0; position < offset;) {
      const length = Math.min(buffer.length, offset - position);
      read(buffer.subarray(0, length), position);
      trailerHash.update(buffer.subarray(0, length));
      fileHash.update(buffer.subarray(0, length));
      position += length;
    }
    const trailer = trailerHash.digest().subarray(0, BUNDLE_TRAILER_SIZE);
    write(trailer, offset);
    fileHash.update(trailer);
    return { bytes: offset + trailer.length, sha256: fileHash.digest('hex') };
  }
}

// ---- reading ------------------------------------------------------------------------------------

// ---- reading ------------------------------------------------------------------------------------

/** Which format a bundle object is, from its first bytes. */
export function bundleFormatOf(bytes: Uint8Array): 1 | 2 {
  return bytes.length >= 4 && Buffer.from(bytes.buffer, bytes.byteOffset, 4).equals(BUNDLE_MAGIC) ? 2 : 1;
}

/**
 * Parses a bundle object held in memory, of either format. `expect` holds the positions its key
 * names and the database it must belong to. Integrity: a format 2 bundle's header and tables are
 * checked here (their own checksum), and its trailer over the whole object unless `whole` is false
 * (a reader that decodes only part of it relies on the CRC-32 each payload is checked against
 * before it is decompressed); a format 1 bundle's segments are checked by their trailers as they
 * are decoded. Throws BundleFormatError naming `name`.
 */
export function openBundle(
  bytes: Buffer,
  name: string,
  expect: { first: bigint; last: bigint; databaseId?: string; whole?: boolean },
): SegmentSource {
  const bundle =
    bundleFormatOf(bytes) === 2 ? PageMajorBundle.parse(bytes, name, expect.whole ?? true) : SegmentRecordBundle.parse(bytes, name);
  const first = bundle.headers[0]?.position;
  const last = bundle.headers.at(-1)?.position;
  if (first !== expect.first || last !== expect.last) {
    throw new BundleFormatError(`${name}: holds positions ${first}..${last}, its name says ${expect.first}..${expect.last}`, { key: name });
  }
  if (expect.databaseId !== undefined) {
    const foreign = bundle.headers.find((header) => header.databaseId !== expect.databaseId);
    if (foreign)
      throw new BundleFormatError(
        `${name}: position ${foreign.position} belongs to database ${foreign.databaseId}, not ${expect.databaseId}`,
        { key: name },
      );
  }
  return bundle;
}

/** The segment headers of a bundle object (for describing one the index does not list). */
export function bundleHeaders(bytes: Buffer, name: string): readonly SegmentHeader[] {
  return (bundleFormatOf(bytes) === 2 ? PageMajorBundle.parse(bytes, name, true) : SegmentRecordBundle.parse(bytes, name)).headers;
}

/** Format 2, parsed: tables decoded and cross-checked; images decompressed only when collected. */
export class PageMajorBundle implements SegmentSource {
  private constructor(
    readonly name: string,
    /** The whole bundle object, as read. */
    readonly bytes: Buffer,
    readonly headers: SegmentHeader[],
    readonly pageSize: number,
    private readonly pageTable: Buffer,
    private readonly historyTable: Buffer,
    private readonly blockOffsets: Float64Array,
    private readonly blockCrcs: Uint32Array,
    private readonly historyStart: number,
  ) {}

  /**
   * Checks the header and the tables (their checksum, then their consistency); payloads are checked
   * against their CRC-32 as they are decoded. `whole` also checks the trailer over the whole object
   * first (a restore does not: it decodes only what it needs, each payload checked).
   */
  static parse(bytes: Buffer, name: string, whole = false): PageMajorBundle {
    const fail = (message: string): never => {
      throw new BundleFormatError(`${name}: ${message}`, { key: name });
    };
    if (bytes.length < BUNDLE_HEADER_SIZE + BUNDLE_TRAILER_SIZE)
      fail(`${bytes.length} bytes, a bundle has at least ${BUNDLE_HEADER_SIZE + BUNDLE_TRAILER_SIZE}`);
    if (!bytes.subarray(0, 4).equals(BUNDLE_MAGIC)) fail(`not a format 2 bundle (magic ${bytes.subarray(0, 4).toString('hex')})`);
    const end = bytes.length - BUNDLE_TRAILER_SIZE;
    if (whole && !segmentChecksum(bytes.subarray(0, end)).equals(bytes.subarray(end)))
      fail('trailer checksum mismatch: the bundle is damaged or truncated');
    const version = bytes.readUInt16BE(4);
    if (version !== BUNDLE_FORMAT_VERSION) fail(`format version ${version}, this reader knows ${BUNDLE_FORMAT_VERSION}`);
    const databaseId = uuidFromBytes(bytes.subarray(8, 24));
    const first = bytes.readBigUInt64BE(24);
    const segmentCount = bytes.readUInt32BE(32);
    const pageSize = bytes.readUInt32BE(36);
    const pageCount = bytes.readUInt32BE(40);
    const historyCount = bytes.readUInt32BE(44);
    const blockCount = bytes.readUInt32BE(48);
    if (first < 1n || segmentCount < 1) fail(`first position ${first}, ${segmentCount} segments`);
    if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) fail(`page size ${pageSize}`);
    const blockPages = blockPagesFor(pageSize);
    if (blockCount !== Math.ceil(pageCount / blockPages))
      fail(`${blockCount} blocks for ${pageCount} pages, expected ${Math.ceil(pageCount / blockPages)}`);
    const tablesEnd =
      BUNDLE_HEADER_SIZE +
      segmentCount * SEGMENT_ENTRY_SIZE +
      pageCount * PAGE_ENTRY_SIZE +
      historyCount * HISTORY_ENTRY_SIZE +
      blockCount * BLOCK_ENTRY_SIZE;
    if (tablesEnd > end) fail(`its tables need ${tablesEnd} bytes, the body has ${end}`);
    const header = bytes.subarray(0, BUNDLE_HEADER_SIZE);
    if (
      !tablesChecksum(header, [bytes.subarray(BUNDLE_HEADER_SIZE, tablesEnd)]).equals(
        header.subarray(TABLES_CHECKSUM_OFFSET, TABLES_CHECKSUM_OFFSET + 8),
      )
    ) {
      fail('the header or tables are damaged (tables checksum mismatch)');
    }
    if (bytes.readUInt16BE(6) !== 0 || header.subarray(TABLES_CHECKSUM_OFFSET + 8).some((byte) => byte !== 0))
      fail('flags or reserved bytes are not zero');
    let at = BUNDLE_HEADER_SIZE;
    const take = (length: number): Buffer => {
      const part = bytes.subarray(at, at + length);
      at += length;
      return part;
    };
    const segmentTable = take(segmentCount * SEGMENT_ENTRY_SIZE);
    const pageTable = take(pageCount * PAGE_ENTRY_SIZE);
    const historyTable = take(historyCount * HISTORY_ENTRY_SIZE);
    const blockTable = take(blockCount * BLOCK_ENTRY_SIZE);

    const headers: SegmentHeader[] = [];
    for (let i = 0; i < segmentCount; i++) {
      const entry = i * SEGMENT_ENTRY_SIZE;
      const commitTime = segmentTable.readBigUInt64BE(entry + 8);
      if (commitTime > MAX_SAFE_MS || segmentTable.readUInt32BE(entry + 28) !== 0)
        fail(`segment ${i}: commit time or reserved field out of range`);
      headers.push({
        formatVersion: 1,
        databaseId,
        term: segmentTable.readBigUInt64BE(entry),
        position: first + BigInt(i),
        commitTimeMs: Number(commitTime),
        pageSize,
        databaseSizePages: segmentTable.readUInt32BE(entry + 16),
        pageCount: segmentTable.readUInt32BE(entry + 20),
        transactionCount: segmentTable.readUInt32BE(entry + 24),
        preChecksum: segmentTable.readBigUInt64BE(entry + 32),
        postChecksum: segmentTable.readBigUInt64BE(entry + 40),
      });
    }
    // Every image belongs to a segment that holds that page number, and each segment's page count
    // is the number of images that name it.
    const imagesPerSegment = new Uint32Array(segmentCount);
    let previousPage = 0;
    let history = 0;
    let historyBytes = 0;
    for (let i = 0; i < pageCount; i++) {
      const entry = i * PAGE_ENTRY_SIZE;
      const pageNumber = pageTable.readUInt32BE(entry);
      const newest = pageTable.readUInt32BE(entry + 4);
      const older = pageTable.readUInt32BE(entry + 8);
      if (pageNumber <= previousPage) fail(`page table entry ${i}: page ${pageNumber} after ${previousPage} (must ascend)`);
      previousPage = pageNumber;
      if (newest >= segmentCount || pageNumber > (headers[newest] as SegmentHeader).databaseSizePages)
        fail(`page ${pageNumber}: newest image in segment ${newest}, out of range`);
      if (older > historyCount - history)
        fail(`page ${pageNumber}: ${older} older images, the history table has ${historyCount - history} left`);
      imagesPerSegment[newest] = (imagesPerSegment[newest] as number) + 1;
      let below = newest;
      for (let j = 0; j < older; j++, history++) {
        const segment = historyTable.readUInt32BE(history * HISTORY_ENTRY_SIZE);
        const length = historyTable.readUInt32BE(history * HISTORY_ENTRY_SIZE + 4);
        if (segment >= below || pageNumber > (headers[segment] as SegmentHeader).databaseSizePages || length < LZ4_SIZE_PREFIX) {
          fail(`page ${pageNumber}: older image ${j} (segment ${segment}, ${length} bytes) out of range`);
        }
        below = segment;
        historyBytes += length;
        imagesPerSegment[segment] = (imagesPerSegment[segment] as number) + 1;
      }
    }
    if (history !== historyCount) fail(`the page table names ${history} older images, the header ${historyCount}`);
    headers.forEach((header, i) => {
      if (header.pageCount !== imagesPerSegment[i])
        fail(`segment ${header.position} declares ${header.pageCount} pages, the bundle holds ${imagesPerSegment[i]} images of it`);
    });
    const blockOffsets = new Float64Array(blockCount + 1);
    const blockCrcs = new Uint32Array(blockCount);
    let data = tablesEnd;
    let pagesInBlocks = 0;
    for (let b = 0; b < blockCount; b++) {
      const pages = blockTable.readUInt32BE(b * BLOCK_ENTRY_SIZE);
      const length = blockTable.readUInt32BE(b * BLOCK_ENTRY_SIZE + 4);
      blockCrcs[b] = blockTable.readUInt32BE(b * BLOCK_ENTRY_SIZE + 8);
      const expected = Math.min(blockPages, pageCount - pagesInBlocks);
      if (pages !== expected || length < LZ4_SIZE_PREFIX)
        fail(`block ${b}: ${pages} pages and ${length} bytes, expected ${expected} pages`);
      blockOffsets[b] = data;
      data += length;
      pagesInBlocks += pages;
    }
    blockOffsets[blockCount] = data;
    if (data + historyBytes !== end)
      fail(`the tables account for ${data + historyBytes - tablesEnd} bytes of data, the body holds ${end - tablesEnd}`);
    return new PageMajorBundle(name, bytes, headers, pageSize, pageTable, historyTable, blockOffsets, blockCrcs, data);
  }

  /**
   * Which image of which page to decode for `collect(lo, hi, want)`, from the tables alone (no
   * decompression): see PickList. `want` is asked once per page, about its newest image at or
   * below `hi`, when that image is at or above `lo`.
   */
  plan(lo: number, hi: number, want: (pageNumber: number, index: number) => boolean): PickList {
    const pageCount = this.pageTable.length / PAGE_ENTRY_SIZE;
    const blockPages = blockPagesFor(this.pageSize);
    const stride = PAGE_NUMBER_SIZE + this.pageSize;
    const list: number[] = [0];
    let blocks = 0;
    let pages = 0;
    let historyIndex = 0;
    let historyOffset = this.historyStart;
    for (let block = 0; block * blockPages < pageCount; block++) {
      const firstEntry = block * blockPages;
      const lastEntry = Math.min(pageCount, firstEntry + blockPages);
      const header = list.length;
      list.push(
        this.blockOffsets[block] as number,
        this.blockOffsets[block + 1] as number,
        this.blockCrcs[block] as number,
        (lastEntry - firstEntry) * stride,
        0,
      );
      let picked = 0;
      for (let entry = firstEntry; entry < lastEntry; entry++) {
        const at = entry * PAGE_ENTRY_SIZE;
        const pageNumber = this.pageTable.readUInt32BE(at);
        const newest = this.pageTable.readUInt32BE(at + 4);
        const older = this.pageTable.readUInt32BE(at + 8);
        let segment = newest;
        let depth = 0;
        for (; segment > hi && depth < older; depth++)
          segment = this.historyTable.readUInt32BE((historyIndex + depth) * HISTORY_ENTRY_SIZE);
        if (segment <= hi && segment >= lo && want(pageNumber, segment)) {
          // The page hash of the image handed out: the newest's, or that of the last older one walked to.
          const table = depth === 0 ? this.pageTable : this.historyTable;
          const hashAt = depth === 0 ? at + 12 : (historyIndex + depth - 1) * HISTORY_ENTRY_SIZE + 12;
          list.push((entry - firstEntry) * stride, pageNumber, depth, table.readUInt32BE(hashAt), table.readUInt32BE(hashAt + 4));
          let offset = historyOffset;
          for (let j = 0; j < depth; j++) {
            const history = (historyIndex + j) * HISTORY_ENTRY_SIZE;
            const length = this.historyTable.readUInt32BE(history + 4);
            list.push(offset, length, this.historyTable.readUInt32BE(history + 8));
            offset += length;
          }
          picked++;
        }
        for (let j = 0; j < older; j++) historyOffset += this.historyTable.readUInt32BE((historyIndex + j) * HISTORY_ENTRY_SIZE + 4);
        historyIndex += older;
      }
      if (picked === 0) {
        list.length = header; // nothing wanted from this block: it is not decompressed
      } else {
        list[header + 4] = picked;
        blocks++;
        pages += picked;
      }
    }
    list[0] = blocks;
    return { list: Float64Array.from(list), pages, pageSize: this.pageSize };
  }

  async collect(
    lo: number,
    hi: number,
    want: (pageNumber: number, index: number) => boolean,
    take: (pageNumber: number, image: Buffer, recordedHash: readonly [high: number, low: number]) => void,
    settle?: () => void | Promise<void>,
  ): Promise<void> {
    const picks = this.plan(lo, hi, want);
    const pending: Array<[number, Buffer, readonly [number, number]]> = [];
    const hand = async (): Promise<void> => {
      for (const [pageNumber, image, hash] of pending) take(pageNumber, image, hash);
      pending.length = 0;
      await settle?.();
    };
    try {
      // Decoded a block at a time (a block's images are views into one buffer): handed out, then settled.
      const { list } = picks;
      let at = 1;
      for (let block = 0; block < (list[0] as number); block++) {
        const blockList = sliceBlock(list, at);
        at = blockList.next;
        decodePicks(this.bytes, blockList.list, picks.pageSize, (pageNumber, image, hashHigh, hashLow) => {
          pending.push([pageNumber, Buffer.from(image.buffer, image.byteOffset, image.length), [hashHigh, hashLow]]);
        });
        await hand();
      }
    } catch (error) {
      if (error instanceof LitebaseError) throw error; // a damaged image found by the caller, named already
      throw new BundleFormatError(`${this.name}: ${error instanceof Error ? error.message : String(error)}`, { key: this.name });
    }
  }

  /** The pages segment `index` wrote, as it wrote them (its body, rebuilt), in ascending order; each image checked. */
  segmentPages(index: number): Array<{ pageNumber: number; data: Buffer }> {
    const pages: Array<{ pageNumber: number; data: Buffer }> = [];
    // The newest image at or below `index` that is at or above `index`: exactly the images of `index`.
    const picks = this.plan(index, index, () => true);
    try {
      decodePicks(this.bytes, picks.list, picks.pageSize, (pageNumber, image, hashHigh, hashLow) => {
        const data = Buffer.from(image);
        if (hashPageImage(pageNumber, data) !== ((BigInt(hashHigh) << 32n) | BigInt(hashLow)))
          throw new Error(`page ${pageNumber}: its image does not have the page hash recorded`);
        pages.push({ pageNumber, data });
      });
    } catch (error) {
      throw new BundleFormatError(`${this.name}: ${error instanceof Error ? error.message : String(error)}`, { key: this.name });
    }
    return pages;
  }

  /** Where the tables put things (for `litebase inspect`): counts, the blocks, the recorded checksums. */
  layout(): BundleLayout {
    const pageCount = this.pageTable.length / PAGE_ENTRY_SIZE;
    const blockPages = blockPagesFor(this.pageSize);
    const blocks = Array.from(this.blockCrcs, (crc, block) => ({
      offset: this.blockOffsets[block] as number,
      compressedLength: (this.blockOffsets[block + 1] as number) - (this.blockOffsets[block] as number),
      pages: Math.min(blockPages, pageCount - block * blockPages),
      crc32: crc,
    }));
    return {
      pages: pageCount,
      olderImages: this.historyTable.length / HISTORY_ENTRY_SIZE,
      dataStart: this.blockOffsets[0] as number,
      historyStart: this.historyStart,
      tablesChecksum: this.bytes.subarray(TABLES_CHECKSUM_OFFSET, TABLES_CHECKSUM_OFFSET + 8).toString('hex'),
      trailer: this.bytes.subarray(this.bytes.length - BUNDLE_TRAILER_SIZE).toString('hex'),
      blocks,
    };
  }

  /**
   * Decodes every image once, in data order (a block, then the older images of its pages, newest
   * first), each payload checked against its CRC-32 before it is decompressed, each block's page
   * numbers against the page table, and each image against the page hash the tables record: what
   * `litebase inspect` verifies beyond `parse`. Throws BundleFormatError at the first failure.
   */
  verifyImages(visit: (image: BundleImage) => void = () => undefined): void {
    const pageCount = this.pageTable.length / PAGE_ENTRY_SIZE;
    const blockPages = blockPagesFor(this.pageSize);
    const stride = PAGE_NUMBER_SIZE + this.pageSize;
    let historyIndex = 0;
    let historyOffset = this.historyStart;
    const check = (image: Omit<BundleImage, 'pageHash'>, data: Buffer, recorded: bigint): void => {
      const found = hashPageImage(image.pageNumber, data);
      if (found !== recorded) {
        const what = image.newest
          ? `the newest image of page ${image.pageNumber} (block at offset ${image.offset})`
          : `an older image of page ${image.pageNumber} (at offset ${image.offset})`;
        throw new Error(
          `${what}, from segment ${this.headers[image.segment]?.position}, has page hash ${formatChecksum(found)}, the tables record ${formatChecksum(recorded)}`,
        );
      }
      visit({ ...image, pageHash: found });
    };
    try {
      for (let block = 0; block * blockPages < pageCount; block++) {
        const first = block * blockPages;
        const last = Math.min(pageCount, first + blockPages);
        const offset = this.blockOffsets[block] as number;
        const end = this.blockOffsets[block + 1] as number;
        const crc = this.blockCrcs[block] as number;
        const raw = checkedUncompress(this.bytes, offset, end, crc, (last - first) * stride, `block ${block}`);
        for (let entry = first; entry < last; entry++) {
          const at = entry * PAGE_ENTRY_SIZE;
          const pageNumber = this.pageTable.readUInt32BE(at);
          const slot = (entry - first) * stride;
          if (raw.readUInt32BE(slot) !== pageNumber) {
            throw new Error(
              `block ${block} at offset ${offset} holds page ${raw.readUInt32BE(slot)} where the page table says ${pageNumber}`,
            );
          }
          let image = raw.subarray(slot + PAGE_NUMBER_SIZE, slot + stride);
          const segment = this.pageTable.readUInt32BE(at + 4);
          check(
            { pageNumber, segment, newest: true, offset, compressedLength: end - offset, crc32: crc },
            image,
            this.pageTable.readBigUInt64BE(at + 12),
          );
          const older = this.pageTable.readUInt32BE(at + 8);
          for (let j = 0; j < older; j++, historyIndex++) {
            const history = historyIndex * HISTORY_ENTRY_SIZE;
            const length = this.historyTable.readUInt32BE(history + 4);
            const historyCrc = this.historyTable.readUInt32BE(history + 8);
            image = checkedUncompress(
              this.bytes,
              historyOffset,
              historyOffset + length,
              historyCrc,
              this.pageSize,
              `older image ${j} of page ${pageNumber}`,
              image,
            );
            const olderSegment = this.historyTable.readUInt32BE(history);
            check(
              { pageNumber, segment: olderSegment, newest: false, offset: historyOffset, compressedLength: length, crc32: historyCrc },
              image,
              this.historyTable.readBigUInt64BE(history + 12),
            );
            historyOffset += length;
          }
        }
      }
    } catch (error) {
      throw new BundleFormatError(`${this.name}: ${error instanceof Error ? error.message : String(error)}`, { key: this.name });
    }
  }
}

/** A format 2 bundle's tables, as `PageMajorBundle.layout` answers them. */
export interface BundleLayout {
  /** Distinct pages (P). */
  pages: number;
  /** Images that are not the newest of their page (H). */
  olderImages: number;
  /** Offset of the first block: everything before it is header and tables. */
  dataStart: number;
  /** Offset of the first older image. */
  historyStart: number;
  /** As stored, hex. */
  tablesChecksum: string;
  trailer: string;
  blocks: Array<{ offset: number; compressedLength: number; pages: number; crc32: number }>;
}

/** One image of a format 2 bundle, as `PageMajorBundle.verifyImages` checked it. */
export interface BundleImage {
  pageNumber: number;
  /** Index of the segment that wrote it (its position is the bundle's first position plus this). */
  segment: number;
  /** The page's newest image in the bundle (in a block), or an older one (a delta against the next newer). */
  newest: boolean;
  /** Offset of its compressed payload: its block for a newest image. */
  offset: number;
  compressedLength: number;
  crc32: number;
  /** Its page hash (FORMAT.md §7), equal to the one recorded. */
  pageHash: bigint;
}

/** Format 1, parsed: the records' offsets and headers; segments are decoded when collected. */
export class SegmentRecordBundle implements SegmentSource {
  private constructor(
    readonly name: string,
    readonly headers: SegmentHeader[],
    private readonly records: Buffer[],
  ) {}

  static parse(bytes: Buffer, name: string): SegmentRecordBundle {
    const records: Buffer[] = [];
    const headers: SegmentHeader[] = [];
    for (let offset = 0; offset < bytes.length;) {
      if (bytes.length - offset < BUNDLE_LENGTH_SIZE) {
        throw new BundleFormatError(`${name}: ${bytes.length - offset} stray bytes at offset ${offset}, expected a 4-byte record length`, {
          key: name,
          offset,
        });
      }
      const length = bytes.readUInt32BE(offset);
      const start = offset + BUNDLE_LENGTH_SIZE;
      if (length < MIN_SEGMENT_BYTES || length > bytes.length - start) {
        throw new BundleFormatError(
          `${name}: the record at offset ${offset} declares ${length} bytes; ${bytes.length - start} remain and a segment has at least ${MIN_SEGMENT_BYTES}`,
          { key: name, offset },
        );
      }
      const record = bytes.subarray(start, start + length);
      let header: SegmentHeader;
      try {
        header = decodeSegmentHeader(record);
      } catch (error) {
        throw new BundleFormatError(`${name} (record at offset ${offset}): ${error instanceof Error ? error.message : String(error)}`, {
          key: name,
          offset,
        });
      }
      const previous = headers.at(-1);
      if (previous && header.position !== previous.position + 1n) {
        throw new BundleFormatError(
          `${name}: the record at offset ${offset} is position ${header.position}, expected ${previous.position + 1n}`,
          { key: name, offset },
        );
      }
      records.push(record);
      headers.push(header);
      offset = start + length;
    }
    if (headers.length === 0) throw new BundleFormatError(`${name}: holds no segment`, { key: name });
    return new SegmentRecordBundle(name, headers, records);
  }

  /** Each record: the offset of its length prefix in the bundle and the segment file it holds, as stored (for `litebase inspect`). */
  recordList(): Array<{ offset: number; segment: Buffer }> {
    let offset = 0;
    return this.records.map((segment) => {
      const at = offset;
      offset += BUNDLE_LENGTH_SIZE + segment.length;
      return { offset: at, segment };
    });
  }

  collect(
    lo: number,
    hi: number,
    want: (pageNumber: number, index: number) => boolean,
    take: (pageNumber: number, image: Buffer, expectedHash: undefined) => void,
    settle?: () => void | Promise<void>,
  ): Promise<void> {
    return collectNewestFirst(
      lo,
      hi,
      (index) => {
        try {
          return decodeSegment(this.records[index] as Buffer).pages;
        } catch (error) {
          throw new BundleFormatError(
            `${this.name} (position ${this.headers[index]?.position}): ${error instanceof Error ? error.message : String(error)}`,
            { key: this.name },
          );
        }
      },
      want,
      take,
      settle,
    );
  }
}

// ---- helpers ------------------------------------------------------------------------------------

/** First 8 bytes of SHA-256 over the header's first 52 bytes and the four tables. */
function tablesChecksum(header: Buffer, tables: readonly Buffer[]): Buffer {
  const hash = createHash('sha256').update(header.subarray(0, TABLES_CHECKSUM_OFFSET));
  for (const table of tables) hash.update(table);
  return hash.digest().subarray(0, 8);
}
