import { LitebaseError } from '../errors.js';
import type { LogDirectory } from '../log/log-directory.js';
import { LogHead } from '../log/log-head.js';
import { pageHash, type PageHashTable } from '../format/rolling-checksum.js';
import { encodeSegment, SEGMENT_CHUNK_PAGES, type PageImage, type SegmentHeaderInput } from '../format/segment-codec.js';
import { mergeTransactions, type WalTransaction } from '../format/wal-format.js';
import type { Metrics } from '../metrics.js';
import type { LargeCapture, WalCapture } from './wal-capture.js';

/**
 * A group of commits whose frames take more than this in the WAL is written as a segment file
 * chunk by chunk instead of being encoded in memory (docs/ARCHITECTURE.md §5.2): memory stays
 * bounded whatever the size of a transaction. Below it, the in-memory path is faster.
 */
export const DEFAULT_STREAM_SEGMENT_BYTES = 4 * 1024 * 1024;

/** Pages folded into the page hash table at once while a streamed segment is planned. */
const HASH_BATCH_PAGES = 4096;

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
  /** Checked before each segment is sent: false once this node's lease is gone. */
  canWrite: () => boolean;
  /** The same check, as shared memory the append worker reads right before it links a segment. */
  writeFence?: SharedArrayBuffer;
  /** Called once when a segment cannot be made durable; every pending commit is rejected first. */
  onFailure: (error: LitebaseError) => void;
  /** Called after each flush that made commits durable (the owner may checkpoint its WAL then). */
  onFlushed?: () => void;
  /** Groups of commits larger than this in the WAL are streamed (default DEFAULT_STREAM_SEGMENT_BYTES). */
  streamSegmentBytes?: number;
  /**
   * Replicas may be sent each segment encoded in memory (nudges carry them: src/cluster/replica-nudger.ts):
   * `durable` is told of every segment once it is durable and the lease was checked after it, in
   * position order: with a copy of its bytes when `wanted()` said so as it was encoded, undefined
   * when not, and always undefined for a streamed (large) one, which replicas read from the log.
   */
  segmentCopies?: { wanted: () => boolean; durable: (segment: Buffer | undefined) => void };
  /** Told of each streamed segment once it is durable (a log line). */
  onStreamed?: (segment: { position: bigint; pages: number; bytes: number; transactions: number; seconds: number }) => void;
}

interface Waiter {
  sequence: number;
  resolve: (position: bigint) => void;
  reject: (error: unknown) => void;
}

/** One segment on its way to the disk, or a group of commits that changed nothing. */
interface InFlight {
  /** Every local commit up to this sequence number is in this segment or an earlier one. */
  sequence: number;
  position: bigint;
  done: Promise<void>;
}

/**
 * Turns local commits into durable log positions (docs/ARCHITECTURE.md §5). Each local commit gets a sequence
 * number. A flush captures every transaction committed so far from the WAL and sends it, as ONE
 * segment, to the append worker; commits that arrive meanwhile go into the next segment: group
 * commit, so throughput is not bounded by fsync latency. A few segments may be on their way at
 * once (they are written in order by one worker, so the log never has a hole); each is answered
 * when it and everything before it is durable.
 */
export class DurableLog {
  private committed = 0;
  /** Client transactions in the local commits noted so far, and in those sent so far (a segment's transaction count). */
  private clientTransactions = 0;
  private clientTransactionsSent = 0;
  private durable = 0;
  private sent = 0;
  private readonly waiters: Waiter[] = [];
  private readonly inFlight: InFlight[] = [];
  private scheduled = false;
  /**
   * A streamed segment's file is being written: nothing else is sent until its link is on its
   * way to the append thread, so segments still reach the log in position order.
   */
  private preparing = false;
  private failure: LitebaseError | undefined;
  private current: bigint;
  private next: bigint;
  private durableChecksum: bigint;
  /** Appends of this writer form one ordered stream on the append worker. */
  private readonly stream = `${Math.random().toString(36).slice(2)}:${Date.now()}`;
  private readonly head: LogHead;

  constructor(
    private readonly options: DurableLogOptions,
    private readonly maxInFlight = 2,
  ) {
    this.current = options.position;
    this.next = options.position + 1n;
    this.durableChecksum = options.hashes.checksum;
    this.head = LogHead.inFolder(options.log.dir);
  }

  /**
   * Format `terms`: start this writer's term log file where the log it recovered ends, so that
   * readers know where the terms before end (docs/FORMAT.md §1.2). Call once, before the first write.
   */
  async seal(): Promise<void> {
    await this.options.log.seal(
      this.options.databaseId,
      this.options.term,
      this.current,
      this.durableChecksum,
      this.stream,
      this.options.writeFence,
    );
  }

  /**
   * Format `terms`: make the next segment start a new term log file (so a compaction can trim the
   * file that holds what it checkpointed). Posted in order with the segments sent so far; refused
   * (false) while a large segment is being prepared, whose position is already taken.
   */
  async roll(): Promise<boolean> {
    if (this.options.log.format !== 'terms' || this.preparing || this.failure) return false;
    await this.options.log.seal(
      this.options.databaseId,
      this.options.term,
      this.next - 1n,
      this.options.hashes.checksum,
      this.stream,
      this.options.writeFence,
    );
    return true;
  }

  /** This writer is done (its database closes): let go of what the append thread keeps for it. */
  async release(): Promise<void> {
    await this.options.log.releaseStream(this.stream);
  }

  /** The newest durable position. */
  get position(): bigint {
    return this.current;
  }

  get checksum(): bigint {
    return this.durableChecksum;
  }

  /** True when some local commit is not durable yet. */
  get hasPending(): boolean {
    return this.durable < this.committed;
  }

  /**
   * Record a local commit of `clientTransactions` client transactions (a write group's commit holds
   * several: docs/ARCHITECTURE.md §5.4); returns its sequence number for `waitDurable`. The flush
   * waits for the next turn of the event loop, so that requests already read from the sockets commit
   * first; `flushNow` when the commit already gathered them (a write group commits after its turn).
   */
  noteCommit(clientTransactions = 1, flushNow = false): number {
    this.committed += 1;
    this.clientTransactions += clientTransactions;
    if (flushNow) this.flush();
    else this.scheduleFlush();
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
    if (this.scheduled || this.failure || this.inFlight.length >= this.maxInFlight) return;
    this.scheduled = true;
    // setImmediate lets requests already read from the sockets commit before this flush starts.
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  /** Send everything committed but not yet sent, if a slot is free. */
  private flush(): void {
    if (this.failure || this.preparing || this.sent >= this.committed || this.inFlight.length >= this.maxInFlight) return;
    const sequence = this.committed;
    let entry: InFlight;
    try {
      entry = this.sendSegment(sequence);
    } catch (error) {
      this.fail(error);
      return;
    }
    this.sent = sequence;
    this.inFlight.push(entry);
    entry.done.then(
      () => this.completed(entry),
      (error: unknown) => this.fail(error),
    );
  }

  private completed(entry: InFlight): void {
    if (this.failure) return;
    // Workers answer in order, so the entry that completes is always the oldest.
    this.inFlight.shift();
    this.durable = entry.sequence;
    this.current = entry.position;
    while (this.waiters.length > 0 && (this.waiters[0]?.sequence ?? Infinity) <= entry.sequence) {
      this.waiters.shift()?.resolve(this.current);
    }
    this.flush();
    this.options.onFlushed?.();
  }

  /** Capture, encode and start persisting everything committed so far as one segment. */
  private sendSegment(sequence: number): InFlight {
    const { capture } = this.options;
    if (!this.options.canWrite()) {
      throw new LitebaseError('LEASE_LOST', 'this node no longer holds the Primary lease; the write was not applied');
    }
    const captured = capture.capture(this.options.streamSegmentBytes ?? DEFAULT_STREAM_SEGMENT_BYTES);
    const previous = this.inFlight[this.inFlight.length - 1];
    const count = captured.kind === 'large' ? captured.large.transactionCount : captured.transactions.length;
    // Every commit noted so far is in this capture: the client transactions it holds are the segment's.
    const clients = Math.max(count, this.clientTransactions - this.clientTransactionsSent);
    this.clientTransactionsSent = this.clientTransactions;
    if (count === 0) {
      if (captured.kind === 'large') captured.large.close();
      // Commits that changed nothing are durable once everything before them is.
      return { sequence, position: this.next - 1n, done: previous ? previous.done : Promise.resolve() };
    }
    if (captured.kind === 'large') return this.sendLargeSegment(sequence, captured.large, clients);
    return this.sendSmallSegment(sequence, captured.transactions, clients);
  }

  /** A group of commits of ordinary size: merged, encoded and sent to the append thread in memory. */
  private sendSmallSegment(sequence: number, transactions: WalTransaction[], clients: number): InFlight {
    const { hashes, metrics } = this.options;
    const { pages, databaseSizePages } = mergeTransactions(transactions);
    const images: PageImage[] = pages.map(({ pageNumber, data }) => ({
      pageNumber,
      data: Buffer.from(data.buffer, data.byteOffset, data.byteLength),
    }));
    const hashed = images.map(({ pageNumber, data }) => ({ pageNumber, hash: pageHash(pageNumber, data) }));
    const position = this.next;
    const preChecksum = hashes.checksum;
    // The table moves ahead at once: the next segment starts from this one's post-checksum. If this
    // segment fails, the whole local state is rebuilt from the log, table included.
    hashes.apply(hashed, databaseSizePages);
    const postChecksum = hashes.checksum;
    const bytes = encodeSegment(this.segmentHeader(position, databaseSizePages, clients, preChecksum, postChecksum), images);
    const length = bytes.length;
    const copies = this.options.segmentCopies;
    // A copy: the bytes themselves are moved to the append thread.
    const copy = copies?.wanted() ? Buffer.from(bytes) : undefined;
    this.next = position + 1n;
    const stopTimer = metrics.segmentWriteSeconds.startTimer();
    // The append worker announces the segment in the log's head file as soon as it is durable,
    // which wakes watching replicas before the client even has its answer. The bytes are moved
    // to it, not copied (only a segment of its own buffer is: a large one).
    const done = this.options.log.append(position, bytes, this.stream, this.options.writeFence, this.head, { transfer: true }).then(() => {
      stopTimer();
      this.recordDurable(position, postChecksum, length, clients);
      copies?.durable(copy);
    });
    return { sequence, position, done };
  }

  /**
   * A group of commits too large to hold (LargeCapture): its page hashes go into the table now,
   * as for any segment, then its images are read back from the WAL 256 at a time and written
   * chunk by chunk into a temp file in the log folder (LogDirectory.writeSegmentFile), which the
   * append thread then links like any segment. Nothing else is sent meanwhile (`preparing`).
   */
  private sendLargeSegment(sequence: number, large: LargeCapture, clients: number): InFlight {
    const { hashes, metrics, log } = this.options;
    const started = performance.now();
    const position = this.next;
    const preChecksum = hashes.checksum;
    // In batches, never past the pages planned so far: growing the table to the final size at once
    // would hash every page not yet folded in as zeros first. The final size last (it may shrink).
    for (let start = 0; start < large.pageCount; start += HASH_BATCH_PAGES) {
      const batch: Array<{ pageNumber: number; hash: bigint }> = [];
      const end = Math.min(large.pageCount, start + HASH_BATCH_PAGES);
      for (let index = start; index < end; index++) {
        batch.push({ pageNumber: large.pageNumbers[index] as number, hash: large.pageHashes[index] as bigint });
      }
      hashes.apply(batch, Math.max(hashes.databaseSizePages, large.pageNumbers[end - 1] as number));
    }
    hashes.apply([], large.databaseSizePages);
    const postChecksum = hashes.checksum;
    const header = {
      ...this.segmentHeader(position, large.databaseSizePages, clients, preChecksum, postChecksum),
      pageCount: large.pageCount,
    };
    this.next = position + 1n;
    const stopTimer = metrics.segmentWriteSeconds.startTimer();
    this.preparing = true;
    const written = log.writeSegmentFile(header, large.pages(SEGMENT_CHUNK_PAGES)).finally(() => large.close());
    const done = written.then(
      ({ file, bytes }) => {
        // Posted to the append thread before the next segment can be: the log stays in order.
        const linked = log.linkPrepared(position, file, this.stream, this.options.writeFence, this.head);
        this.preparing = false;
        this.flush();
        return linked.then(() => {
          stopTimer();
          this.recordDurable(position, postChecksum, bytes, clients);
          this.options.segmentCopies?.durable(undefined);
          metrics.segmentsStreamed.inc({ database: this.options.database });
          this.options.onStreamed?.({
            position,
            pages: large.pageCount,
            bytes,
            transactions: clients,
            seconds: (performance.now() - started) / 1000,
          });
        });
      },
      (error: unknown) => {
        this.preparing = false;
        throw error;
      },
    );
    return { sequence, position, done };
  }

  private segmentHeader(
    position: bigint,
    databaseSizePages: number,
    transactionCount: number,
    preChecksum: bigint,
    postChecksum: bigint,
  ): SegmentHeaderInput {
    return {
      databaseId: this.options.databaseId,
      term: this.options.term,
      position,
      commitTimeMs: this.nextCommitTime(),
      pageSize: this.options.pageSize,
      databaseSizePages,
      transactionCount,
      preChecksum,
      postChecksum,
    };
  }

  /** A segment is durable: its checksum and the metrics. */
  private recordDurable(position: bigint, postChecksum: bigint, bytes: number, transactions: number): void {
    const { metrics, database } = this.options;
    this.durableChecksum = postChecksum;
    metrics.segmentsWritten.inc({ database });
    metrics.segmentBytes.inc({ database }, bytes);
    metrics.groupSize.observe(transactions);
    metrics.transactionsCommitted.inc({ database }, transactions);
    metrics.position.set({ database }, Number(position));
  }

  /**
   * Commit times never go backwards within a writer (a clock stepped back would otherwise make
   * restore-to-timestamp pick the wrong segment).
   */
  private lastCommitTime = 0;

  private nextCommitTime(): number {
    this.lastCommitTime = Math.max(Date.now(), this.lastCommitTime);
    return this.lastCommitTime;
  }

  private fail(error: unknown): void {
    if (this.failure) return;
    const failure =
      error instanceof LitebaseError
        ? error
        : new LitebaseError('LOG_UNAVAILABLE', `cannot write the log: ${(error as Error).message}`, {
            cause: error,
          });
    this.failure = failure;
    this.options.metrics.logWriteFailures.inc({ database: this.options.database, code: failure.code });
    for (const waiter of this.waiters.splice(0)) waiter.reject(failure);
    this.options.onFailure(failure);
  }
}
