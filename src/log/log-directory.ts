import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, openSync, promises as fs, readFileSync, readSync } from 'node:fs';
import path from 'node:path';
import { LitebaseError, systemErrorCode } from '../errors.js';
import { formatPosition } from '../storage/layout.js';
import { positionsInFolder } from '../storage/fs-util.js';
import type { PageImage } from '../format/segment-codec.js';
import { appendWorkers, type AppendOutcome } from './append-worker.js';
import { SegmentFileWriter, type StreamHeaderInput } from './segment-stream.js';
import type { LogHead } from './log-head.js';

const SEGMENT_FILE = /^(\d{20})\.seg$/;

/**
 * One database's log folder on the shared file system: segments named by position.
 * Writing is the fence of docs/ARCHITECTURE.md §2.2: a segment appears under its final name only through
 * link() of a complete, fsynced temp file, and link() fails if the name exists, so two writers
 * can never both append the same position.
 */
export class LogDirectory {
  constructor(readonly dir: string) {}

  segmentPath(position: bigint): string {
    return path.join(this.dir, `${formatPosition(position)}.seg`);
  }

  /** Positions of the segments present, ascending. */
  async positions(): Promise<bigint[]> {
    return positionsInFolder(this.dir, SEGMENT_FILE);
  }

  async read(position: bigint): Promise<Buffer> {
    return fs.readFile(this.segmentPath(position));
  }

  /** The synchronous twin, for replay loops where a thread-pool round trip per small file dominates. */
  readSync(position: bigint): Buffer {
    return readFileSync(this.segmentPath(position));
  }

  /**
   * Read segment `position` into `scratch` when it fits (the answer is a view of it, valid until the
   * next call), else into a new buffer: a replay reads thousands of small files, and readFileSync's
   * fstat and fresh allocation per file cost as much as the read. Throws ENOENT like readSync.
   * A file larger than `maxBytes` is not read: the answer is undefined.
   */
  readSyncInto(position: bigint, scratch: Buffer, maxBytes = Infinity): Buffer | undefined {
    const fd = openSync(this.segmentPath(position), 'r');
    try {
      let length = 0;
      for (;;) {
        const room = scratch.length - length;
        const read = readSync(fd, scratch, length, room, length);
        length += read;
        // A regular file's read stops short only at its end: no stat, and no read that finds nothing.
        if (read < room) return scratch.subarray(0, length);
        if (length === scratch.length) break;
      }
      // Larger than the scratch buffer: read the whole file afresh, unless it is too large.
      if (fstatSync(fd).size > maxBytes) return undefined;
      return readFileSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Make `bytes` durable as segment `position` (temp file, fsync, link, fsync the folder, on an
   * append worker; src/log/append-thread.ts), and announce it in `head` (src/log/log-head.ts)
   * right after the answer. Resolves only once the file and its folder entry are fsynced. Appends with the
   * same `stream` run in the order they were called; after one fails, the rest of the stream fail. On failure nothing is left under the final name (best effort after a link that
   * could not be made durable), so a failed write never turns up after a restart. With `transfer`,
   * when `bytes` is the whole of its ArrayBuffer, that buffer is moved to the thread instead of
   * copied (it is empty here afterwards): a large segment is not held twice.
   */
  async append(
    position: bigint,
    bytes: Uint8Array,
    stream = this.dir,
    fence?: SharedArrayBuffer,
    head?: LogHead,
    options: { transfer?: boolean } = {},
  ): Promise<void> {
    const target = this.segmentPath(position);
    let outcome: AppendOutcome;
    try {
      outcome = await appendWorkers.append(stream, this.dir, target, bytes, fence, head?.announcement(position), options.transfer === true);
    } catch (error) {
      throw logWriteError(error, target);
    }
    if (outcome.headError) head?.announceFailed(outcome.headError);
    else head?.announced();
  }

  /**
   * Write a segment too large to hold in memory as bytes into a new temp file in this folder,
   * chunk by chunk (src/log/segment-stream.ts: exactly the bytes encodeSegment would make), and
   * fsync it. `batches` gives the pages in ascending order; a batch's buffers may be reused once
   * the next batch is asked for when every batch but the last holds exactly 256 pages. The file is
   * named like the append threads' temp files (`.tmp-append-*`), so a crash leaves garbage a new
   * writer sweeps, never a segment. `linkPrepared` then makes it the segment.
   */
  async writeSegmentFile(
    header: StreamHeaderInput,
    batches: AsyncIterable<readonly PageImage[]>,
  ): Promise<{ file: string; bytes: number }> {
    const file = path.join(this.dir, `.tmp-append-${randomBytes(6).toString('hex')}`);
    let writer: SegmentFileWriter | undefined;
    try {
      // Compressed on this thread: resident memory stayed lower than with the thread pool's allocator.
      writer = await SegmentFileWriter.create(file, header, { sha256: false, compressOnThisThread: true });
      for await (const pages of batches) await writer.writePages(pages);
      const { bytes } = await writer.finish();
      return { file, bytes };
    } catch (error) {
      await writer?.abort().catch(() => undefined);
      throw logWriteError(error, this.segmentPath(header.position));
    }
  }

  /**
   * Make `prepared` (from writeSegmentFile) segment `position`: on the stream's append thread, in
   * order with its appends, with the same fence and folder fsync (src/log/append-thread.ts). The
   * request is posted before this returns its promise, so an append called after it runs after it.
   * On failure the temp file is removed and nothing is left under the final name.
   */
  async linkPrepared(position: bigint, prepared: string, stream = this.dir, fence?: SharedArrayBuffer, head?: LogHead): Promise<void> {
    const target = this.segmentPath(position);
    let outcome: AppendOutcome;
    try {
      outcome = await appendWorkers.link(stream, this.dir, target, prepared, fence, head?.announcement(position));
    } catch (error) {
      throw logWriteError(error, target);
    }
    if (outcome.headError) head?.announceFailed(outcome.headError);
    else head?.announced();
  }

  /**
   * Remove append temp files (`.tmp-append-*`) older than `olderThanMs`: what a crashed writer, or
   * one whose folder went away mid-append, left behind. A temp name may still link a segment's
   * inode, so leaving it would keep the segment's space after the segment is trimmed. Only old
   * ones: a live writer's spare is younger than its 30 s idle limit. Never fails.
   */
  async sweepStaleTemps(olderThanMs = 120_000): Promise<number> {
    let removed = 0;
    let names: string[];
    try {
      names = await fs.readdir(this.dir);
    } catch {
      return 0;
    }
    const cutoff = Date.now() - olderThanMs;
    for (const name of names) {
      if (!name.startsWith('.tmp-append-')) continue;
      const file = path.join(this.dir, name);
      try {
        if ((await fs.stat(file)).mtimeMs < cutoff) {
          await fs.rm(file, { force: true });
          removed += 1;
        }
      } catch {
        // gone meanwhile, or unreadable: the next sweep tries again
      }
    }
    return removed;
  }

  /**
   * The writer of `stream` stopped appending here: its append thread removes the temp file it
   * created ahead for the stream's next segment. Never fails (a leftover temp file is harmless).
   */
  async releaseStream(stream: string): Promise<void> {
    await appendWorkers.release(stream, this.dir).catch(() => undefined);
  }
}

export function logWriteError(error: unknown, file: string): LitebaseError {
  const code = systemErrorCode(error);
  if (code === 'ELEASE') {
    return new LitebaseError('LEASE_LOST', `this node no longer holds the Primary lease; ${file} was not written`, {
      cause: error,
    });
  }
  if (code === 'EEXIST') {
    return new LitebaseError('LOG_POSITION_TAKEN', `another writer already wrote ${file}; this node steps down`, {
      cause: error,
    });
  }
  return new LitebaseError(
    'LOG_UNAVAILABLE',
    `cannot persist log segment ${file}: ${code ?? (error as Error).message}; the write was not applied`,
    { cause: error, details: { systemCode: code } },
  );
}
