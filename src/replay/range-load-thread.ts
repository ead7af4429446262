/**
 * A checkpoint load's thread (started by src/replay/range-loader.ts): reads one range file, checks
 * it against its manifest entry, hashes every page and writes the pages straight into the file
 * being loaded, at their offsets. What comes back is the pages' hashes (the loaded file's hash
 * table). A bootstrap is this work for every range of the database, so it runs on as many threads
 * as the machine has cores, while the calling thread only hands out files.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { LitebaseError, systemErrorCode } from '../errors.js';
import { assertRangeHeader, type ManifestRange } from '../format/checkpoint-manifest.js';
import { formatChecksum, hashPageImage } from '../format/rolling-checksum.js';
import { decodeSegment } from '../format/segment-codec.js';
import { writevFullySync } from '../storage/fs-util.js';
import { rangeOpenError } from './range-files.js';

export interface RangeLoadRequest {
  id: number;
  /** The range file's path. */
  file: string;
  /** How errors name it (loadCheckpoint passes the path itself). */
  name: string;
  range: ManifestRange;
  databaseId: string;
  pageSize: number;
  /** The file being loaded, open for writing in this process. */
  fd: number;
}

export interface RangeLoadReply {
  id: number;
  /** The hash of each of the range's pages, in page order (its buffer is transferred). */
  hashes?: BigUint64Array<ArrayBuffer>;
  /**
   * What failed: a check (`kind: 'check'`, a LitebaseError's code, message and details), or reading
   * or writing (`kind: 'system'`, the system error's code, such as EIO or ENOSPC).
   */
  error?: { kind: 'check' | 'system'; code: string; message: string; details: Record<string, unknown> };
}

/**
 * Load one range (docs/FORMAT.md §8.2, "Loading"). The file is read whole (a range is a few MiB:
 * `rangePages` pages, compressed) and decoded with every check of §6 but the trailer: the page
 * hashes, which a load computes anyway, must sum to the manifest entry's checksum, and that
 * proves the pages the load keeps. Hashing the file's bytes a second time for the trailer cost as
 * much as the page hashes themselves.
 */
export function loadRange(request: RangeLoadRequest): RangeLoadReply {
  const { range, name, pageSize } = request;
  try {
    let bytes: Buffer;
    try {
      bytes = readWhole(request.file);
    } catch (error) {
      throw rangeOpenError(error, name);
    }
    let decoded: ReturnType<typeof decodeSegment>;
    try {
      decoded = decodeSegment(bytes, { trailerVerified: true });
    } catch (error) {
      // The same message a streamed read gives: the file's name first.
      if (error instanceof LitebaseError)
        throw new LitebaseError(error.code, `${name}: ${error.message}`, { details: error.details, cause: error });
      throw error;
    }
    assertRangeHeader(decoded.header, range, name, request.databaseId);
    const hashes = new BigUint64Array(range.pages);
    let sum = 0n;
    decoded.pages.forEach((page, i) => {
      if (page.pageNumber !== range.firstPage + i) {
        throw new LitebaseError(
          'CHECKPOINT_INVALID',
          `${name} is not a valid checkpoint: page ${page.pageNumber} comes where page ${range.firstPage + i} belongs; a range holds its pages in order`,
          { details: { file: name } },
        );
      }
      const hash = hashPageImage(page.pageNumber, page.data as Buffer);
      hashes[i] = hash;
      sum ^= hash;
    });
    if (sum !== range.checksum) {
      throw new LitebaseError(
        'CHECKPOINT_CHECKSUM_MISMATCH',
        `${name}: its pages sum to checksum ${formatChecksum(sum)}, its manifest says ${formatChecksum(range.checksum)}`,
        { details: { file: name } },
      );
    }
    writevFullySync(
      request.fd,
      decoded.pages.map((page) => page.data),
      (range.firstPage - 1) * pageSize,
    );
    return { id: request.id, hashes };
  } catch (error) {
    if (error instanceof LitebaseError) {
      return { id: request.id, error: { kind: 'check', code: error.code, message: error.message, details: error.details } };
    }
    const message = error instanceof Error ? error.message : String(error);
    return { id: request.id, error: { kind: 'system', code: systemErrorCode(error) ?? 'EIO', message, details: { file: name } } };
  }
}

/**
 * The file's bytes, in a buffer this thread keeps for the next file (decoded pages never share
 * its memory). A new buffer per file of a few MiB was a new mapping of the system's each time,
 * and faulting it in cost more than the copy from the page cache.
 */
function readWhole(file: string): Buffer {
  const fd = openSync(file, 'r');
  try {
    const { size } = fstatSync(fd);
    if (readBuffer.length < size) readBuffer = Buffer.allocUnsafeSlow(Math.max(size, readBuffer.length * 2));
    let done = 0;
    while (done < size) {
      const read = readSync(fd, readBuffer, done, size - done, done);
      if (read === 0) break;
      done += read;
    }
    return readBuffer.subarray(0, done);
  } finally {
    closeSync(fd);
  }
}

let readBuffer = Buffer.alloc(0);

/** Let the read buffer go (a load on the calling thread is done: that thread keeps running). */
export function releaseReadBuffer(): void {
  readBuffer = Buffer.alloc(0);
}

parentPort?.on('message', (request: RangeLoadRequest) => {
  const reply = loadRange(request);
  parentPort?.postMessage(reply, reply.hashes ? [reply.hashes.buffer] : []);
});
