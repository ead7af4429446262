import { createHash, type Hash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { LitebaseError } from '../errors.js';
import { SEGMENT_HEADER_SIZE, SEGMENT_TRAILER_SIZE } from '../log/segment-codec.js';

/**
 * A bundle: archived segments in one object (docs/FORMAT.md §11). The body is a sequence of
 * records, each a u32 big-endian length followed by that many bytes of one whole segment file, in
 * ascending position order with no gaps. Every segment keeps its own header and trailer, so a
 * bundle needs no checksum of its own: a damaged record fails its segment's trailer check, and a
 * cut-off bundle fails the length walk.
 */

export const BUNDLE_LENGTH_SIZE = 4;
const MIN_SEGMENT_BYTES = SEGMENT_HEADER_SIZE + SEGMENT_TRAILER_SIZE;
const MAX_U32 = 0xffff_ffff;

export class BundleFormatError extends LitebaseError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super('ARCHIVE_CORRUPT', message, { status: 500, details });
    this.name = 'BundleFormatError';
  }
}

/** Writes a bundle file record by record, hashing as it goes. */
export class BundleWriter {
  private readonly hash: Hash = createHash('sha256');
  private offset = 0;
  segments = 0;

  private constructor(
    readonly file: string,
    private readonly handle: fs.FileHandle,
  ) {}

  static async create(file: string): Promise<BundleWriter> {
    return new BundleWriter(file, await fs.open(file, 'wx'));
  }

  get bytes(): number {
    return this.offset;
  }

  async append(segment: Uint8Array): Promise<void> {
    if (segment.length < MIN_SEGMENT_BYTES || segment.length > MAX_U32) {
      throw new RangeError(`BundleWriter: a segment of ${segment.length} bytes cannot be bundled`);
    }
    const length = Buffer.alloc(BUNDLE_LENGTH_SIZE);
    length.writeUInt32BE(segment.length, 0);
    await this.write(length);
    await this.write(segment);
    this.segments += 1;
  }

  /** fsyncs and closes; answers the size and SHA-256 of the whole bundle. */
  async finish(): Promise<{ bytes: number; sha256: string }> {
    await this.handle.sync();
    await this.handle.close();
    return { bytes: this.offset, sha256: this.hash.digest('hex') };
  }

  async abort(): Promise<void> {
    await this.handle.close().catch(() => undefined);
    await fs.rm(this.file, { force: true });
  }

  private async write(bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await this.handle.write(bytes, done, bytes.length - done, this.offset + done);
      done += bytesWritten;
    }
    this.hash.update(bytes);
    this.offset += bytes.length;
  }
}

/**
 * The segments of a bundle file, one at a time (each is read whole: a segment is what one writer
 * held in memory). `name` (the object key) goes into every error. The whole-file SHA-256 is
 * available once the walk is done, for comparison with the archive index.
 */
export async function* readBundleFile(
  file: string,
  name: string,
  onRecord?: (offset: number, bytes: number) => void,
): AsyncGenerator<{ offset: number; segment: Buffer }> {
  const handle = await fs.open(file, 'r');
  try {
    const { size } = await handle.stat();
    let offset = 0;
    const lengthBytes = Buffer.alloc(BUNDLE_LENGTH_SIZE);
    while (offset < size) {
      if (size - offset < BUNDLE_LENGTH_SIZE) {
        throw new BundleFormatError(`${name}: ${size - offset} stray bytes at offset ${offset}, expected a 4-byte record length`, { key: name, offset });
      }
      await readFully(handle, lengthBytes, offset);
      const length = lengthBytes.readUInt32BE(0);
      const start = offset + BUNDLE_LENGTH_SIZE;
      if (length < MIN_SEGMENT_BYTES || length > size - start) {
        throw new BundleFormatError(
          `${name}: the record at offset ${offset} declares ${length} bytes; ${size - start} remain and a segment has at least ${MIN_SEGMENT_BYTES}`,
          { key: name, offset },
        );
      }
      const segment = Buffer.allocUnsafe(length);
      await readFully(handle, segment, start);
      onRecord?.(offset, BUNDLE_LENGTH_SIZE + length);
      yield { offset, segment };
      offset = start + length;
    }
  } finally {
    await handle.close();
  }
}

async function readFully(handle: fs.FileHandle, buffer: Buffer, position: number): Promise<void> {
  let filled = 0;
  while (filled < buffer.length) {
    const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, position + filled);
    if (bytesRead === 0) throw new BundleFormatError(`unexpected end of file at ${position + filled}`);
    filled += bytesRead;
  }
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  const handle = await fs.open(file, 'r');
  try {
    const buffer = Buffer.allocUnsafe(4 * 1024 * 1024);
    for (let position = 0; ; ) {
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
