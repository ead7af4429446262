import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ReadReply, ReadRequest } from './segment-read-worker.js';
import type { SegmentBytes, SegmentSource } from './segment-runs.js';

/**
 * Reads segment files ahead on worker threads (src/log/segment-read-worker.ts), and checks their
 * trailers there, while the caller decodes and applies the previous batch: a long replay (a node
 * joining, or restarting far behind) is mostly opening, reading and hashing thousands of small
 * files, and on two cores that need not wait for the decompression and the page writes. The
 * caller still decodes every segment with the codec and checks the checksum chain. One batch's
 * files arrive in one transferred buffer, so nothing is copied between the threads.
 *
 * The threads serve the whole process (starting one costs ~25 ms, a tenth of a catch-up of 10,000
 * segments): they are started on first use or by warmUpSegmentReader(), and hold the process open
 * only while they have a read to answer.
 */

export interface PrefetchedBatch {
  first: bigint;
  /** The files from `first` on, in order, up to the first missing one or the batch limits. */
  files: SegmentBytes[];
}

/** The position after the batch's last file. */
export function batchEnd(batch: PrefetchedBatch): bigint {
  return batch.first + BigInt(batch.files.length);
}

/** The batch as a source for readSegmentRun: its files, and nothing past them. */
export function batchSource(batch: PrefetchedBatch): SegmentSource {
  const end = batchEnd(batch);
  return (at) => (at >= batch.first && at < end ? batch.files[Number(at - batch.first)] : undefined);
}

interface Pending {
  dir: string;
  first: bigint;
  owner: SegmentPrefetcher;
  resolve: (batch: PrefetchedBatch) => void;
  reject: (error: Error) => void;
}

/**
 * The worker's code: the compiled module next to this one. Under the test runner, which runs the
 * TypeScript sources, the .ts file, loaded through tsx (a dev dependency) by a small bootstrap.
 */
function newReadWorker(): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./segment-read-worker.js', import.meta.url));
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
  const source = new URL('./segment-read-worker.ts', import.meta.url).href;
  const bootstrap = `import { register } from ${JSON.stringify(tsx)}; register(); await import(${JSON.stringify(source)});`;
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(bootstrap)}`));
}

/**
 * The process's read-ahead threads, and the reads waiting on them. Two, so that two batches are
 * read at once while the caller decodes and applies a third.
 */
class SharedReaders {
  private readonly workers: Array<Worker | undefined> = [];
  private readonly pending = new Map<number, Pending & { worker: Worker }>();
  private nextId = 1;
  private turn = 0;

  constructor(private readonly size: number) {}

  request(pending: Pending, limits: { count: number; bytes: number }): void {
    const worker = this.worker(this.turn++ % this.size);
    const id = this.nextId++;
    this.pending.set(id, { ...pending, worker });
    worker.ref();
    const request: ReadRequest = { id, dir: pending.dir, first: pending.first.toString(), count: limits.count, maxBytes: limits.bytes };
    worker.postMessage(request);
  }

  /** Forget `owner`'s reads: their answers are dropped when they come. */
  forget(owner: SegmentPrefetcher): void {
    for (const [id, pending] of this.pending) if (pending.owner === owner) this.pending.delete(id);
    this.unrefIdle();
  }

  startAll(): void {
    for (let slot = 0; slot < this.size; slot++) this.worker(slot);
  }

  private worker(slot: number): Worker {
    const existing = this.workers[slot];
    if (existing) return existing;
    const worker = newReadWorker();
    worker.on('message', (reply: ReadReply) => this.settle(reply));
    worker.on('error', (error) => this.lost(slot, worker, error));
    worker.on('exit', (code) => this.lost(slot, worker, new Error(`segment read-ahead worker exited with code ${code}`)));
    // After the listeners: adding a 'message' listener refs the worker's port again.
    worker.unref();
    this.workers[slot] = worker;
    return worker;
  }

  /** A thread holds the process open only while it has a read to answer. */
  private unrefIdle(): void {
    const busy = new Set([...this.pending.values()].map((pending) => pending.worker));
    for (const worker of this.workers) if (worker && !busy.has(worker)) worker.unref();
  }

  private settle(reply: ReadReply): void {
    const request = this.pending.get(reply.id);
    this.pending.delete(reply.id);
    this.unrefIdle();
    if (!request) return;
    if (reply.error) {
      const error = new Error(`reading segments from ${request.dir}: ${reply.error.message}`) as Error & { code?: string };
      if (reply.error.code) error.code = reply.error.code;
      request.reject(error);
      return;
    }
    const files: SegmentBytes[] = [];
    let offset = 0;
    reply.sizes.forEach((size, index) => {
      files.push({ bytes: Buffer.from(reply.buffer, offset, size), trailerVerified: reply.trailerVerified[index] === true });
      offset += size;
    });
    request.resolve({ first: request.first, files });
  }

  private lost(slot: number, worker: Worker, error: Error): void {
    if (this.workers[slot] !== worker) return;
    this.workers[slot] = undefined;
    for (const [id, request] of this.pending) {
      if (request.worker !== worker) continue;
      this.pending.delete(id);
      request.reject(error);
    }
  }
}

const readers = new SharedReaders(2);

/** Start the read-ahead threads now (a node does at start, so a catch-up does not wait for them). */
export function warmUpSegmentReader(): void {
  readers.startAll();
}

/**
 * The batches of one log from a starting position on, in order, with `depth` of them being read
 * at any time. A batch that comes back short (the end of the log, the byte limit) makes the ones requested after it start at the wrong place: they are dropped, and reading goes
 * on from where it ended.
 */
export class SegmentPrefetcher {
  private readonly dir: string;
  private readonly inFlight: Array<{ first: bigint; batch: Promise<PrefetchedBatch> }> = [];
  private nextFirst: bigint;

  constructor(
    dir: string,
    from: bigint,
    private readonly limits = { count: 512, bytes: 16 * 1024 * 1024, depth: 2 },
  ) {
    this.dir = path.resolve(dir);
    this.nextFirst = from;
    this.fill();
  }

  /** The next batch (with fewer files, or none, when the log ends sooner). */
  async next(): Promise<PrefetchedBatch> {
    this.fill();
    const head = this.inFlight.shift() as { first: bigint; batch: Promise<PrefetchedBatch> };
    const batch = await head.batch;
    if (batch.files.length < this.limits.count) {
      // Read on from its end when asked again (the caller may stop here).
      readers.forget(this);
      this.inFlight.length = 0;
      this.nextFirst = batchEnd(batch);
    } else {
      this.fill();
    }
    return batch;
  }

  /** Drop this reader's pending reads (the shared threads stay for the next catch-up). */
  async close(): Promise<void> {
    this.inFlight.length = 0;
    readers.forget(this);
  }

  private fill(): void {
    while (this.inFlight.length < this.limits.depth) {
      const first = this.nextFirst;
      const batch = new Promise<PrefetchedBatch>((resolve, reject) =>
        readers.request({ dir: this.dir, first, owner: this, resolve, reject }, this.limits),
      );
      // A dropped read's promise is never awaited: its failure must not be an unhandled rejection.
      batch.catch(() => undefined);
      this.inFlight.push({ first, batch });
      this.nextFirst = first + BigInt(this.limits.count);
    }
  }
}
