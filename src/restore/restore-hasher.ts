import { createHash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { hashPageImage } from '../format/rolling-checksum.js';

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
 * The worker's code is plain JavaScript kept here as text, so the same code runs from the compiled
 * build and from the TypeScript sources under the test runner (as src/log/append-worker.ts does).
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const crypto = require('node:crypto');
let hashes;
let pageSize = 0;
const prefix = Buffer.allocUnsafe(4);
parentPort.postMessage({ kind: 'ready' });
parentPort.on('message', (message) => {
  const { kind, id } = message;
  try {
    if (kind === 'start') {
      hashes = new Uint32Array(message.hashes);
      pageSize = message.pageSize;
    } else if (kind === 'digest') {
      const digest = crypto.createHash('sha256').update(new Uint8Array(message.buffer, 0, message.length)).digest('hex');
      parentPort.postMessage({ kind, id, digest, buffer: message.buffer }, [message.buffer]);
    } else if (kind === 'pages') {
      const { buffers, pages } = message;
      for (let i = 0; i < pages.length; i += 3) {
        const buffer = buffers[pages[i]];
        const offset = pages[i + 1];
        const pageNumber = pages[i + 2];
        let digest;
        if (offset >= 4 && new DataView(buffer, offset - 4, 4).getUint32(0) === pageNumber) {
          digest = crypto.hash('sha256', new Uint8Array(buffer, offset - 4, pageSize + 4), 'buffer');
        } else {
          prefix.writeUInt32BE(pageNumber, 0);
          digest = crypto.createHash('sha256').update(prefix).update(new Uint8Array(buffer, offset, pageSize)).digest();
        }
        hashes[2 * pageNumber - 2] = digest.readUInt32BE(0);
        hashes[2 * pageNumber - 1] = digest.readUInt32BE(4);
      }
      parentPort.postMessage({ kind, id });
    } else if (kind === 'done') {
      parentPort.postMessage({ kind, id });
    }
  } catch (error) {
    parentPort.postMessage({ kind: 'error', id, message: error instanceof Error ? error.message : String(error) });
  }
});
`;

/** Bytes handed to the worker and not hashed yet, before the caller waits. */
const MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024;

/** A page image to hash. */
export interface PageToHash {
  pageNumber: number;
  image: Uint8Array;
}

interface WorkerAnswer {
  kind: string;
  id: number;
  digest?: string;
  message?: string;
  buffer?: ArrayBuffer;
}

export class RestoreHasher {
  private worker: Worker | undefined;
  private ready = false;
  private readonly pending = new Map<number, { resolve: (answer: WorkerAnswer) => void; reject: (error: Error) => void; bytes: number }>();
  /** Page p's hash is hashes[2p - 2] (high 32 bits) and hashes[2p - 1] (low): no BigInt per page. */
  private hashes: Uint32Array<ArrayBufferLike> = new Uint32Array(0);
  private pageSize = 0;
  private nextId = 0;
  private inFlight = 0;
  private failure: Error | undefined;
  private waiters: Array<() => void> = [];

  /** `onWorker`: hashing worth a worker thread may come (a restore of a few megabytes or more). */
  constructor(private readonly onWorker: boolean) {}

  /** Hashes from now on are of a database of `databaseSizePages` pages. */
  startPages(pageSize: number, databaseSizePages: number): void {
    this.pageSize = pageSize;
    this.hashes = new Uint32Array(this.onWorker ? new SharedArrayBuffer(databaseSizePages * 8) : new ArrayBuffer(databaseSizePages * 8));
    this.worker?.postMessage({ kind: 'start', hashes: this.hashes.buffer, pageSize });
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
    const worker = this.started();
    // Until the worker has started, the calling thread (waiting for this download) hashes.
    if (!worker || !this.ready || !ownsMemory(bytes)) return { digest: createHash('sha256').update(bytes).digest('hex'), bytes };
    const length = bytes.length; // the buffer is detached once sent
    const answer = await this.send({ kind: 'digest', buffer: bytes.buffer, length }, [bytes.buffer as ArrayBuffer], 0);
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
    const worker = this.started();
    if (!worker) {
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
    this.send({ kind: 'pages', buffers, pages: entries }, [...buffers, entries.buffer], pages.length * this.pageSize).catch((error: Error) => this.fail(error));
  }

  /** Waits while the worker is far behind (memory stays bounded); throws a failure it reported. */
  async room(): Promise<void> {
    while (this.worker && this.inFlight > MAX_IN_FLIGHT_BYTES && !this.failure) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    if (this.failure) throw this.failure;
  }

  /** Every page hash handed in or recorded, once hashed (page p's: [2p - 2] high, [2p - 1] low). */
  async pageHashes(): Promise<Uint32Array<ArrayBufferLike>> {
    if (this.worker) await this.send({ kind: 'done' }, [], 0);
    if (this.failure) throw this.failure;
    return this.hashes;
  }

  /** Stops the worker; whatever was still pending fails. */
  close(): void {
    if (!this.failure) this.fail(new Error('the restore hasher was stopped'));
    void this.worker?.terminate();
  }

  /** The worker, started on first use when the restore is large enough for one. */
  private started(): Worker | undefined {
    if (!this.onWorker || this.failure) return undefined;
    if (!this.worker) {
      const worker = new Worker(WORKER_SOURCE, { eval: true, name: 'restore-hasher' });
      worker.unref();
      worker.on('message', (message: WorkerAnswer) => this.answer(message));
      worker.on('error', (error) => this.fail(error));
      if (this.pageSize > 0) worker.postMessage({ kind: 'start', hashes: this.hashes.buffer, pageSize: this.pageSize });
      this.worker = worker;
    }
    return this.worker;
  }

  private send(message: Record<string, unknown>, transfer: ArrayBuffer[], bytes: number): Promise<WorkerAnswer> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    this.inFlight += bytes;
    return new Promise<WorkerAnswer>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, bytes });
      (this.worker as Worker).postMessage({ ...message, id }, transfer);
    });
  }

  private answer(message: WorkerAnswer): void {
    if (message.kind === 'ready') {
      this.ready = true;
      return;
    }
    const pending = this.pending.get(message.id);
    if (!pending) return;
    this.pending.delete(message.id);
    this.inFlight -= pending.bytes;
    this.wake();
    if (message.kind === 'error') pending.reject(new Error(message.message));
    else pending.resolve(message);
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
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
  return bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length && bytes.buffer instanceof ArrayBuffer && bytes.length > Buffer.poolSize;
}
