import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, promises as fs, readSync, writeSync } from 'node:fs';
import { decodeSegment, SEGMENT_HEADER_SIZE, SEGMENT_TRAILER_SIZE, type PageImage, type SegmentHeader } from '../format/segment-codec.js';
import { BUNDLE_LENGTH_SIZE, encodeBundle, type BundleImageVersion } from '../format/bundle-codec.js';

const MIN_SEGMENT_BYTES = SEGMENT_HEADER_SIZE + SEGMENT_TRAILER_SIZE;
const MAX_U32 = 0xffff_ffff;

/**
 * Writes a format 2 bundle. Segments are given in position order, whole (`append`) or, when too
 * large to hold, chunk by chunk as a streaming reader yields them (`appendChunks`); their pages go
 * to a spill file beside the bundle (memory holds a few numbers per page image, not the images),
 * and `finish()` encodes the bundle from it. `bytes` counts the segment files given (the threshold a compactor
 * closes bundles on), not the encoded size, which `finish()` answers.
 */
export class BundleWriter {
  private readonly segments: SegmentHeader[] = [];
  private readonly versions: BundleImageVersion[] = [];
  private spillOffset = 0;
  private inputBytes = 0;
  private pageSize = 0;
  private done = false;

  private constructor(
    readonly file: string,
    private readonly spillFile: string,
    private readonly spill: number,
  ) {}

  static async create(file: string): Promise<BundleWriter> {
    const spillFile = `${file}.spill`;
    await fs.rm(file, { force: true });
    const spill = openSync(spillFile, 'w+');
    return new BundleWriter(file, spillFile, spill);
  }

  /** Bytes of the segment files appended so far (with a 4-byte length each, as in format 1). */
  get bytes(): number {
    return this.inputBytes;
  }

  get segmentCount(): number {
    return this.segments.length;
  }

  /** Whether a segment with this header can follow (same database, page size, next position). */
  accepts(header: SegmentHeader): boolean {
    const last = this.segments.at(-1);
    if (!last) return true;
    return header.databaseId === last.databaseId && header.pageSize === last.pageSize && header.position === last.position + 1n;
  }

  /** Appends one whole segment file (verified again here: trailer, chunks, page numbers). */
  append(segment: Uint8Array): void {
    if (segment.length < MIN_SEGMENT_BYTES || segment.length > MAX_U32) {
      throw new RangeError(`BundleWriter: a segment of ${segment.length} bytes cannot be bundled`);
    }
    const { header, pages } = decodeSegment(segment);
    this.checkFollows(header);
    this.spillPages(pages, this.segments.length);
    this.segments.push(header);
    this.pageSize = header.pageSize;
    this.inputBytes += BUNDLE_LENGTH_SIZE + segment.length;
  }

  /**
   * Appends one segment of `fileBytes` bytes from the chunks of its streaming reader
   * (src/log/segment-stream.ts: trailer checked when it was opened, each chunk as it is decoded),
   * one chunk in memory at a time: a segment of a gigabyte is never held whole. `header` is the
   * reader's. Should a chunk fail, the pages taken from the segment so far are dropped and the error
   * is thrown: the bundle holds exactly the segments before it.
   */
  async appendChunks(header: SegmentHeader, fileBytes: number, chunks: AsyncIterable<readonly PageImage[]>): Promise<void> {
    if (fileBytes < MIN_SEGMENT_BYTES || fileBytes > MAX_U32) {
      throw new RangeError(`BundleWriter: a segment of ${fileBytes} bytes cannot be bundled`);
    }
    this.checkFollows(header);
    const versions = this.versions.length;
    const spillOffset = this.spillOffset;
    try {
      for await (const pages of chunks) this.spillPages(pages, this.segments.length);
    } catch (error) {
      // The spill bytes past the old offset are overwritten by whatever comes next.
      this.versions.length = versions;
      this.spillOffset = spillOffset;
      throw error;
    }
    this.segments.push(header);
    this.pageSize = header.pageSize;
    this.inputBytes += BUNDLE_LENGTH_SIZE + fileBytes;
  }

  private checkFollows(header: SegmentHeader): void {
    if (this.done) throw new Error(`BundleWriter: ${this.file} is already finished`);
    if (!this.accepts(header)) {
      const last = this.segments.at(-1) as SegmentHeader;
      throw new RangeError(
        `BundleWriter: position ${header.position} (page size ${header.pageSize}) cannot follow ${last.position} (page size ${last.pageSize}) in one bundle`,
      );
    }
  }

  private spillPages(pages: readonly PageImage[], segment: number): void {
    for (const { pageNumber, data } of pages) {
      writeFully(this.spill, data, this.spillOffset);
      this.versions.push({ pageNumber, segment, offset: this.spillOffset });
      this.spillOffset += data.length;
    }
  }

  /** Encodes the bundle, fsyncs and closes it, removes the spill file; answers its size and SHA-256. */
  async finish(): Promise<{ bytes: number; sha256: string; segments: number }> {
    if (this.done) throw new Error(`BundleWriter: ${this.file} is already finished`);
    if (this.segments.length === 0) throw new RangeError('BundleWriter: a bundle holds at least one segment');
    this.done = true;
    try {
      const fd = openSync(this.file, 'wx+');
      let written: { bytes: number; sha256: string };
      try {
        written = await encodeBundle(this.segments, this.versions, this.pageSize, {
          readImage: (image, offset) => readFully(this.spill, image, offset),
          write: (bytes, offset) => writeFully(fd, bytes, offset),
          read: (into, offset) => readFully(fd, into, offset),
        });
      } finally {
        closeSync(fd);
      }
      return { ...written, segments: this.segments.length };
    } catch (error) {
      await fs.rm(this.file, { force: true });
      throw error;
    } finally {
      closeSync(this.spill);
      await fs.rm(this.spillFile, { force: true });
    }
  }

  async abort(): Promise<void> {
    if (!this.done) {
      this.done = true;
      closeSync(this.spill);
    }
    await fs.rm(this.spillFile, { force: true });
    await fs.rm(this.file, { force: true });
  }
}

function writeFully(fd: number, bytes: Uint8Array, position: number): void {
  for (let done = 0; done < bytes.length;) done += writeSync(fd, bytes, done, bytes.length - done, position + done);
}

function readFully(fd: number, into: Buffer, position: number): void {
  for (let filled = 0; filled < into.length;) {
    const read = readSync(fd, into, filled, into.length - filled, position + filled);
    if (read === 0) throw new Error(`unexpected end of file at ${position + filled}`);
    filled += read;
  }
}

/** The SHA-256 of a file, hex (what the object store is asked to verify on upload). */
export async function sha256File(file: string): Promise<string> {
  const hash: Hash = createHash('sha256');
  const handle = await fs.open(file, 'r');
  try {
    const buffer = Buffer.allocUnsafe(4 * 1024 * 1024);
    for (let position = 0; ;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      position += bytesRead;
    }
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}
