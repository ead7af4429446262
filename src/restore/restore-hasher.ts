import { createHash } from 'node:crypto';
import { hashPageImage } from '../format/rolling-checksum.js';
import { SharedBufferPool } from '../threads/shared-buffer-pool.js';
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
 * Page images are copied into staging buffers of shared memory that are reused (page number, then
 * image, so the thread hashes each record in one call), and the thread writes each page's hash into
 * one shared array. Why a copy and not a transfer of the decompressed buffers: a buffer transferred to
 * a thread is freed only when that thread collects garbage, and this one allocates almost no
 * JavaScript, so tens of megabytes of hashed images stayed allocated beside the ones in flight (a
 * restore of 3 GiB peaked at 444 MiB). The copy costs about a millisecond per 4 MiB; the images left
 * behind die young on the main thread. An object to digest goes by transfer and comes back with its
 * digest. Small restores hash on the calling thread (a worker costs tens of milliseconds to start).
 *
 * The threads (src/restore/restore-hash-thread.ts) serve the whole process; all of one restore's
 * requests go to the same one, in order.
 */
/** A thread idle this long is stopped (restores come in bursts). */
const IDLE_STOP_MS = 5_000;
const hashThreads = new WorkerPool<HashRequest, HashReply>(import.meta.url, './restore-hash-thread.js', 2, 'restore-hasher', IDLE_STOP_MS);

/** Each hasher's affinity key: its requests stay on one thread, in order. */
let hashers = 0;

/** Bytes handed to the worker and not hashed yet, before the caller waits. */
const MAX_IN_FLIGHT_BYTES = 16 * 1024 * 1024;
/** Bytes of one staging buffer (a request to the thread): at least one page record. */
const STAGING_BYTES = 4 * 1024 * 1024;

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
  /** Staging buffers: as many as can be in flight, and the one being filled. */
  private readonly staging = new SharedBufferPool(MAX_IN_FLIGHT_BYTES / STAGING_BYTES + 2);

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
   * Hash these pages. The images are read (hashed here, or copied for the thread) before this
   * returns: the caller may reuse their memory afterwards.
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
    const stride = 4 + this.pageSize;
    const perStaging = Math.max(1, Math.floor(STAGING_BYTES / stride));
    for (let first = 0; first < pages.length; first += perStaging) {
      const count = Math.min(perStaging, pages.length - first);
      const records = this.staging.take(count * stride);
      for (let i = 0; i < count; i++) {
        const { pageNumber, image } = pages[first + i] as PageToHash;
        records.writeUInt32BE(pageNumber, i * stride);
        records.set(image, i * stride + 4);
      }
      const request = {
        kind: 'pages' as const,
        hashes: this.hashes.buffer as SharedArrayBuffer,
        pageSize: this.pageSize,
        records: records.buffer as SharedArrayBuffer,
        count,
      };
      // Reused once hashed; after a failure the thread may still read it, so never.
      this.send(request, [], count * this.pageSize).then(
        () => this.staging.give(records),
        (error: Error) => this.fail(error),
      );
    }
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
