/**
 * A read-ahead thread (started by src/log/segment-prefetch.ts): reads a batch of consecutive
 * segment files straight into one buffer that is then transferred, and checks each file's trailer.
 * Opening and reading thousands of small files and hashing them is most of a catch-up's work; the
 * thread that applies them is left with decompression, the checksum chain and the page writes.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { systemErrorCode } from '../errors.js';
import { LogDirectory } from './log-directory.js';
import { hasValidTrailer } from '../format/segment-codec.js';
import { LARGE_SEGMENT_BYTES } from './segment-runs.js';

export interface ReadRequest {
  id: number;
  dir: string;
  /** Decimal position of the first file. */
  first: string;
  /** At most this many files... */
  count: number;
  /** ...and at most about this many bytes. */
  maxBytes: number;
  /**
   * Where the segments from `first` on lie when the log holds them as term log records
   * (docs/FORMAT.md §1.2), found by the caller's index; without it, segment files by name.
   */
  locations?: Array<{ file: string; offset: number; length: number }>;
}

/** The files one after another in `buffer`: their sizes, and whether each trailer is right. */
export interface ReadReply {
  id: number;
  buffer: ArrayBuffer;
  sizes: number[];
  trailerVerified: boolean[];
  /** Reading failed (not a missing file: that just ends the batch). */
  error?: { code?: string; message: string };
}

/** Room kept free before each read; a file that does not fit is read on after the buffer grows. */
const MIN_ROOM = 64 * 1024;
/** The next batch's buffer is sized from the last one's, so it rarely has to grow. */
let capacity = 1024 * 1024;

export function readBatch(request: ReadRequest): ReadReply {
  if (request.locations) return readRecords(request, request.locations);
  const log = new LogDirectory(request.dir);
  let buffer = new Uint8Array(capacity);
  let used = 0;
  const sizes: number[] = [];
  const trailerVerified: boolean[] = [];
  let error: ReadReply['error'];
  try {
    for (let position = BigInt(request.first); sizes.length < request.count && used < request.maxBytes; position++) {
      let fd: number;
      try {
        fd = openSync(log.segmentPath(position), 'r');
      } catch (caught) {
        if (systemErrorCode(caught) === 'ENOENT') break;
        throw caught;
      }
      const start = used;
      let large = false;
      try {
        for (;;) {
          if (buffer.length - used < MIN_ROOM) buffer = grown(buffer, used);
          const room = Math.min(buffer.length - used, LARGE_SEGMENT_BYTES + 1 - (used - start));
          const read = readSync(fd, buffer, used, room, used - start);
          used += read;
          // A file too large to apply whole is applied from the file by the caller: the batch ends before it.
          if (used - start > LARGE_SEGMENT_BYTES) {
            large = true;
            used = start;
            break;
          }
          // A regular file's read stops short only at its end: no stat needed.
          if (read < room) break;
        }
      } finally {
        closeSync(fd);
      }
      if (large) break;
      sizes.push(used - start);
      trailerVerified.push(hasValidTrailer(buffer.subarray(start, used)));
    }
  } catch (caught) {
    error = { message: caught instanceof Error ? caught.message : String(caught) };
    const code = systemErrorCode(caught);
    if (code) error.code = code;
  }
  capacity = Math.max(1024 * 1024, Math.ceil(used * 1.25));
  const reply: ReadReply = { id: request.id, buffer: buffer.buffer as ArrayBuffer, sizes, trailerVerified };
  if (error) reply.error = error;
  return reply;
}

/** The batch from term log records: each a known slice of its file, read with one pread. */
function readRecords(request: ReadRequest, locations: NonNullable<ReadRequest['locations']>): ReadReply {
  let buffer = new Uint8Array(capacity);
  let used = 0;
  const sizes: number[] = [];
  const trailerVerified: boolean[] = [];
  let error: ReadReply['error'];
  const fds = new Map<string, number>();
  try {
    for (const location of locations) {
      if (sizes.length >= request.count || used >= request.maxBytes) break;
      // Too large to apply whole: the caller applies it from its file; the batch ends before it.
      if (location.length > LARGE_SEGMENT_BYTES) break;
      let fd = fds.get(location.file);
      if (fd === undefined) {
        try {
          fd = openSync(location.file, 'r');
        } catch (caught) {
          if (systemErrorCode(caught) === 'ENOENT') break;
          throw caught;
        }
        fds.set(location.file, fd);
      }
      if (buffer.length - used < location.length) buffer = grown(buffer, used, location.length);
      let filled = 0;
      while (filled < location.length) {
        const read = readSync(fd, buffer, used + filled, location.length - filled, location.offset + filled);
        if (read === 0) break;
        filled += read;
      }
      if (filled < location.length) break;
      sizes.push(location.length);
      trailerVerified.push(hasValidTrailer(buffer.subarray(used, used + location.length)));
      used += location.length;
    }
  } catch (caught) {
    error = { message: caught instanceof Error ? caught.message : String(caught) };
    const code = systemErrorCode(caught);
    if (code) error.code = code;
  } finally {
    for (const fd of fds.values()) closeSync(fd);
  }
  capacity = Math.max(1024 * 1024, Math.ceil(used * 1.25));
  const reply: ReadReply = { id: request.id, buffer: buffer.buffer as ArrayBuffer, sizes, trailerVerified };
  if (error) reply.error = error;
  return reply;
}

function grown(buffer: Uint8Array<ArrayBuffer>, used: number, atLeast = 0): Uint8Array<ArrayBuffer> {
  let length = buffer.length * 2;
  while (length - used < atLeast) length *= 2;
  const larger = new Uint8Array(length);
  larger.set(buffer.subarray(0, used));
  return larger;
}

parentPort?.on('message', (request: ReadRequest) => {
  const reply = readBatch(request);
  parentPort?.postMessage(reply, [reply.buffer]);
});
