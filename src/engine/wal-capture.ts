import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { LitebaseError, systemErrorCode } from '../errors.js';
import { pageHash } from '../format/rolling-checksum.js';
import type { PageImage } from '../format/segment-codec.js';
import {
  parseWalHeader,
  scanWalFrames,
  walChecksum,
  WAL_FRAME_HEADER_SIZE,
  WAL_HEADER_SIZE,
  type WalChecksum,
  type WalHeader,
  type WalTransaction,
} from '../format/wal-format.js';

/** What a capture found: the transactions themselves, or, past the caller's limit, a LargeCapture. */
export type Captured = { kind: 'transactions'; transactions: WalTransaction[] } | { kind: 'large'; large: LargeCapture };

/** The WAL is read in pieces of about this size when a capture is too large to read at once. */
const SCAN_PIECE_BYTES = 2 * 1024 * 1024;

/**
 * One buffer for those pieces, kept once made: a scan runs synchronously, start to end, so every
 * capture of the process can share it. allocUnsafeSlow: 8-byte aligned, for the checksums.
 */
let scanPiece: Buffer | undefined;

/**
 * Follows the Primary's local -wal file and hands out the transactions committed since the last
 * call. It runs on the thread that commits, right after commits, so the file cannot change under
 * it. SQLite restarts the WAL from the top (new salts) after a full checkpoint; the capture notices
 * the new salts and starts over at the first frame.
 */
export class WalCapture {
  private header: WalHeader | null = null;
  private offset = WAL_HEADER_SIZE;
  private checksum: WalChecksum = { s1: 0, s2: 0 };

  constructor(readonly walFile: string) {}

  /** Bytes of the current WAL generation already captured (the size the local WAL has grown to). */
  get bytesConsumed(): number {
    return this.header ? this.offset : 0;
  }

  /** Transactions committed since the last call, in commit order (empty when none). */
  readCommitted(): WalTransaction[] {
    const captured = this.capture(Infinity);
    return captured.kind === 'transactions' ? captured.transactions : [];
  }

  /**
   * Transactions committed since the last call, in commit order. When the WAL has grown by more
   * than `largeBytes` since then (a transaction, or a group of them, too large to hold in memory),
   * the frames are read in bounded pieces instead and the answer is a LargeCapture: where the
   * newest image of each page lies in the WAL, and its page hash, but not the images themselves.
   */
  capture(largeBytes: number): Captured {
    const none: Captured = { kind: 'transactions', transactions: [] };
    const fd = this.open();
    if (fd === undefined) return none;
    try {
      const size = fstatSync(fd).size;
      if (size < WAL_HEADER_SIZE) return none;
      const headerBytes = Buffer.alloc(WAL_HEADER_SIZE);
      readSync(fd, headerBytes, 0, WAL_HEADER_SIZE, 0);
      const header = parseWalHeader(headerBytes);
      if (!header) return none;
      if (!this.header || header.salt1 !== this.header.salt1 || header.salt2 !== this.header.salt2) {
        // A new WAL generation: everything in it is new to us.
        this.header = header;
        this.offset = WAL_HEADER_SIZE;
        this.checksum = { s1: header.checksum1, s2: header.checksum2 };
      }
      if (size <= this.offset) return none;
      if (size - this.offset > largeBytes) return { kind: 'large', large: this.scanLarge(fd, header, size) };
      // allocUnsafeSlow: a buffer of its own, 8-byte aligned, so checksums can read words in place.
      const bytes = Buffer.allocUnsafeSlow(size - this.offset);
      const bytesRead = readSync(fd, bytes, 0, bytes.length, this.offset);
      const scan = scanWalFrames(bytes.subarray(0, bytesRead), header, this.checksum);
      this.offset += scan.consumedBytes;
      this.checksum = scan.checksum;
      return { kind: 'transactions', transactions: scan.transactions };
    } catch (error) {
      throw new LitebaseError('WAL_READ_FAILED', `cannot read ${this.walFile}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }

  /**
   * scanWalFrames over pieces of the file instead of one buffer: the same checks (salts, the
   * cumulative checksum, nothing after the last commit frame), keeping per frame only its page
   * number and the hash of its image (12 bytes). The pages are read again, newest image of each,
   * when the segment is written (LargeCapture.pages), from a descriptor of its own: the frames
   * stay where they are until the segment is durable, since the WAL is checkpointed only when
   * nothing is pending (docs/ARCHITECTURE.md §5.7), and a rebuild that deletes the file leaves
   * that descriptor reading the old one.
   */
  private scanLarge(fd: number, header: WalHeader, size: number): LargeCapture {
    const frameSize = WAL_FRAME_HEADER_SIZE + header.pageSize;
    const first = this.offset;
    const pieceBytes = Math.max(1, Math.floor(SCAN_PIECE_BYTES / frameSize)) * frameSize;
    if (scanPiece === undefined || scanPiece.length < pieceBytes)
      scanPiece = Buffer.allocUnsafeSlow(Math.max(pieceBytes, SCAN_PIECE_BYTES));
    const piece = scanPiece.subarray(0, pieceBytes);
    const frames = new FrameList();
    let checksum = this.checksum;
    let committed = { frames: 0, checksum, transactions: 0, databaseSizePages: 0 };
    scan: for (let at = first; at + frameSize <= size;) {
      const want = Math.min(piece.length, Math.floor((size - at) / frameSize) * frameSize);
      const count = Math.floor(readSync(fd, piece, 0, want, at) / frameSize);
      if (count === 0) break;
      const view = new DataView(piece.buffer, piece.byteOffset, count * frameSize);
      for (let index = 0; index < count; index++) {
        const offset = index * frameSize;
        if (view.getUint32(offset + 8) !== header.salt1 || view.getUint32(offset + 12) !== header.salt2) break scan;
        let next = walChecksum(piece.subarray(offset, offset + 8), header.bigEndianChecksums, checksum);
        const page = piece.subarray(offset + WAL_FRAME_HEADER_SIZE, offset + frameSize);
        next = walChecksum(page, header.bigEndianChecksums, next);
        if (next.s1 !== view.getUint32(offset + 16) || next.s2 !== view.getUint32(offset + 20)) break scan;
        checksum = next;
        const pageNumber = view.getUint32(offset);
        frames.push(pageNumber, pageHash(pageNumber, page));
        const commitSize = view.getUint32(offset + 4);
        if (commitSize !== 0) {
          committed = { frames: frames.length, checksum, transactions: committed.transactions + 1, databaseSizePages: commitSize };
        }
      }
      at += count * frameSize;
    }
    this.offset = first + committed.frames * frameSize;
    this.checksum = committed.checksum;
    return new LargeCapture(this.walFile, {
      frames,
      committedFrames: committed.frames,
      firstFrameOffset: first,
      pageSize: header.pageSize,
      transactionCount: committed.transactions,
      databaseSizePages: committed.databaseSizePages,
    });
  }

  /**
   * The WAL file stays open between captures: SQLite truncates it in place on checkpoint and never
   * replaces it while the database is open, so one descriptor sees every generation.
   */
  private fd: number | undefined;

  private open(): number | undefined {
    if (this.fd !== undefined) return this.fd;
    try {
      this.fd = openSync(this.walFile, 'r');
    } catch (error) {
      if (systemErrorCode(error) === 'ENOENT') return undefined;
      throw error;
    }
    return this.fd;
  }

  /** Release the descriptor (before the database's files are removed or replaced). */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  /** Forget the position (after the WAL was checkpointed and truncated, or on reopen). */
  reset(): void {
    this.header = null;
    this.offset = WAL_HEADER_SIZE;
    this.checksum = { s1: 0, s2: 0 };
  }
}

/** Page number and page hash of each frame scanned, in two growing typed arrays (12 bytes a frame). */
class FrameList {
  pageNumbers = new Uint32Array(4096);
  hashes = new BigUint64Array(4096);
  length = 0;

  push(pageNumber: number, hash: bigint): void {
    if (this.length === this.pageNumbers.length) {
      const pageNumbers = new Uint32Array(this.length * 2);
      pageNumbers.set(this.pageNumbers);
      this.pageNumbers = pageNumbers;
      const hashes = new BigUint64Array(this.length * 2);
      hashes.set(this.hashes);
      this.hashes = hashes;
    }
    this.pageNumbers[this.length] = pageNumber;
    this.hashes[this.length] = hash;
    this.length += 1;
  }
}

/**
 * The net change of a group of commits too large to hold in memory (WalCapture.capture): for
 * every page still inside the database after the last commit, ascending, the WAL frame that holds
 * its newest image and that image's page hash. `pages()` reads the images back from the WAL a
 * batch at a time. Call `close()` when done: it holds a descriptor of the WAL file.
 */
export class LargeCapture {
  /** Pages in the change, ascending. */
  readonly pageNumbers: Uint32Array;
  /** The rolling-checksum hash of each page's newest image (FORMAT.md §7), by index in pageNumbers. */
  readonly pageHashes: BigUint64Array;
  /** The frame (counted from the first one captured) that holds each page's newest image. */
  private readonly frameOf: Uint32Array;
  readonly transactionCount: number;
  readonly databaseSizePages: number;
  readonly pageSize: number;
  private readonly frameSize: number;
  private readonly firstFrameOffset: number;
  private fd: number | undefined;

  constructor(
    walFile: string,
    scan: {
      frames: FrameList;
      committedFrames: number;
      firstFrameOffset: number;
      pageSize: number;
      transactionCount: number;
      databaseSizePages: number;
    },
  ) {
    this.transactionCount = scan.transactionCount;
    this.databaseSizePages = scan.databaseSizePages;
    this.pageSize = scan.pageSize;
    this.frameSize = WAL_FRAME_HEADER_SIZE + scan.pageSize;
    this.firstFrameOffset = scan.firstFrameOffset;
    const { pageNumbers, hashes } = scan.frames;
    // Frames by page number, the newest first; the first of each page is its newest image. Pages
    // past the last commit's size were cut by it.
    const order = new Uint32Array(scan.committedFrames);
    for (let index = 0; index < order.length; index++) order[index] = index;
    order.sort((a, b) => (pageNumbers[a] as number) - (pageNumbers[b] as number) || b - a);
    let count = 0;
    for (let index = 0; index < order.length; index++) {
      const frame = order[index] as number;
      const pageNumber = pageNumbers[frame] as number;
      if (pageNumber > this.databaseSizePages) break;
      if (count > 0 && pageNumbers[order[count - 1] as number] === pageNumber) continue;
      order[count++] = frame;
    }
    this.frameOf = order.slice(0, count);
    this.pageNumbers = new Uint32Array(count);
    this.pageHashes = new BigUint64Array(count);
    for (let index = 0; index < count; index++) {
      const frame = this.frameOf[index] as number;
      this.pageNumbers[index] = pageNumbers[frame] as number;
      this.pageHashes[index] = hashes[frame] as bigint;
    }
    this.fd = count > 0 ? openSync(walFile, 'r') : undefined;
  }

  get pageCount(): number {
    return this.pageNumbers.length;
  }

  /**
   * The page images from index `start` on, `count` of them, read into `into` (at least `count`
   * frames long), which they are views of. Neighbouring frames are read with one call.
   */
  readPages(start: number, count: number, into: Buffer): PageImage[] {
    const fd = this.fd;
    if (fd === undefined) throw new Error('LargeCapture: already closed');
    const { frameSize } = this;
    const pages: PageImage[] = [];
    for (let index = 0; index < count;) {
      const firstFrame = this.frameOf[start + index] as number;
      let run = 1;
      while (index + run < count && this.frameOf[start + index + run] === firstFrame + run) run++;
      const length = run * frameSize;
      const at = index * frameSize;
      let filled = 0;
      while (filled < length) {
        const read = readSync(fd, into, at + filled, length - filled, this.firstFrameOffset + firstFrame * frameSize + filled);
        if (read === 0) throw new Error(`the WAL ended before frame ${firstFrame + run - 1} of a capture`);
        filled += read;
      }
      for (let k = 0; k < run; k++) {
        const frameAt = at + k * frameSize;
        pages.push({
          pageNumber: this.pageNumbers[start + index + k] as number,
          data: into.subarray(frameAt + WAL_FRAME_HEADER_SIZE, frameAt + frameSize),
        });
      }
      index += run;
    }
    return pages;
  }

  /**
   * Every page image in ascending order, `batchPages` at a time, each batch read into the same
   * buffer (a batch's images are valid until the next is asked for).
   */
  async *pages(batchPages: number): AsyncGenerator<PageImage[]> {
    const buffer = Buffer.allocUnsafe(batchPages * this.frameSize);
    for (let start = 0; start < this.pageCount; start += batchPages) {
      yield this.readPages(start, Math.min(batchPages, this.pageCount - start), buffer);
    }
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
