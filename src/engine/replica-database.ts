import { closeSync, promises as fs, mkdirSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { CheckpointDirectory } from '../replay/checkpoints.js';
import type { EngineSettings } from './settings.js';
import { LitebaseError } from '../errors.js';
import { LogDirectory, type SegmentLocation } from '../log/log-directory.js';
import { LogTailer } from '../log/log-tailer.js';
import { formatChecksum, type PageHashTable } from '../format/rolling-checksum.js';
import { foldSegments } from '../format/segment-fold.js';
import { decodeSegmentHeader, type SegmentHeader } from '../format/segment-codec.js';
import { batchSource, SegmentPrefetcher } from '../log/segment-prefetch.js';
import {
  readSegmentRun,
  RUN_LIMITS,
  type DecodedSegment,
  type RunLimits,
  type SegmentRun,
  type SegmentSource,
} from '../log/segment-runs.js';
import type { Metrics } from '../metrics.js';
import type { DatabaseMeta } from '../storage/catalog.js';
import type { LocalLayout, SharedLayout } from '../storage/layout.js';
import {
  describeStatement,
  FULL_ACCESS,
  isReadOnlyRequest,
  StatementCache,
  type StatementAccess,
  type StatementDescription,
  type StatementInput,
  type StatementResult,
  type StatementRun,
} from './executor.js';
import { backupInterrupted, copyFile } from './backup.js';
import { ResultBudget } from './result-limits.js';
import { SandboxFile } from './read-sandbox.js';
import type { StatementStats } from './statement-stats.js';
import { applyRunToFile, applyRunToHashes, readAheadFailed, recoverLocalCopy, writeLocalState } from '../replay/local-copy.js';
import { applyLargeSegment, type LargeApplyOutcome } from '../replay/large-segment.js';
import { PositionWaiters } from './position-waiters.js';

export interface ReplicaDatabaseOptions {
  meta: DatabaseMeta;
  shared: SharedLayout;
  local: LocalLayout;
  settings: EngineSettings;
  logger: Logger;
  metrics: Metrics;
  /** Where the statements this engine runs are counted (statement-stats.ts); none when absent. */
  statements?: StatementStats;
}

/** A watcher that reported a change this recently is taken to see the Primary's writes. */
const NUDGE_WATCH_WINDOW_MS = 1000;
/**
 * While nudges bring the segments (one came within the last second), a read waiting for a position
 * gives the next nudge this long before it looks at the log itself: on a distributed file system
 * that look costs more than the nudge takes, and blocks the nudge meanwhile (on a busy CephFS a
 * look took hundreds of ms where nudges took a few). A nudge that was lost costs a read this much.
 */
const NUDGE_GRACE_MS = 250;
/** Most bytes of nudged segments kept waiting to be applied; past it they are dropped (the log has them). */
const MAX_NUDGED_BYTES = 16 * 1024 * 1024;

/** The request needs the Primary (it writes): the HTTP layer forwards it. */
export class NeedsPrimaryError extends LitebaseError {
  constructor() {
    super('NEEDS_PRIMARY', 'this request writes and must run on the Primary');
  }
}

interface Reader {
  db: Database.Database;
  statements: StatementCache;
  /** The schema the cached statements were prepared against. */
  schemaVersion: number;
  shrinkMemory: Database.Statement;
  schemaVersionStatement: Database.Statement;
}

/**
 * One database on a node that does not write it (docs/ARCHITECTURE.md §6): it tails the log, verifies each
 * segment (trailer, database id, the checksum chain), writes its pages into the local file, and
 * serves reads. After every applied run the read connection drops its cached pages (see
 * refreshReader), and only then does the new position become visible to reads and waiters.
 */
export class ReplicaDatabase {
  private reader: Reader | undefined;
  private hashes!: PageHashTable;
  /** The position reads see: advanced only once a fresh reader shows it (publish). */
  private current = 0n;
  /** The position of the local file: ahead of `current` while a run is being applied. */
  private applied = 0n;
  /** The rolling checksum at `current` (the table moves ahead of it while a large segment is applied). */
  private publishedChecksum = 0n;
  private lastCompactionCheck = 0;
  /** Set during a long catch-up: a worker thread reading the next files (src/log/segment-prefetch.ts). */
  private readingAhead: SegmentPrefetcher | undefined;
  private lastTerm = 0n;
  /**
   * Segments the Primary's nudges carried (src/format/nudge-codec.ts), by position, not applied
   * yet: a pass applies them from here when they continue the local copy, under the log's fence,
   * instead of reading them from the log.
   */
  private readonly nudged = new Map<bigint, Buffer>();
  private nudgedBytes = 0;
  /** When a nudge last brought segments this replica kept. */
  private lastNudgedAt = 0;
  private catchingUp: Promise<void> | undefined;
  /**
   * A large segment being applied from its file (src/replay/large-segment.ts): the event loop goes
   * on meanwhile, but the file is half written, so reads wait for it (query) or are refused (describe).
   */
  private applyingLarge: Promise<unknown> | undefined;
  private again = false;
  /**
   * The newest position the log's head file named, and whether a pass must look past it anyway
   * (a poll, a nudge, a read waiting for a position): looking for a segment that is not there yet
   * is an open() that fails, and on a folder the Primary is fsyncing it can wait for the fsync.
   */
  private headHint: bigint | undefined;
  private lookPastHead = true;
  private closed = false;
  private readonly positionWaiters: PositionWaiters;
  private readonly log: LogDirectory;
  private readonly checkpoints: CheckpointDirectory;
  private readonly tailer: LogTailer;
  private readonly sqliteFile: string;
  private readonly stateFile: string;
  private readonly logger: Logger;
  private lastStateWrite = 0;
  /** Looping reads run in read processes that can be killed (read-sandbox.ts). */
  private readonly sandbox: SandboxFile;
  /** The last corrupt or unusable segment seen, for /v1/cluster; cleared once past it. */
  lastError: { position: string; code: LitebaseError['code']; message: string; at: string } | undefined;

  private constructor(private readonly options: ReplicaDatabaseOptions) {
    const { meta, shared, local, settings: config } = options;
    this.log = new LogDirectory(shared.logDir(meta.name));
    this.checkpoints = new CheckpointDirectory(shared.checkpointsDir(meta.name));
    this.sqliteFile = local.sqliteFile(meta.name);
    this.stateFile = local.stateFile(meta.name);
    this.sandbox = new SandboxFile(this.sqliteFile, config.limits);
    this.logger = options.logger.child({ database: meta.name, role: 'replica' });
    this.positionWaiters = new PositionWaiters(config.limits.waitTimeoutMs);
    this.tailer = new LogTailer({
      dir: this.log.dir,
      pollMs: config.replicaPollMs,
      watch: config.replicaWatch,
      onChange: (head) => void this.catchUp(head),
      logger: this.logger,
    });
  }

  static async open(options: ReplicaDatabaseOptions): Promise<ReplicaDatabase> {
    const replica = new ReplicaDatabase(options);
    await replica.rebuild();
    replica.tailer.start();
    void replica.catchUp();
    return replica;
  }

  get name(): string {
    return this.options.meta.name;
  }

  get meta(): DatabaseMeta {
    return this.options.meta;
  }

  get position(): bigint {
    return this.current;
  }

  get checksum(): string {
    return formatChecksum(this.publishedChecksum);
  }

  get isReady(): boolean {
    return !this.closed && this.reader !== undefined;
  }

  /**
   * Called when the Primary says the log grew, with the new segments when its nudge carried them:
   * those are applied without a look at the log (a pass up to the last of them), the rest is read
   * from the log. Answers whether such nudges are needless here: this replica's own watcher
   * reports the log's changes (it will hear of this one too).
   */
  nudge(segments: readonly Buffer[] = []): boolean {
    const last = this.keepNudged(segments);
    if (last === undefined) this.tailer.nudge();
    else {
      this.lastNudgedAt = Date.now();
      this.tailer.heard();
      void this.catchUp(last);
    }
    return this.tailer.watcherSeesChanges(NUDGE_WATCH_WINDOW_MS);
  }

  /**
   * Keep nudged segments of this database that lie past the applied position; answers the last
   * position kept, undefined when none was. Their content is checked only when they are applied
   * (readSegmentRun: trailer, position, database id, the checksum chain).
   */
  private keepNudged(segments: readonly Buffer[]): bigint | undefined {
    if (this.closed || this.reader === undefined) return undefined;
    let last: bigint | undefined;
    for (const bytes of segments) {
      let header: SegmentHeader;
      try {
        header = decodeSegmentHeader(bytes);
      } catch {
        this.options.metrics.nudgedSegments.inc({ database: this.name, outcome: 'unused' });
        continue;
      }
      if (header.databaseId !== this.meta.id || header.position <= this.applied || this.nudged.has(header.position)) continue;
      if (this.nudgedBytes + bytes.length > MAX_NUDGED_BYTES) this.dropNudged();
      this.nudged.set(header.position, bytes);
      this.nudgedBytes += bytes.length;
      if (last === undefined || header.position > last) last = header.position;
    }
    return last;
  }

  private dropNudged(): void {
    if (this.nudged.size > 0) this.options.metrics.nudgedSegments.inc({ database: this.name, outcome: 'unused' }, this.nudged.size);
    this.nudged.clear();
    this.nudgedBytes = 0;
  }

  /**
   * The run of nudged segments that continues the local copy, verified as a run read from the log
   * is (docs/CLUSTER.md "Segments in nudges"). No look at the log's fence is needed: the Primary
   * sends a segment only once it is durable and its lease was checked after the fdatasync, the
   * check that makes an acknowledged write safe, so the segment was in the log before any node could
   * claim the next term, and every reader of the log accepts it. Undefined when there is none, or
   * when anything about it is off (a term older than one applied, a damaged or foreign segment, a
   * chain that does not continue): the nudged segments are then dropped and the pass reads the log.
   */
  private takeNudgedRun(): SegmentRun | undefined {
    for (const position of this.nudged.keys()) if (position <= this.applied) this.forgetNudged(position);
    if (!this.nudged.has(this.applied + 1n)) return undefined;
    const run = this.readRun(RUN_LIMITS, (at) => {
      const bytes = this.nudged.get(at);
      return bytes === undefined ? undefined : { bytes, trailerVerified: false };
    });
    let term = this.lastTerm;
    const usable =
      run.segments.length > 0 &&
      (run.stop.kind === 'end' || run.stop.kind === 'limit') &&
      run.segments.every((segment) => {
        const ordered = segment.header.term >= term;
        term = segment.header.term;
        return ordered;
      });
    if (!usable) {
      this.dropNudged();
      return undefined;
    }
    for (const segment of run.segments) this.forgetNudged(segment.header.position);
    return run;
  }

  private forgetNudged(position: bigint): void {
    const bytes = this.nudged.get(position);
    if (bytes === undefined) return;
    this.nudged.delete(position);
    this.nudgedBytes -= bytes.length;
  }

  /** Serve a read-only request (waiting for `minPosition` first); a write throws NeedsPrimaryError. */
  async query(
    statements: StatementInput[],
    minPosition?: bigint,
    access: StatementAccess = FULL_ACCESS,
  ): Promise<{ results: StatementResult[]; position: bigint }> {
    if (minPosition !== undefined) await this.waitForPosition(minPosition);
    while (this.applyingLarge) await this.applyingLarge.catch(() => undefined);
    const reader = this.readerOrThrow();
    if (!isReadOnlyRequest(reader.statements, statements, access.admin)) throw new NeedsPrimaryError();
    const run: StatementRun = { admin: access.admin, budget: new ResultBudget(this.options.settings.limits), exact: access.exact === true };
    if (this.options.statements?.enabled) run.samples = [];
    // Taken first: a run applied while a read process reads waits for it (SandboxFile.exclusive).
    const position = this.current;
    try {
      return { results: await this.sandbox.runRead(reader.statements, reader.db, statements, run), position };
    } finally {
      if (run.samples !== undefined) this.options.statements?.record(this.name, run.samples);
    }
  }

  /** Parse a statement without running it (the statement guard applies). */
  describe(sql: string, admin: boolean): StatementDescription {
    // Preparing reads the schema from the file, which a large segment may be halfway through.
    if (this.applyingLarge) {
      throw new LitebaseError('DATABASE_RECOVERING', `database ${this.name} is applying a large segment from the log; retry shortly`);
    }
    return describeStatement(this.readerOrThrow().statements, sql, admin);
  }

  /** Wait (bounded) until this replica has applied `position`. */
  async waitForPosition(position: bigint): Promise<void> {
    if (this.current < position) {
      if (Date.now() - this.lastNudgedAt > 1000) void this.catchUp();
      else setTimeout(() => this.current < position && void this.catchUp(), NUDGE_GRACE_MS).unref();
    }
    await this.positionWaiters.wait(position, () => this.current);
  }

  /**
   * Write a copy of the local file, exactly as of the applied position, into `file`, a new SQLite
   * file (src/engine/backup.ts). Segments wait to be applied while the file is copied.
   */
  async backupTo(file: string): Promise<{ position: bigint }> {
    return this.sandbox.reading(async () => {
      this.readerOrThrow();
      const { current: position, sandbox } = this;
      const generation = sandbox.generation;
      await copyFile(this.sqliteFile, file);
      // Closed meanwhile (a role switch): another engine may have written the file during the copy.
      if (this.closed || sandbox.generation !== generation) throw backupInterrupted(this.name);
      return { position };
    });
  }

  private readerOrThrow(): Reader {
    if (!this.reader || this.closed) {
      throw new LitebaseError('DATABASE_RECOVERING', `database ${this.name} is being rebuilt from the log; retry shortly`);
    }
    return this.reader;
  }

  /** Rebuild the local copy from the log (start, or after the copy diverged from it). */
  private async rebuild(fromScratch = false): Promise<void> {
    this.closeReader();
    mkdirSync(this.options.local.databaseDir(this.name), { recursive: true });
    if (fromScratch) await fs.rm(this.stateFile, { force: true });
    this.sandbox.forget();
    const recovered = await this.sandbox.exclusive(() =>
      recoverLocalCopy({ sqliteFile: this.sqliteFile, stateFile: this.stateFile }, this.log, this.meta.id, this.logger, this.checkpoints),
    );
    this.hashes = recovered.hashes;
    this.applied = recovered.position;
    this.current = recovered.position;
    this.publishedChecksum = recovered.hashes.checksum;
    this.openReader();
    this.positionWaiters.release(this.current);
  }

  /**
   * Apply every new segment, one pass at a time; a call during a pass schedules another. `head` is
   * the position the head file named when its watcher fired: the pass reads up to it and no
   * further (without it, the pass reads until a segment is missing).
   */
  catchUp(head?: bigint): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (head === undefined) this.lookPastHead = true;
    else if (this.headHint === undefined || head > this.headHint) this.headHint = head;
    if (this.catchingUp) {
      this.again = true;
      return this.catchingUp;
    }
    this.catchingUp = (async () => {
      try {
        do {
          this.again = false;
          await this.applyAvailable();
        } while (this.again && !this.closed);
      } catch (error) {
        this.logger.error({ err: error }, 'replica could not apply the log; will retry');
      } finally {
        this.catchingUp = undefined;
      }
    })();
    return this.catchingUp;
  }

  private async applyAvailable(): Promise<void> {
    // Past the head only when asked to look (a poll, a nudge, a waiting read) or with no head seen.
    const last = this.lookPastHead ? undefined : this.headHint;
    this.lookPastHead = false;
    try {
      await this.applyRuns(last);
    } finally {
      await this.stopReadingAhead();
    }
  }

  private async applyRuns(last: bigint | undefined): Promise<void> {
    let appliedNudged = false;
    for (;;) {
      if (this.closed) return;
      const nudged = this.readingAhead ? undefined : this.takeNudgedRun();
      if (nudged) {
        if (!(await this.sandbox.exclusive(() => this.applyAndPublish(nudged.segments)))) {
          await this.rebuild(true);
          continue;
        }
        this.options.metrics.nudgedSegments.inc({ database: this.name, outcome: 'applied' }, nudged.segments.length);
        appliedNudged = true;
        continue;
      }
      const run = this.readingAhead
        ? await this.readPrefetchedRun(this.readingAhead)
        : this.readRun(last === undefined ? RUN_LIMITS : { ...RUN_LIMITS, last });
      if (run.segments.length > 0) {
        // The file is written directly: no read process may read it meanwhile.
        if (!(await this.sandbox.exclusive(() => this.applyAndPublish(run.segments)))) {
          await this.stopReadingAhead();
          await this.rebuild(true);
          continue;
        }
      }
      const stop = run.stop;
      if (stop.kind === 'large') {
        // Too large to read whole: applied from its file, chunk by chunk, while no read runs.
        await this.stopReadingAhead();
        const applying = this.sandbox.exclusive(() => this.applyLargeAndPublish(stop.position, stop.location, stop.file));
        this.applyingLarge = applying;
        let applied: Awaited<typeof applying>;
        try {
          applied = await applying;
        } finally {
          this.applyingLarge = undefined;
        }
        if (applied === 'applied') continue;
        if (applied === 'rebuild') {
          await this.rebuild(true);
          continue;
        }
        return; // missing or corrupt: looked at again on the next poll
      }
      if (stop.kind === 'limit') {
        // A long catch-up: read the next files on a worker thread meanwhile, and let requests in
        // between runs.
        this.readingAhead ??= this.startReadingAhead();
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      await this.stopReadingAhead();
      if (stop.kind === 'corrupt') {
        this.report(stop.position, stop.code, stop.message);
        return; // never applied; retried on the next poll, when a good copy may be there
      }
      if (stop.kind === 'diverged') {
        // What chained onto the local copy is applied; the next run starts at the segment that
        // does not, and finds the copy no longer matches the log.
        if (run.segments.length > 0) continue;
        this.logger.warn(
          { file: stop.file, expected: formatChecksum(stop.preChecksum), local: formatChecksum(this.hashes.checksum) },
          'local copy does not match the log; rebuilding it',
        );
        await this.rebuild(true);
        continue;
      }
      // Nudged segments that follow what the log gave (they waited for a gap to be filled).
      if (this.nudged.has(this.applied + 1n)) continue;
      // A pass that applied nudged segments is not behind a compaction: no look at the checkpoints
      // (a listing on the shared file system, which the next nudge would wait for).
      if (run.segments.length > 0 || appliedNudged || !(await this.compactedPastUs())) return;
      await this.rebuild();
    }
  }

  private startReadingAhead(): SegmentPrefetcher {
    return new SegmentPrefetcher(this.log, this.applied + 1n);
  }

  private async stopReadingAhead(): Promise<void> {
    const reading = this.readingAhead;
    this.readingAhead = undefined;
    await reading?.close();
  }

  /** The next run from the files the workers read; back to reading here once they found no more. */
  private async readPrefetchedRun(reading: SegmentPrefetcher): Promise<SegmentRun> {
    const batch = await reading.next().catch((error: unknown) => readAheadFailed(error, this.logger));
    if (!batch || batch.files.length === 0 || batch.first !== this.applied + 1n) {
      await this.stopReadingAhead();
      return this.readRun();
    }
    // A batch is bounded by its files' bytes already (a large file ends it before the file).
    const run = this.readRun({ segments: batch.files.length, bytes: Infinity, pageBytes: Infinity }, batchSource(batch));
    // Stopped inside the batch (damage, a fork): what follows is decided by reading here.
    if (run.segments.length < batch.files.length) await this.stopReadingAhead();
    else if (run.stop.kind === 'end') run.stop = { kind: 'limit' };
    return run;
  }

  /** The next run of segments after the applied position (src/log/segment-runs.ts). */
  private readRun(limits: RunLimits = RUN_LIMITS, source?: SegmentSource): SegmentRun {
    const start = { databaseId: this.meta.id, position: this.applied, checksum: this.hashes.checksum };
    const run = source ? readSegmentRun(this.log, start, limits, source) : readSegmentRun(this.log, start, limits);
    let term = this.lastTerm;
    for (const { header } of run.segments) {
      if (header.term < term) {
        // A deposed Primary got a segment in after a newer one: the fence should prevent that, so
        // say so loudly. The position is still the log's truth and the checksum chain decides
        // whether it applies; every node replays it the same way.
        this.logger.warn(
          { position: header.position.toString(), term: header.term.toString(), lastTerm: term.toString() },
          'segment from an older term',
        );
      }
      term = header.term;
    }
    return run;
  }

  /**
   * Write a run's net change into the local file and fold it into the page hashes; false when the
   * result does not have the checksum the last segment promises (the copy is then rebuilt). Each
   * segment's trailer proved its bytes and the headers chain pre- to post-checksum, so checking
   * the end of the run checks every segment in it.
   */
  private applyRun(segments: DecodedSegment[]): { schemaPageWritten: boolean } | undefined {
    const last = segments[segments.length - 1];
    if (!last) return { schemaPageWritten: false };
    const startSize = this.hashes.databaseSizePages;
    const run = foldSegments(startSize, segments);
    const fd = openSync(this.sqliteFile, 'r+');
    try {
      applyRunToFile(fd, run, last.header.pageSize, startSize);
    } finally {
      closeSync(fd);
    }
    applyRunToHashes(this.hashes, run);
    if (this.hashes.checksum !== last.header.postChecksum) {
      this.logger.error(
        { first: segments[0]?.header.position.toString(), last: last.header.position.toString() },
        'segment pages do not give their post-checksum; rebuilding the local copy',
      );
      return undefined;
    }
    this.applied = last.header.position;
    this.lastTerm = last.header.term;
    this.lastError = undefined;
    // Page 1 holds the schema cookie: a run that did not write it did not change the schema.
    return { schemaPageWritten: run.pages.has(1) };
  }

  /**
   * The next segment is missing: is that because the compactor archived and deleted it? Then a
   * checkpoint at or past it exists. Looked at once per poll interval at most, since every wake-up
   * of a replica that is up to date ends here.
   */
  private async compactedPastUs(): Promise<boolean> {
    const now = Date.now();
    if (now - this.lastCompactionCheck < this.options.settings.replicaPollMs) return false;
    this.lastCompactionCheck = now;
    const newest = await this.checkpoints.newest();
    if (newest === undefined || newest <= this.applied) return false;
    this.logger.info(
      { position: (this.applied + 1n).toString(), checkpoint: newest.toString() },
      'the log was compacted past this replica; rebuilding from the checkpoint',
    );
    return true;
  }

  /**
   * Apply one large segment from its file (src/replay/large-segment.ts) and publish it: 'rebuild'
   * when the copy no longer matches the log (or may hold part of a damaged segment), 'stop' when
   * the segment must not be applied now (missing, corrupt, foreign: nothing was written).
   */
  private async applyLargeAndPublish(position: bigint, location: SegmentLocation, file: string): Promise<'applied' | 'rebuild' | 'stop'> {
    const start = { databaseId: this.meta.id, position, checksum: this.hashes.checksum };
    const fd = openSync(this.sqliteFile, 'r+');
    let outcome: LargeApplyOutcome;
    try {
      outcome = await applyLargeSegment(fd, location, start, this.hashes, file);
    } finally {
      closeSync(fd);
    }
    if (outcome.kind === 'missing') return 'stop';
    if (outcome.kind === 'corrupt') {
      this.report(position, outcome.code, outcome.message);
      return 'stop';
    }
    if (outcome.kind === 'diverged') {
      this.logger.warn(
        { file, expected: formatChecksum(outcome.preChecksum), local: formatChecksum(this.hashes.checksum) },
        'local copy does not match the log; rebuilding it',
      );
      return 'rebuild';
    }
    if (outcome.kind === 'damaged') {
      this.report(position, outcome.code, outcome.message);
      this.logger.error(
        { position: position.toString() },
        'a large segment turned out damaged while it was applied; rebuilding the local copy',
      );
      return 'rebuild';
    }
    const { header } = outcome;
    if (this.hashes.checksum !== header.postChecksum) {
      this.logger.error({ position: position.toString() }, 'segment pages do not give their post-checksum; rebuilding the local copy');
      return 'rebuild';
    }
    if (header.term < this.lastTerm) {
      this.logger.warn(
        { position: position.toString(), term: header.term.toString(), lastTerm: this.lastTerm.toString() },
        'segment from an older term',
      );
    }
    this.applied = header.position;
    this.lastTerm = header.term;
    this.lastError = undefined;
    this.publish(outcome.schemaPageWritten);
    return 'applied';
  }

  private applyAndPublish(segments: DecodedSegment[]): boolean {
    const applied = this.applyRun(segments);
    if (!applied) return false;
    this.publish(applied.schemaPageWritten);
    return true;
  }

  /** Make applied segments visible: fresh read connection, waiters released, state saved now and then. */
  private publish(schemaMayHaveChanged: boolean): void {
    this.refreshReader(schemaMayHaveChanged);
    // Only now: a read that waited for this position must find its rows in the new reader.
    this.current = this.applied;
    this.publishedChecksum = this.hashes.checksum;
    this.options.metrics.position.set({ database: this.name }, Number(this.current));
    this.positionWaiters.release(this.current);
    if (Date.now() - this.lastStateWrite > 1000) {
      this.lastStateWrite = Date.now();
      void this.saveState();
    }
  }

  private async saveState(): Promise<void> {
    await writeLocalState(this.stateFile, {
      databaseId: this.meta.id,
      position: this.current.toString(),
      checksum: formatChecksum(this.hashes.checksum),
    }).catch((error: unknown) => this.logger.warn({ err: error }, 'could not save replica state'));
  }

  private report(position: bigint, code: LitebaseError['code'], message: string): void {
    if (this.lastError?.position !== position.toString() || this.lastError.code !== code) {
      this.logger.error({ position: position.toString(), code }, message);
      this.options.metrics.corruptSegments.inc({ database: this.name, code });
    }
    this.lastError = { position: position.toString(), code, message, at: new Date().toISOString() };
  }

  private openReader(): void {
    const previous = this.reader;
    const db = new Database(this.sqliteFile);
    // A replica never writes through SQLite: its file changes only by applying the log.
    db.pragma('query_only = ON');
    db.pragma('foreign_keys = ON');
    const schemaVersionStatement = db.prepare('PRAGMA schema_version').pluck();
    this.reader = {
      db,
      statements: new StatementCache(db),
      schemaVersion: schemaVersionStatement.get() as number,
      shrinkMemory: db.prepare('PRAGMA shrink_memory'),
      schemaVersionStatement,
    };
    previous?.db.close();
  }

  /**
   * Make the reader see what a run wrote into the file. SQLite keeps pages cached between read
   * transactions and, since nothing goes through its WAL, would never notice the file changed:
   * `shrink_memory` drops every cached page (none is in use between requests), so the next read
   * goes to the file. Much cheaper than a new connection (~40 us against ~600 us, with every
   * statement prepared anew), which counted at hundreds of segments a second. Cached statements
   * are dropped when the schema changed, since their column lists may be out of date (looked at
   * only when page 1, which holds the schema cookie, was written). Both pragmas are prepared once:
   * preparing them per apply cost as much as running them.
   */
  private refreshReader(schemaMayHaveChanged: boolean): void {
    this.sandbox.changed();
    const reader = this.reader;
    if (!reader) {
      this.openReader();
      return;
    }
    reader.shrinkMemory.run();
    if (!schemaMayHaveChanged) return;
    const schemaVersion = reader.schemaVersionStatement.get() as number;
    if (schemaVersion !== reader.schemaVersion) {
      reader.statements.clear();
      reader.schemaVersion = schemaVersion;
    }
  }

  private closeReader(): void {
    this.reader?.db.close();
    this.reader = undefined;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.tailer.stop();
    await this.catchingUp;
    await this.saveState();
    this.sandbox.forget();
    this.closeReader();
  }
}
