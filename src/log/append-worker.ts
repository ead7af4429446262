import { Worker } from 'node:worker_threads';
import { writeFenceOpen } from '../cluster/lease-worker.js';

/**
 * Segment appends run on worker threads with synchronous file calls: one message in, one out.
 * Done with fs.promises on the main thread, an append is nine thread-pool round trips (open, write,
 * fsync, close, link, open dir, fsync dir, close, unlink), and under load each waits behind HTTP
 * work on the event loop; that made a flush take 4x its disk time. A worker keeps the folder's file
 * descriptor open, too, so fsyncing the folder is one call.
 *
 * The worker's code is plain JavaScript kept here as text, so the same code runs from the
 * compiled build and from the TypeScript sources under the test runner.
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
${writeFenceOpen.toString()}
const fs = require('node:fs');
const dirFds = new Map();
// After an append to a folder fails, later appends of the same stream are refused: writing
// position N+1 when N failed would leave a hole in the log.
const failedStreams = new Set();
function dirFd(dir) {
  let fd = dirFds.get(dir);
  if (fd === undefined) {
    fd = fs.openSync(dir, 'r');
    dirFds.set(dir, fd);
  }
  return fd;
}
// The log's head file (src/log/log-head.ts): rewritten in place, never fsynced; a failure is
// reported beside the (successful) append.
function announce({ file, content }) {
  try {
    const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT, 0o644);
    try { fs.writeSync(fd, content, 0); } finally { fs.closeSync(fd); }
  } catch (caught) {
    return { code: caught && caught.code, message: String(caught && caught.message) };
  }
  return undefined;
}
parentPort.on('message', ({ id, dir, temp, target, bytes, stream, fence, head }) => {
  let error;
  let headError;
  if (failedStreams.has(stream)) {
    error = { code: 'EPIPELINE', message: 'an earlier segment of this stream failed' };
  } else {
    let linked = false;
    try {
      if (fence && !writeFenceOpen(fence)) throw Object.assign(new Error('the lease is gone'), { code: 'ELEASE' });
      const fd = fs.openSync(temp, 'wx', 0o644);
      try {
        let offset = 0;
        while (offset < bytes.length) offset += fs.writeSync(fd, bytes, offset, bytes.length - offset);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      // Checked again at the last moment: the process may have been paused since the message came.
      if (fence && !writeFenceOpen(fence)) throw Object.assign(new Error('the lease is gone'), { code: 'ELEASE' });
      fs.linkSync(temp, target);
      linked = true;
      try {
        fs.fsyncSync(dirFd(dir));
      } catch {
        // A stale descriptor (folder replaced) gets one retry with a fresh one.
        const stale = dirFds.get(dir);
        dirFds.delete(dir);
        if (stale !== undefined) try { fs.closeSync(stale); } catch {}
        fs.fsyncSync(dirFd(dir));
      }
    } catch (caught) {
      failedStreams.add(stream);
      if (linked) try { fs.rmSync(target, { force: true }); } catch {}
      error = { code: caught && caught.code, message: String(caught && caught.message) };
    }
    // The temp name goes before the answer, so nobody who was answered sees it.
    try { fs.rmSync(temp, { force: true }); } catch {}
    // Replicas watching the head hear of the segment now, not after the hop back to the main thread.
    if (!error && head) headError = announce(head);
  }
  parentPort.postMessage(error ? { id, error } : { id, headError });
});
`;

interface AppendRequest {
  resolve: (outcome: AppendOutcome) => void;
  reject: (error: Error) => void;
}

/** The append succeeded; the head file may still have failed to update (a wake-up lost, nothing more). */
export interface AppendOutcome {
  headError?: Error;
}

interface AppendReply {
  id: number;
  error?: { code?: string; message: string };
  headError?: { code?: string; message: string };
}

function replyError(error: { code?: string; message: string }): Error {
  const result = new Error(error.message) as Error & { code?: string };
  if (error.code) result.code = error.code;
  return result;
}

/** A small pool of append workers shared by every database of the process. */
class AppendWorkerPool {
  private readonly workers: Array<Worker | undefined> = [];
  private readonly pending = new Map<number, AppendRequest>();
  private nextId = 1;

  constructor(private readonly size: number) {}

  /**
   * Appends of one `stream` (one writer of one log) always go to the same worker, which runs them
   * in order: a writer may send segment N+1 before N is durable and still never leave a hole.
   */
  append(
    stream: string,
    dir: string,
    temp: string,
    target: string,
    bytes: Uint8Array,
    fence?: SharedArrayBuffer,
    head?: { file: string; content: string },
  ): Promise<AppendOutcome> {
    const worker = this.pick(stream);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, dir, temp, target, bytes, stream, fence, head });
    });
  }

  private pick(stream: string): Worker {
    let hash = 0;
    for (let i = 0; i < stream.length; i++) hash = (hash * 31 + stream.charCodeAt(i)) >>> 0;
    const index = hash % this.size;
    const existing = this.workers[index];
    if (existing) return existing;
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.unref();
    worker.on('message', (reply: AppendReply) => this.settle(reply));
    worker.on('error', (error) => this.failAll(error));
    worker.on('exit', (code) => {
      if (this.workers[index] === worker) this.workers[index] = undefined;
      this.failAll(new Error(`append worker exited with code ${code}`));
    });
    this.workers[index] = worker;
    return worker;
  }

  private settle(reply: AppendReply): void {
    const request = this.pending.get(reply.id);
    if (!request) return;
    this.pending.delete(reply.id);
    if (reply.error) request.reject(replyError(reply.error));
    else request.resolve(reply.headError ? { headError: replyError(reply.headError) } : {});
  }

  private failAll(error: Error): void {
    for (const request of this.pending.values()) request.reject(error);
    this.pending.clear();
  }
}

/** Four workers: enough for several databases to fsync at once on two cores. */
export const appendWorkers = new AppendWorkerPool(4);
