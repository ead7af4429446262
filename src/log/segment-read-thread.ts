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

function grown(buffer: Uint8Array<ArrayBuffer>, used: number): Uint8Array<ArrayBuffer> {
  const larger = new Uint8Array(buffer.length * 2);
  larger.set(buffer.subarray(0, used));
  return larger;
}

parentPort?.on('message', (request: ReadRequest) => {
  const reply = readBatch(request);
  parentPort?.postMessage(reply, [reply.buffer]);
});
