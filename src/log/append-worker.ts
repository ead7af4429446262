import { WorkerPool } from '../threads/worker-pool.js';
import type { AppendReply, AppendRequest, ReplyError } from './append-thread.js';

/**
 * Segment appends run on worker threads (src/log/append-thread.ts) with synchronous file calls: one
 * message in, one out (the thread finishes the work that need not delay the answer after it). Done with fs.promises on the main thread, an append is nine thread-pool
 * round trips (open, write, fsync, close, link, open dir, fsync dir, close, unlink), and under load
 * each waits behind HTTP work on the event loop; that made a flush take 4x its disk time.
 */

/** The append succeeded; the head file may still have failed to update (a wake-up lost, nothing more). */
export interface AppendOutcome {
  headError?: Error;
}

function replyError(error: ReplyError): Error {
  const result = new Error(error.message) as Error & { code?: string };
  if (error.code) result.code = error.code;
  return result;
}

/** A small pool of append threads shared by every database of the process. */
class AppendWorkerPool {
  private readonly threads: WorkerPool<AppendRequest, AppendReply>;

  constructor(size: number) {
    this.threads = new WorkerPool<AppendRequest, AppendReply>(import.meta.url, './append-thread.js', size, 'append');
  }

  /**
   * Appends of one `stream` (one writer of one log) always go to the same thread, which runs them
   * in order: a writer may send segment N+1 before N is durable and still never leave a hole.
   */
  async append(
    stream: string,
    dir: string,
    target: string,
    bytes: Uint8Array,
    fence?: SharedArrayBuffer,
    head?: { file: string; content: string },
    transfer = false,
  ): Promise<AppendOutcome> {
    // Moved rather than copied only when the caller says so and the bytes are the whole buffer
    // (a Buffer from Node's shared pool must never be moved).
    const movable =
      transfer && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer;
    const reply = await this.threads.request(
      { dir, target, bytes, stream, fence, head },
      movable ? { affinity: stream, transfer: [bytes.buffer as ArrayBuffer] } : { affinity: stream },
    );
    if (reply.error) throw replyError(reply.error);
    return reply.headError ? { headError: replyError(reply.headError) } : {};
  }

  /**
   * Link `prepared`, a complete and fsynced segment file in `dir` that its writer wrote chunk by
   * chunk (a segment too large to send as bytes), to `target`: in order with the stream's appends,
   * with the same fence, and refused like them after a failed one.
   */
  async link(
    stream: string,
    dir: string,
    target: string,
    prepared: string,
    fence?: SharedArrayBuffer,
    head?: { file: string; content: string },
  ): Promise<AppendOutcome> {
    const reply = await this.threads.request(
      { kind: 'link', dir, target, prepared, bytes: new Uint8Array(0), stream, fence, head },
      { affinity: stream },
    );
    if (reply.error) throw replyError(reply.error);
    return reply.headError ? { headError: replyError(reply.headError) } : {};
  }

  /** The stream's writer stopped: its thread closes and removes the stream's spare temp file. */
  async release(stream: string, dir: string): Promise<void> {
    await this.threads.request({ kind: 'release', dir, target: '', bytes: new Uint8Array(0), stream }, { affinity: stream });
  }
}

/** Four threads: enough for several databases to fsync at once on two cores. */
export const appendWorkers = new AppendWorkerPool(4);
