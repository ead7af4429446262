import { LitebaseError } from '../errors.js';
import type { LogDirectory } from '../log/log-directory.js';
import { pageHash, type PageHashTable } from '../log/rolling-checksum.js';
import { encodeSegment, type PageImage } from '../log/segment-codec.js';
import { mergeTransactions } from '../log/wal-format.js';
import type { Metrics } from '../metrics.js';
import type { WalCapture } from './wal-capture.js';

export interface DurableLogOptions {
  database: string;
  databaseId: string;
  pageSize: number;
  term: bigint;
  log: LogDirectory;
  capture: WalCapture;
  hashes: PageHashTable;
  /** Last durable position (the newest segment in the log). */
  position: bigint;
  metrics: Metrics;
  /** Called once when a segment cannot be made durable; every pending commit is rejected first. */
  onFailure: (error: LitebaseError) => void;
  /** Called after each flush that made commits durable (the owner may checkpoint its WAL then). */
  onFlushed?: () => void;
}

interface Waiter {
  sequence: number;
  resolve: (position: bigint) => void;
  reject: (error: unknown) => void;
}

/**
 * Turns local commits into durable log positions (DESIGN.md §5). Each local commit gets a sequence
 * number; one flush at a time captures every transaction committed so far from the WAL, writes
 * them as ONE segment and fsyncs it, then answers all of them with that segment's position. While
 * a flush waits for the disk, new commits queue for the next one: group commit, so throughput is
 * not bounded by fsync latency.
 */
export class DurableLog {
  private committed = 0;
  private durable = 0;
  private readonly waiters: Waiter[] = [];
  private flushing = false;
  private failure: LitebaseError | undefined;
  private current: bigint;

  constructor(private readonly options: DurableLogOptions) {
    this.current = options.position;
  }

  /** The newest durable position. */
  get position(): bigint {
    return this.current;
  }

  get checksum(): bigint {
    return this.options.hashes.checksum;
  }

  /** True when some local commit is not durable yet. */
  get hasPending(): boolean {
    return this.durable < this.committed;
  }

  /** Record a local commit; returns its sequence number for `waitDurable`. */
  noteCommit(): number {
    this.committed += 1;
    this.scheduleFlush();
    return this.committed;
  }

  /** The sequence number that covers everything committed locally so far. */
  get lastCommitted(): number {
    return this.committed;
  }

  /** Resolves with the position that made `sequence` durable; rejects if it never will be. */
  waitDurable(sequence: number): Promise<bigint> {
    if (this.failure) return Promise.reject(this.failure);
    if (sequence <= this.durable) return Promise.resolve(this.current);
    return new Promise((resolve, reject) => this.waiters.push({ sequence, resolve, reject }));
  }

  private scheduleFlush(): void {
    if (this.flushing || this.failure) return;
    this.flushing = true;
    // setImmediate lets requests already read from the sockets commit before this flush starts.
    setImmediate(() => void this.flushLoop());
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.durable < this.committed && !this.failure) {
        const target = this.committed;
        await this.flushOnce();
        this.durable = target;
        while (this.waiters.length > 0 && (this.waiters[0]?.sequence ?? Infinity) <= target) {
          this.waiters.shift()?.resolve(this.current);
        }
      }
      this.options.onFlushed?.();
    } catch (error) {
      this.fail(error);
    } finally {
      this.flushing = false;
    }
  }

  /** Capture, encode and persist everything committed so far as one segment. */
  private async flushOnce(): Promise<void> {
    const { capture, hashes, metrics, database } = this.options;
    const transactions = capture.readCommitted();
    // A transaction that changed nothing writes no frames; it is durable as of the current position.
    if (transactions.length === 0) return;
    const { pages, databaseSizePages } = mergeTransactions(transactions);
    const images: PageImage[] = pages.map(({ pageNumber, data }) => ({
      pageNumber,
      data: Buffer.from(data.buffer, data.byteOffset, data.byteLength),
    }));
    const hashed = images.map(({ pageNumber, data }) => ({ pageNumber, hash: pageHash(pageNumber, data) }));
    const position = this.current + 1n;
    const bytes = encodeSegment(
      {
        databaseId: this.options.databaseId,
        term: this.options.term,
        position,
        commitTimeMs: Date.now(),
        pageSize: this.options.pageSize,
        databaseSizePages,
        transactionCount: transactions.length,
        preChecksum: hashes.checksum,
        postChecksum: hashes.checksumAfter(hashed, databaseSizePages),
      },
      images,
    );
    const stopTimer = metrics.segmentWriteSeconds.startTimer();
    await this.options.log.append(position, bytes);
    stopTimer();
    hashes.apply(hashed, databaseSizePages);
    this.current = position;
    metrics.segmentsWritten.inc({ database });
    metrics.segmentBytes.inc({ database }, bytes.length);
    metrics.groupSize.observe(transactions.length);
    metrics.transactionsCommitted.inc({ database }, transactions.length);
    metrics.position.set({ database }, Number(position));
  }

  private fail(error: unknown): void {
    const failure =
      error instanceof LitebaseError
        ? error
        : new LitebaseError('LOG_UNAVAILABLE', `cannot write the log: ${(error as Error).message}`, {
            status: 503,
            retryAfterSeconds: 1,
            cause: error,
          });
    this.failure = failure;
    this.options.metrics.logWriteFailures.inc({ database: this.options.database, code: failure.code });
    for (const waiter of this.waiters.splice(0)) waiter.reject(failure);
    this.options.onFailure(failure);
  }
}
