import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, openSync, promises as fs, readdirSync, readFileSync, readSync } from 'node:fs';
import path from 'node:path';
import { LitebaseError, systemErrorCode } from '../errors.js';
import { formatPosition } from '../storage/layout.js';
import { readdirOrEmpty } from '../storage/fs-util.js';
import type { PageImage, SegmentHeader } from '../format/segment-codec.js';
import { appendWorkers, type AppendOutcome } from './append-worker.js';
import {
  readSegmentFileHeader,
  SegmentFileReader,
  SegmentFileWriter,
  type SegmentSlice,
  type StreamHeaderInput,
} from './segment-stream.js';
import { TermLogIndex, type SegmentLocation } from './term-log-index.js';
import type { RollLimits } from './term-log-writer.js';

export type { SegmentLocation } from './term-log-index.js';
import type { LogHead } from './log-head.js';

const SEGMENT_FILE = /^(\d{20})\.seg$/;

/** How the Primary writes its log (reading takes both, docs/FORMAT.md §1). */
export type LogFormat = 'segments' | 'terms';

/**
 * A term log file past this many bytes or segments is followed by a new one (docs/FORMAT.md §1.2):
 * files are trimmed whole, so these bound what a checkpoint leaves in the log before it.
 */
export const DEFAULT_TERM_LOG_ROLL = { bytes: 16 * 1024 * 1024, segments: 1024 } as const;

export interface LogDirectoryOptions {
  /** How this node appends: a file per segment (`segments`), or records in term log files (`terms`). */
  format?: LogFormat;
  /** The folder of the cluster's term files (`cluster/terms`); by default the one of this data dir. */
  termsDir?: string;
  /**
   * This node is the Primary of this term (it claimed it before it read the log): it accepts every
   * complete record of a lower term, and seals the log after them.
   */
  writerTerm?: bigint;
  /** Term log files are rolled over past this many segments (default DEFAULT_TERM_LOG_ROLL's). */
  rollSegments?: number;
}

/**
 * One database's log folder on the shared file system. The log is a sequence of segments
 * (docs/FORMAT.md §2-§6), each stored either as a file of its own (`<position>.seg`, §1.1) or as a
 * record of a term log file (`<first>-<term>.tlog`, §1.2); a log may hold segment files up to where
 * its term log files begin. Readers ask for segments by position and never see the difference.
 *
 * Writing keeps one writer per position: a segment file appears under its final name only through
 * link() of a complete, fsynced temp file, and link() fails if the name exists; a term log file is
 * created exclusively under a name that holds its term, and readers accept its records only as the
 * fence of §1.2 allows, so a deposed Primary can never extend the log that readers accept.
 */
export class LogDirectory {
  private readonly terms: TermLogIndex;
  readonly format: LogFormat;

  constructor(
    readonly dir: string,
    private readonly options: LogDirectoryOptions = {},
  ) {
    this.format = options.format ?? 'segments';
    const termsDir = options.termsDir ?? path.join(dir, '..', '..', '..', 'cluster', 'terms');
    this.terms = new TermLogIndex(dir, {
      termsDir,
      ...(options.writerTerm === undefined ? {} : { writerTerm: options.writerTerm }),
    });
  }

  /** The file a segment of its own would have at `position` (format `segments`). */
  segmentPath(position: bigint): string {
    return path.join(this.dir, `${formatPosition(position)}.seg`);
  }

  /** Where segment `position` is, for messages: its file, and the offset in a term log file. */
  describe(position: bigint): string {
    const location = this.terms.active ? this.terms.locate(position) : undefined;
    return location ? `${location.file} (position ${position} at offset ${location.offset})` : this.segmentPath(position);
  }

  /** Positions of the segments present, ascending. */
  async positions(): Promise<bigint[]> {
    const names = await readdirOrEmpty(this.dir);
    this.terms.refresh(names);
    const start = this.terms.firstPosition();
    const segments: bigint[] = [];
    for (const name of names) {
      const match = SEGMENT_FILE.exec(name);
      if (match?.[1]) {
        const position = BigInt(match[1]);
        if (start === undefined || position < start) segments.push(position);
      }
    }
    segments.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return start === undefined ? segments : [...segments, ...this.terms.positions()];
  }

  /**
   * Where segment `position` lies, or undefined when the log does not hold it (yet). A segment file
   * is given without a check that it exists (its reader finds out, and then looks for term log
   * files: see `atLocation`); a term log record only once the fence accepted it.
   */
  locate(position: bigint): SegmentLocation | undefined {
    const start = this.terms.firstPosition();
    if (start === undefined || position < start) return { file: this.segmentPath(position), offset: 0, length: undefined };
    const found = this.terms.locate(position);
    if (found) return found;
    this.terms.refresh(readdirSyncOrEmpty(this.dir));
    return this.terms.locate(position);
  }

  /**
   * Where up to `count` segments from `first` on lie, when the log holds them as term log records
   * (the accepted ones, in order, up to the first that is not); undefined when `first` lies before
   * the term log files, where segments are files of their own.
   */
  recordLocations(first: bigint, count: number): Array<{ file: string; offset: number; length: number }> | undefined {
    const start = this.terms.firstPosition();
    if (start === undefined || first < start) return undefined;
    const locations: Array<{ file: string; offset: number; length: number }> = [];
    for (let position = first; locations.length < count; position++) {
      const location = this.locate(position);
      if (location?.length === undefined) break;
      locations.push({ file: location.file, offset: location.offset, length: location.length });
    }
    return locations;
  }

  /**
   * Segment `position`'s bytes, whole. `allocate`: where to read them (a caller that decodes one
   * segment after another reuses one buffer instead of leaving one per segment to the collector).
   */
  async read(position: bigint, allocate?: (size: number) => Buffer): Promise<Buffer> {
    return this.atLocation(position, async (location) => {
      if (location.length === undefined && allocate === undefined) return fs.readFile(location.file);
      const handle = await fs.open(location.file, 'r');
      try {
        const length = location.length ?? (await handle.stat()).size;
        const bytes = allocate ? allocate(length) : Buffer.allocUnsafe(length);
        let filled = 0;
        while (filled < bytes.length) {
          const { bytesRead } = await handle.read(bytes, filled, bytes.length - filled, (location.offset ?? 0) + filled);
          if (bytesRead === 0) throw endedEarly(this.describe(position));
          filled += bytesRead;
        }
        return bytes;
      } finally {
        await handle.close();
      }
    });
  }

  /** Segment `position`'s header (docs/FORMAT.md §3), checked but without its trailer. */
  async readHeader(position: bigint): Promise<SegmentHeader> {
    return this.atLocation(position, (location) => readSegmentFileHeader(location.file, this.describe(position), sliceOf(location)));
  }

  /** A reader of segment `position` that holds one chunk in memory at a time (src/log/segment-stream.ts). */
  async openReader(position: bigint): Promise<SegmentFileReader> {
    return this.atLocation(position, (location) =>
      SegmentFileReader.open(location.file, { name: this.describe(position), ...sliceOf(location) }),
    );
  }

  /** Bytes of segment `position`. */
  async size(position: bigint): Promise<number> {
    return this.atLocation(position, async (location) => location.length ?? (await fs.stat(location.file)).size);
  }

  /**
   * Read segment `position` into `scratch` when it fits (the answer is a view of it, valid until the
   * next call), else into a new buffer: a replay reads thousands of small segments, and
   * readFileSync's fstat and fresh allocation per file cost as much as the read. Throws ENOENT when
   * the log does not hold it. A segment larger than `maxBytes` is not read: the answer is undefined.
   */
  readSyncInto(position: bigint, scratch: Buffer, maxBytes = Infinity): Buffer | undefined {
    const location = this.locateOrThrow(position);
    try {
      return this.readLocationInto(position, location, scratch, maxBytes);
    } catch (error) {
      if (!this.termsTookOver(position, location, error)) throw error;
      return this.readLocationInto(position, this.locateOrThrow(position), scratch, maxBytes);
    }
  }

  private readLocationInto(position: bigint, location: SegmentLocation, scratch: Buffer, maxBytes: number): Buffer | undefined {
    if (location.length !== undefined) {
      // A term log record: read by the index, through the descriptor it keeps, a window at a time.
      if (location.length > maxBytes) return undefined;
      const target = location.length <= scratch.length ? scratch.subarray(0, location.length) : Buffer.allocUnsafe(location.length);
      if (!this.terms.readRecord({ ...location, length: location.length }, target)) throw endedEarly(this.describe(position));
      return target;
    }
    const fd = openSync(location.file, 'r');
    try {
      if (location.length !== undefined) {
        if (location.length > maxBytes) return undefined;
        const target = location.length <= scratch.length ? scratch.subarray(0, location.length) : Buffer.allocUnsafe(location.length);
        let filled = 0;
        while (filled < target.length) {
          const read = readSync(fd, target, filled, target.length - filled, location.offset + filled);
          if (read === 0) throw endedEarly(this.describe(position));
          filled += read;
        }
        return target;
      }
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

  /** Run `read` on segment `position`'s location; once more if its segment file is missing because the log went on in term log files. */
  private async atLocation<T>(position: bigint, read: (location: SegmentLocation) => Promise<T>): Promise<T> {
    const location = this.locateOrThrow(position);
    try {
      return await read(location);
    } catch (error) {
      if (!this.termsTookOver(position, location, error)) throw error;
      return read(this.locateOrThrow(position));
    }
  }

  /** A segment file was missing: true when term log files (first seen now) hold the position instead. */
  private termsTookOver(position: bigint, location: SegmentLocation, error: unknown): boolean {
    if (location.length !== undefined || systemErrorCode(error) !== 'ENOENT') return false;
    this.terms.refresh(readdirSyncOrEmpty(this.dir));
    const start = this.terms.firstPosition();
    return start !== undefined && position >= start;
  }

  /**
   * Remove the storage of segments `positions` (ascending) that the log no longer needs: their
   * segment files, and each term log file whose accepted records all lie in the stretch of
   * `positions` that runs on from the log's first position, when the log goes on in a later file (a
   * term log file is removed whole, so some of `positions` may stay until the rest of their file
   * goes too). Answers the positions whose storage was removed, ascending.
   */
  async remove(positions: readonly bigint[]): Promise<bigint[]> {
    const present = await this.positions();
    const start = this.terms.firstPosition();
    const removed: bigint[] = [];
    const doomed = new Set(positions);
    for (const position of present) {
      if (start !== undefined && position >= start) break;
      if (!doomed.has(position)) continue;
      await fs.rm(this.segmentPath(position), { force: true });
      removed.push(position);
    }
    // The stretch from the log's first position on that is all to go.
    let through: bigint | undefined;
    for (const position of present) {
      if (!doomed.has(position)) break;
      through = position;
    }
    if (through !== undefined) {
      const files = new Set(this.terms.removableThrough(through));
      for (const position of present) {
        const location = start !== undefined && position >= start ? this.terms.locate(position) : undefined;
        if (location && files.has(location.file)) removed.push(position);
      }
      for (const file of files) await fs.rm(file, { force: true });
    }
    return removed;
  }

  private locateOrThrow(position: bigint): SegmentLocation {
    const location = this.locate(position);
    if (location) return location;
    throw Object.assign(new Error(`the log in ${this.dir} holds no segment ${position}`), { code: 'ENOENT' });
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
    const target = this.format === 'terms' ? `the term log in ${this.dir} (position ${position})` : this.segmentPath(position);
    let outcome: AppendOutcome;
    try {
      outcome =
        this.format === 'terms'
          ? await appendWorkers.appendRecord(
              stream,
              this.dir,
              { bytes, transfer: options.transfer === true },
              this.roll,
              fence,
              head?.announcement(position),
            )
          : await appendWorkers.append(stream, this.dir, target, bytes, fence, head?.announcement(position), options.transfer === true);
    } catch (error) {
      throw logWriteError(error, target);
    }
    if (outcome.headError) head?.announceFailed(outcome.headError);
    else head?.announced();
  }

  /**
   * Format `terms`: create the term log file of `term` that starts at `position + 1` (the log as this
   * Primary read it ends at `position`, with rolling checksum `checksum`), on the stream's append
   * thread, so that readers accept the lower terms' records before it and none after
   * (docs/FORMAT.md §1.2). The stream's next append goes into it. A no-op for format `segments`.
   */
  async seal(
    databaseId: string,
    term: bigint,
    position: bigint,
    checksum: bigint,
    stream = this.dir,
    fence?: SharedArrayBuffer,
  ): Promise<void> {
    if (this.format !== 'terms') return;
    const header = { databaseId, term, firstPosition: position + 1n, preChecksum: checksum, createdAtMs: Date.now() };
    try {
      await appendWorkers.seal(stream, this.dir, header, fence);
    } catch (error) {
      throw logWriteError(error, `the term log in ${this.dir} (term ${term}, from position ${position + 1n})`);
    }
  }

  private get roll(): RollLimits {
    return { bytes: DEFAULT_TERM_LOG_ROLL.bytes, segments: this.options.rollSegments ?? DEFAULT_TERM_LOG_ROLL.segments };
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
    const target = this.format === 'terms' ? `the term log in ${this.dir} (position ${position})` : this.segmentPath(position);
    let outcome: AppendOutcome;
    try {
      outcome =
        this.format === 'terms'
          ? await appendWorkers.appendRecord(stream, this.dir, { prepared }, this.roll, fence, head?.announcement(position))
          : await appendWorkers.link(stream, this.dir, target, prepared, fence, head?.announcement(position));
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

function sliceOf(location: SegmentLocation): SegmentSlice {
  return location.length === undefined ? { offset: location.offset } : { offset: location.offset, length: location.length };
}

function readdirSyncOrEmpty(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch (error) {
    if (systemErrorCode(error) === 'ENOENT') return [];
    throw error;
  }
}

function endedEarly(what: string): Error {
  return Object.assign(new Error(`${what}: the file ended before the segment did`), { code: 'ENOENT' });
}
