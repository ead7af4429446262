/**
 * The writing side of term log files (docs/FORMAT.md §1.2), run on an append thread
 * (src/log/append-thread.ts) with synchronous file calls. Each stream (one Primary's writer of one
 * database) keeps its current term log file open; a segment costs one write (frame and segment
 * together) and one fdatasync, and the writer's lease is checked again after the fdatasync, before
 * the answer. Metadata operations happen only when a file is created: when a Primary seals the log
 * of the terms before its own, and when a file rolls over.
 */
import { closeSync, constants, fdatasyncSync, fstatSync, fsyncSync, openSync, readSync, writeSync, writevSync } from 'node:fs';
import path from 'node:path';
import { writeFenceOpen } from '../cluster/lease-worker.js';
import { decodeSegmentHeader, SEGMENT_HEADER_SIZE } from '../format/segment-codec.js';
import {
  decodeTermLogHeader,
  encodeRecordFrame,
  encodeTermLogHeader,
  TERM_LOG_FRAME_SIZE,
  TERM_LOG_HEADER_SIZE,
  termLogFileName,
  type TermLogHeader,
} from '../format/term-log-codec.js';

interface OpenTermLog {
  dir: string;
  file: string;
  fd: number;
  /** Where the next record goes. */
  offset: number;
  term: bigint;
  /** The position the next record must have. */
  next: bigint;
  /** Records in the file. */
  records: number;
}

/** When a stream's term log file is followed by a new one: past either limit. */
export interface RollLimits {
  bytes: number;
  segments: number;
}

/** Copying a prepared segment file in: this much at a time. */
const COPY_BYTES = 4 * 1024 * 1024;

const openLogs = new Map<string, OpenTermLog>();

function leaseGone(): Error {
  return Object.assign(new Error('the lease is gone'), { code: 'ELEASE' });
}

/** Close the stream's term log file (its writer stopped, or an append failed). Never fails. */
export function releaseTermLog(stream: string): void {
  const log = openLogs.get(stream);
  openLogs.delete(stream);
  if (log) {
    try {
      closeSync(log.fd);
    } catch {
      // already closed
    }
  }
}

/**
 * Create the term log file `header` describes and make it the stream's current file: a new
 * Primary does this for each database right after it read the log of the terms before its own, so
 * that readers know where that log ends (the fence of docs/FORMAT.md §1.2).
 */
export function sealTermLog(stream: string, dir: string, header: TermLogHeader, fence?: SharedArrayBuffer): void {
  if (fence && !writeFenceOpen(fence)) throw leaseGone();
  releaseTermLog(stream);
  openLogs.set(stream, createTermLog(dir, header));
}

/**
 * Append `segment` (its bytes, or the path of a complete, fsynced segment file) as the next record
 * of the stream's term log file; durable on return. A new file is created when the stream has none,
 * when the segment's term or position does not continue it, or when it has reached a roll limit.
 * Throws ELEASE when the lease was gone before the write or is gone after the fdatasync: the
 * record may then be in the file, but it was never acknowledged.
 */
export function appendRecord(
  stream: string,
  dir: string,
  segment: Uint8Array | string,
  fence?: SharedArrayBuffer,
  roll: RollLimits = { bytes: Infinity, segments: Infinity },
): void {
  if (fence && !writeFenceOpen(fence)) throw leaseGone();
  const source = typeof segment === 'string' ? openSync(segment, 'r') : undefined;
  try {
    const { databaseId, term, position, preChecksum } = decodeSegmentHeader(
      source === undefined ? (segment as Uint8Array).subarray(0, SEGMENT_HEADER_SIZE) : readHead(source),
    );
    const length = source === undefined ? (segment as Uint8Array).length : fstatSync(source).size;
    let log = openLogs.get(stream);
    if (
      log &&
      (log.dir !== dir || log.term !== term || log.next !== position || log.offset >= roll.bytes || log.records >= roll.segments)
    ) {
      releaseTermLog(stream);
      log = undefined;
    }
    if (!log) {
      log = createTermLog(dir, { databaseId, term, firstPosition: position, preChecksum, createdAtMs: Date.now() });
      openLogs.set(stream, log);
    }
    const frame = encodeRecordFrame(length);
    if (source === undefined) writeAllv(log.fd, [frame, segment as Uint8Array], log.offset);
    else {
      writeAll(log.fd, frame, log.offset);
      copyInto(source, log.fd, log.offset + TERM_LOG_FRAME_SIZE, length);
    }
    fdatasyncSync(log.fd);
    log.offset += TERM_LOG_FRAME_SIZE + length;
    log.next = position + 1n;
    log.records += 1;
  } finally {
    if (source !== undefined) closeSync(source);
  }
  // Checked after the fdatasync: a Primary paused past its lease must not answer for a record the
  // next term's Primary may not have seen when it sealed the log.
  if (fence && !writeFenceOpen(fence)) throw leaseGone();
}

function createTermLog(dir: string, header: TermLogHeader): OpenTermLog {
  const file = path.join(dir, termLogFileName(header.firstPosition, header.term));
  const bytes = encodeTermLogHeader(header);
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o644);
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'EEXIST') throw error;
    // The same Primary opening the same database again in its term, with nothing appended since:
    // its own sealed file, still empty, is reused.
    fd = openSync(file, 'r+');
    if (!holdsOnlyHeader(fd, header)) {
      closeSync(fd);
      throw error;
    }
    return { dir, file, fd, offset: TERM_LOG_HEADER_SIZE, term: header.term, next: header.firstPosition, records: 0 };
  }
  try {
    writeAll(fd, bytes, 0);
    fsyncSync(fd);
    const folder = openSync(dir, 'r');
    try {
      fsyncSync(folder);
    } finally {
      closeSync(folder);
    }
  } catch (error) {
    closeSync(fd);
    throw error;
  }
  return { dir, file, fd, offset: TERM_LOG_HEADER_SIZE, term: header.term, next: header.firstPosition, records: 0 };
}

function holdsOnlyHeader(fd: number, header: TermLogHeader): boolean {
  if (fstatSync(fd).size !== TERM_LOG_HEADER_SIZE) return false;
  const bytes = Buffer.alloc(TERM_LOG_HEADER_SIZE);
  readSync(fd, bytes, 0, TERM_LOG_HEADER_SIZE, 0);
  try {
    const found = decodeTermLogHeader(bytes);
    return found.databaseId === header.databaseId && found.preChecksum === header.preChecksum;
  } catch {
    return false;
  }
}

function readHead(fd: number): Buffer {
  const head = Buffer.alloc(SEGMENT_HEADER_SIZE);
  readSync(fd, head, 0, SEGMENT_HEADER_SIZE, 0);
  return head;
}

function writeAll(fd: number, bytes: Uint8Array, at: number): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done, at + done);
}

function writeAllv(fd: number, parts: Uint8Array[], at: number): void {
  const total = parts.reduce((sum, part) => sum + part.length, 0);
  const written = writevSync(fd, parts, at);
  if (written === total) return;
  // Short write: the rest one part at a time.
  let offset = written;
  let skip = written;
  for (const part of parts) {
    if (skip >= part.length) {
      skip -= part.length;
      continue;
    }
    writeAll(fd, part.subarray(skip), at + offset);
    offset += part.length - skip;
    skip = 0;
  }
}

function copyInto(source: number, target: number, at: number, length: number): void {
  const buffer = Buffer.allocUnsafe(Math.min(COPY_BYTES, Math.max(length, 1)));
  for (let copied = 0; copied < length;) {
    const read = readSync(source, buffer, 0, Math.min(buffer.length, length - copied), copied);
    if (read === 0) throw Object.assign(new Error('the prepared segment file ended early'), { code: 'EIO' });
    writeAll(target, buffer.subarray(0, read), at + copied);
    copied += read;
  }
}
