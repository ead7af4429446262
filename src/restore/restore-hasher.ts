import { createHash } from 'node:crypto';
import { hashPageImage } from '../format/rolling-checksum.js';
import { WorkerPool, type WithoutId } from '../threads/worker-pool.js';
import type { HashReply, HashRequest } from './restore-hash-thread.js';

/**
 * The page hashes of a restore (FORMAT.md §7): recorded ones (a format 2 bundle records each
 * image's page hash), and computed ones for pages that come
 * without (checkpoints, the shared log, format 1 bundles), on a worker thread while the main thread
 * decompresses and writes; and the SHA-256 of objects checked whole (format 1 bundles). SHA-256 of
 * every page of a large restore costs about as much as decompressing them, hence the worker; it is
 * started only when there is such work. (Decompressing on worker threads was tried too: LZ4 ran at
 * half its main-thread speed there, and two threads wrote one file no faster than one.)
 *
 * Buffers cross by transfer, not copy: page images are handed over once they are written (the
 * worker writes each page's hash into one shared array); an object to digest comes back with its
 * digest. Small restores hash on the calling thread (a worker costs tens of milliseconds to start).
 *
 * The threads (src/restore/restore-hash-thread.ts) serve the whole process; all of one restore's
 * requests go to the same one, in order.
 */
const hashThreads = new WorkerPool<HashRequest, HashReply>(import.meta.url, './restore-hash-thread.js', 2, 'restore-hasher');

/** Each hasher's affinity key: its requests stay on one thread, in order. */
let hashers = 0;

/** Bytes handed to the worker and not hashed yet, before the caller waits. */
const MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024;

/** A page image to hash. */
export interface PageToHash {
  pageNumber: number;
  image: Uint8Array;
}

export class RestoreHasher {
  /** The thread was asked for (on first use, when the restore is large enough for one). */
  private onThread = false;
  /** The thread answered once: objects are hashed there from now on. */
  private ready = false;
  private readonly affinity = `restore-${++hashers}`;
  /** Page p's hash is hashes[2p - 2] (high 32 bits) and hashes[2p - 1] (low): no BigInt per page. */
  private hashes: Uint32Array<ArrayBufferLike> = new Uint32Array(0);
  private pageSize = 0;
  /** Bytes handed to the thread and not hashed yet. */
  private inFlight = 0;
  private failure: Error | undefined;
  private waiters: Array<() => void> = [];

  /** `onWorker`: hashing worth a worker thread may come (a restore of a few megabytes or more). */
  constructor(private readonly onWorker: boolean) {}

  /** Hashes from now on are of a database of `databaseSizePages` pages. */
  startPages(pageSize: number, databaseSizePages: number): void {
    this.pageSize = pageSize;
    this.hashes = new Uint32Array(this.onWorker ? new SharedArrayBuffer(databaseSizePages * 8) : new ArrayBuffer(databaseSizePages * 8));
  }

  /** The hash of a page its source recorded, as two 32-bit halves. */
  record(pageNumber: number, high: number, low: number): void {
    this.hashes[2 * pageNumber - 2] = high;
    this.hashes[2 * pageNumber - 1] = low;
  }

  /**
   * The SHA-256 (hex) of `bytes`, and the bytes (a new Buffer over the same memory when they went
   * to the worker and came back: use the answer's, not the argument).
   */
  async sha256(bytes: Buffer): Promise<{ digest: string; bytes: Buffer }> {
    // Until the thread has started, the calling thread (waiting for this download) hashes.
    if (!this.started() || !this.ready || !ownsMemory(bytes)) return { digest: createHash('sha256').update(bytes).digest('hex'), bytes };
    const length = bytes.length; // the buffer is detached once sent
    const answer = await this.send({ kind: 'digest', buffer: bytes.buffer as ArrayBuffer, length }, [bytes.buffer as ArrayBuffer], 0);
    return { digest: answer.digest as string, bytes: Buffer.from(answer.buffer as ArrayBuffer, 0, length) };
  }

  /**
   * Hash these pages (already written: their buffers may go to the worker and become unusable
   * here). Every image must lie in a buffer of its own making (decompressed output), which nothing
   * else reads any more.
   */
  hashPages(pages: readonly PageToHash[]): void {
    if (pages.length === 0) return;
    if (this.failure) throw this.failure;
    if (!this.started()) {
      for (const { pageNumber, image } of pages) {
        const hash = hashPageImage(pageNumber, Buffer.from(image.buffer, image.byteOffset, image.length));
        this.record(pageNumber, Number(hash >> 32n), Number(hash & 0xffff_ffffn));
      }
      return;
    }
    const buffers: ArrayBuffer[] = [];
    const indexOf = new Map<ArrayBufferLike, number>();
    const entries = new Float64Array(pages.length * 3);
    pages.forEach(({ pageNumber, image }, i) => {
      let source = image.buffer;
      let offset = image.byteOffset;
      // Buffers from Node's small-allocation pool are shared with unrelated data: copy those.
      if (source.byteLength <= Buffer.poolSize || !(source instanceof ArrayBuffer)) {
        const copy = new Uint8Array(image.length);
        copy.set(image);
        source = copy.buffer;
        offset = 0;
      }
      let index = indexOf.get(source);
      if (index === undefined) {
        index = buffers.length;
        buffers.push(source as ArrayBuffer);
        indexOf.set(source, index);
      }
      entries[i * 3] = index;
      entries[i * 3 + 1] = offset;
      entries[i * 3 + 2] = pageNumber;
    });
    const request = {
      kind: 'pages' as const,
      hashes: this.hashes.buffer as SharedArrayBuffer,
      pageSize: this.pageSize,
      buffers,
      pages: entries,
    };
    this.send(request, [...buffers, entries.buffer], pages.length * this.pageSize).catch((error: Error) => this.fail(error));
  }

  /** Waits while the worker is far behind (memory stays bounded); throws a failure it reported. */
  async room(): Promise<void> {
    while (this.onThread && this.inFlight > MAX_IN_FLIGHT_BYTES && !this.failure) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    if (this.failure) throw this.failure;
  }

  /** Every page hash handed in or recorded, once hashed (page p's: [2p - 2] high, [2p - 1] low). */
  async pageHashes(): Promise<Uint32Array<ArrayBufferLike>> {
    if (this.onThread) await this.send({ kind: 'done' }, [], 0);
    if (this.failure) throw this.failure;
    return this.hashes;
  }

  /** Whatever was still pending fails; the thread stays for the next restore. */
  close(): void {
    if (!this.failure) this.fail(new Error('the restore hasher was stopped'));
  }

  /** Whether hashing goes to the thread: it is asked for on first use, when the restore is large enough. */
  private started(): boolean {
    if (!this.onWorker || this.failure) return false;
    if (!this.onThread) {
      this.onThread = true;
      hashThreads.request({ kind: 'ready' }, { affinity: this.affinity }).then(
        () => (this.ready = true),
        (error: Error) => this.fail(error),
      );
    }
    return true;
  }

  private async send(request: WithoutId<HashRequest>, transfer: ArrayBuffer[], bytes: number): Promise<HashReply> {
    if (this.failure) throw this.failure;
    this.inFlight += bytes;
    let reply: HashReply;
    try {
      reply = await hashThreads.request(request, { transfer, affinity: this.affinity });
    } finally {
      this.inFlight -= bytes;
      this.wake();
    }
    if (reply.error !== undefined) throw new Error(reply.error);
    // Stopped (or failed elsewhere) meanwhile: what was pending fails, as the caller was told.
    if (this.failure) throw this.failure;
    return reply;
  }

  private fail(error: Error): void {
    this.failure ??= error;
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }
}

/** Whether a Buffer is the whole of its memory (so it can be transferred without taking others' bytes). */
function ownsMemory(bytes: Buffer): boolean {
  return (
    bytes.byteOffset === 0 &&
    bytes.buffer.byteLength === bytes.length &&
    bytes.buffer instanceof ArrayBuffer &&
    bytes.length > Buffer.poolSize
  );
}
