import path from 'node:path';
import { WorkerPool } from '../threads/worker-pool.js';
import type { ReadReply, ReadRequest } from './segment-read-thread.js';
import type { SegmentFileBytes, SegmentSource } from './segment-runs.js';

/**
 * Reads segment files ahead on worker threads (src/log/segment-read-thread.ts), and checks their
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
  files: SegmentFileBytes[];
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

/** Two threads, so that two batches are read at once while the caller decodes and applies a third. */
const readers = new WorkerPool<ReadRequest, ReadReply>(import.meta.url, './segment-read-thread.js', 2);

/** Read a batch on a read-ahead thread. */
async function readAhead(dir: string, first: bigint, limits: { count: number; bytes: number }): Promise<PrefetchedBatch> {
  const reply = await readers.request({ dir, first: first.toString(), count: limits.count, maxBytes: limits.bytes });
  if (reply.error) {
    const error = new Error(`reading segments from ${dir}: ${reply.error.message}`) as Error & { code?: string };
    if (reply.error.code) error.code = reply.error.code;
    throw error;
  }
  const files: SegmentFileBytes[] = [];
  let offset = 0;
  reply.sizes.forEach((size, index) => {
    files.push({ bytes: Buffer.from(reply.buffer, offset, size), trailerVerified: reply.trailerVerified[index] === true });
    offset += size;
  });
  return { first, files };
}

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
      // Read on from its end when asked again (the caller may stop here); the reads past it are dropped.
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
  }

  private fill(): void {
    while (this.inFlight.length < this.limits.depth) {
      const first = this.nextFirst;
      const batch = readAhead(this.dir, first, this.limits);
      // A dropped read's promise is never awaited: its failure must not be an unhandled rejection.
      batch.catch(() => undefined);
      this.inFlight.push({ first, batch });
      this.nextFirst = first + BigInt(this.limits.count);
    }
  }
}
