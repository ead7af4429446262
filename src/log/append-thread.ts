/**
 * An append thread (started by src/log/append-worker.ts): makes one segment durable per request
 * with synchronous file calls (temp file, write, fsync, link, fsync the folder), then rewrites the
 * log's head file. It keeps each folder's file descriptor open, so fsyncing the folder is one call.
 * All appends of one stream come to the same thread, in order (the pool's affinity key).
 */
import { closeSync, constants, fsyncSync, linkSync, openSync, rmSync, writeSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { writeFenceOpen } from '../cluster/lease-worker.js';

export interface AppendRequest {
  id: number;
  /** The log folder, `temp` the name written first, `target` the segment's final name in it. */
  dir: string;
  temp: string;
  target: string;
  bytes: Uint8Array;
  /** One writer of one log: the pool's affinity key, and what a failure stops. */
  stream: string;
  /** The writer's lease state (src/cluster/lease-worker.ts): no append once it is closed. */
  fence?: SharedArrayBuffer;
  /** The log's head file (src/log/log-head.ts) and what to write into it after the append. */
  head?: { file: string; content: string };
}

export interface ReplyError {
  code?: string;
  message: string;
}

export interface AppendReply {
  id: number;
  /** The append failed: nothing is left under the target name. */
  error?: ReplyError;
  /** The append succeeded but the head file could not be rewritten (a wake-up lost, nothing more). */
  headError?: ReplyError;
}

const dirFds = new Map<string, number>();
/**
 * After an append to a folder fails, later appends of the same stream are refused: writing
 * position N+1 when N failed would leave a hole in the log.
 */
const failedStreams = new Set<string>();

function dirFd(dir: string): number {
  let fd = dirFds.get(dir);
  if (fd === undefined) {
    fd = openSync(dir, 'r');
    dirFds.set(dir, fd);
  }
  return fd;
}

function replyError(caught: unknown): ReplyError {
  const code = (caught as { code?: unknown } | undefined)?.code;
  const error: ReplyError = { message: String((caught as { message?: unknown } | undefined)?.message) };
  if (typeof code === 'string') error.code = code;
  return error;
}

function leaseGone(): Error {
  return Object.assign(new Error('the lease is gone'), { code: 'ELEASE' });
}

/** The log's head file: rewritten in place, never fsynced; a failure is reported beside the (successful) append. */
function announce(head: { file: string; content: string }): ReplyError | undefined {
  try {
    const fd = openSync(head.file, constants.O_WRONLY | constants.O_CREAT, 0o644);
    try {
      writeSync(fd, head.content, 0);
    } finally {
      closeSync(fd);
    }
  } catch (caught) {
    return replyError(caught);
  }
  return undefined;
}

function writeDurably(request: AppendRequest): void {
  const { dir, temp, target, bytes, fence } = request;
  if (fence && !writeFenceOpen(fence)) throw leaseGone();
  const fd = openSync(temp, 'wx', 0o644);
  try {
    let offset = 0;
    while (offset < bytes.length) offset += writeSync(fd, bytes, offset, bytes.length - offset);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  // Checked again at the last moment: the process may have been paused since the message came.
  if (fence && !writeFenceOpen(fence)) throw leaseGone();
  linkSync(temp, target);
  try {
    try {
      fsyncSync(dirFd(dir));
    } catch {
      // A stale descriptor (folder replaced) gets one retry with a fresh one.
      const stale = dirFds.get(dir);
      dirFds.delete(dir);
      if (stale !== undefined) {
        try {
          closeSync(stale);
        } catch {
          // already unusable
        }
      }
      fsyncSync(dirFd(dir));
    }
  } catch (caught) {
    // Linked but not durable: best effort to leave nothing under the final name.
    try {
      rmSync(target, { force: true });
    } catch {
      // the fsync error is the one to report
    }
    throw caught;
  }
}

export function append(request: AppendRequest): AppendReply {
  const { id, stream, temp, head } = request;
  if (failedStreams.has(stream)) return { id, error: { code: 'EPIPELINE', message: 'an earlier segment of this stream failed' } };
  let error: ReplyError | undefined;
  try {
    writeDurably(request);
  } catch (caught) {
    failedStreams.add(stream);
    error = replyError(caught);
  }
  // The temp name goes before the answer, so nobody who was answered sees it.
  try {
    rmSync(temp, { force: true });
  } catch {
    // a leftover temp file is harmless: it never becomes a segment
  }
  if (error) return { id, error };
  // Replicas watching the head hear of the segment now, not after the hop back to the main thread.
  const headError = head ? announce(head) : undefined;
  return headError ? { id, headError } : { id };
}

parentPort?.on('message', (request: AppendRequest) => {
  parentPort?.postMessage(append(request));
});
