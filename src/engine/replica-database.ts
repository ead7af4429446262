import { promises as fs, mkdirSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { CheckpointDirectory } from '../compactor/checkpoints.js';
import type { LitebaseConfig } from '../config/config.js';
import { LitebaseError, systemErrorCode } from '../errors.js';
import { LogDirectory } from '../log/log-directory.js';
import { LogTailer } from '../log/log-tailer.js';
import { formatChecksum, pageHash, type PageHashTable } from '../log/rolling-checksum.js';
import { decodeSegment, SegmentFormatError } from '../log/segment-codec.js';
import type { Metrics } from '../metrics.js';
import type { DatabaseMeta } from '../storage/catalog.js';
import type { LocalLayout, SharedLayout } from '../storage/layout.js';
import { isReadOnlyRequest, runReadOnly, StatementCache, type StatementInput, type StatementResult } from './executor.js';
import { applyPagesToFile, recoverLocalCopy, writeLocalState } from './local-copy.js';
import { PositionWaiters } from './position-waiters.js';

export interface ReplicaDatabaseOptions {
  meta: DatabaseMeta;
  shared: SharedLayout;
  local: LocalLayout;
  config: LitebaseConfig;
  logger: Logger;
  metrics: Metrics;
}

/** The request needs the Primary (it writes): the HTTP layer forwards it. */
export class NeedsPrimaryError extends LitebaseError {
  constructor() {
    super('NEEDS_PRIMARY', 'this request writes and must run on the Primary', { status: 503, retryAfterSeconds: 1 });
  }
}

interface Reader {
  db: Database.Database;
  statements: StatementCache;
}

/**
 * One database on a node that does not write it (DESIGN.md §6): it tails the log, verifies each
 * segment (trailer, database id, the checksum chain), writes its pages into the local file, and
 * serves reads. A read connection is replaced after every applied batch, because SQLite keeps
 * pages cached and, with no WAL activity, would never notice the file changed under it.
 */
export class ReplicaDatabase {
  private reader: Reader | undefined;
  private hashes!: PageHashTable;
  private current = 0n;
  private lastTerm = 0n;
  private catchingUp: Promise<void> | undefined;
  private again = false;
  private closed = false;
  private readonly positionWaiters: PositionWaiters;
  private readonly log: LogDirectory;
  private readonly checkpoints: CheckpointDirectory;
  private readonly tailer: LogTailer;
  private readonly sqliteFile: string;
  private readonly stateFile: string;
  private readonly logger: Logger;
  private lastStateWrite = 0;
  /** The last corrupt or unusable segment seen, for /v1/cluster; cleared once past it. */
  lastError: { position: string; code: string; message: string; at: string } | undefined;

  private constructor(private readonly options: ReplicaDatabaseOptions) {
    const { meta, shared, local, config } = options;
    this.log = new LogDirectory(shared.logDir(meta.name));
    this.checkpoints = new CheckpointDirectory(shared.checkpointsDir(meta.name));
    this.sqliteFile = local.sqliteFile(meta.name);
    this.stateFile = local.stateFile(meta.name);
    this.logger = options.logger.child({ database: meta.name, role: 'replica' });
    this.positionWaiters = new PositionWaiters(config.limits.waitTimeoutMs);
    this.tailer = new LogTailer({
      dir: this.log.dir,
      pollMs: config.replicaPollMs,
      watch: config.replicaWatch,
      onChange: () => void this.catchUp(),
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
    return formatChecksum(this.hashes.checksum);
  }

  get isReady(): boolean {
    return !this.closed && this.reader !== undefined;
  }

  /** Called when the Primary says the log grew. */
  nudge(): void {
    this.tailer.nudge();
  }

  /** Serve a read-only request (waiting for `minPosition` first); a write throws NeedsPrimaryError. */
  async query(statements: StatementInput[], minPosition?: bigint): Promise<{ results: StatementResult[]; position: bigint }> {
    if (minPosition !== undefined) await this.waitForPosition(minPosition);
    const reader = this.readerOrThrow();
    if (!isReadOnlyRequest(reader.statements, statements)) throw new NeedsPrimaryError();
    return { results: runReadOnly(reader.statements, reader.db, statements), position: this.current };
  }

  /** Wait (bounded) until this replica has applied `position`. */
  async waitForPosition(position: bigint): Promise<void> {
    if (this.current < position) void this.catchUp();
    await this.positionWaiters.wait(position, () => this.current);
  }

  private readerOrThrow(): Reader {
    if (!this.reader || this.closed) {
      throw new LitebaseError('DATABASE_RECOVERING', `database ${this.name} is being rebuilt from the log; retry shortly`, {
        status: 503,
        retryAfterSeconds: 1,
      });
    }
    return this.reader;
  }

  /** Rebuild the local copy from the log (start, or after the copy diverged from it). */
  private async rebuild(fromScratch = false): Promise<void> {
    this.closeReader();
    mkdirSync(this.options.local.databaseDir(this.name), { recursive: true });
    if (fromScratch) await fs.rm(this.stateFile, { force: true });
    const recovered = await recoverLocalCopy(
      { sqliteFile: this.sqliteFile, stateFile: this.stateFile },
      this.log,
      this.meta.id,
      this.logger,
      this.checkpoints,
    );
    this.hashes = recovered.hashes;
    this.current = recovered.position;
    this.openReader();
    this.positionWaiters.release(this.current);
  }

  /** Apply every new segment, one pass at a time; a call during a pass schedules another. */
  catchUp(): Promise<void> {
    if (this.closed) return Promise.resolve();
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
    let applied = 0;
    let handle: fs.FileHandle | undefined;
    try {
      for (;;) {
        if (this.closed) return;
        const position = this.current + 1n;
        let bytes: Buffer;
        try {
          bytes = this.log.readSync(position);
        } catch (error) {
          if (systemErrorCode(error) !== 'ENOENT') throw error;
          // A checkpoint at or past the missing position means the compactor archived and deleted
          // it (a checkpoint only covers segments that were written): start again from there.
          const newest = await this.checkpoints.newest();
          if (newest === undefined || newest < position) return;
          this.logger.info({ position: position.toString(), checkpoint: newest.toString() }, 'the log was compacted past this replica; rebuilding from the checkpoint');
          await handle?.close();
          handle = undefined;
          await this.rebuild();
          continue;
        }
        const file = this.log.segmentPath(position);
        let segment: ReturnType<typeof decodeSegment>;
        try {
          segment = decodeSegment(bytes);
        } catch (error) {
          if (!(error instanceof SegmentFormatError)) throw error;
          this.report(position, error.code, `${file}: ${error.message}`);
          return; // never applied; retried on the next poll, when a good copy may be there
        }
        const { header, pages } = segment;
        if (header.databaseId !== this.meta.id || header.position !== position) {
          this.report(position, 'LOG_FOREIGN_SEGMENT', `${file} is position ${header.position} of database ${header.databaseId}`);
          return;
        }
        if (header.term < this.lastTerm) {
          // A deposed Primary got a segment in after a newer one: the fence should prevent that, so
          // say so loudly. The position is still the log's truth and the checksum chain below
          // decides whether it applies; every node replays it the same way.
          this.logger.warn({ file, term: header.term.toString(), lastTerm: this.lastTerm.toString() }, 'segment from an older term');
        }
        if (header.preChecksum !== this.hashes.checksum) {
          this.logger.warn(
            { file, expected: formatChecksum(header.preChecksum), local: formatChecksum(this.hashes.checksum) },
            'local copy does not match the log; rebuilding it',
          );
          await handle?.close();
          handle = undefined;
          await this.rebuild(true);
          continue;
        }
        handle ??= await fs.open(this.sqliteFile, 'r+');
        await applyPagesToFile(handle, pages, header.pageSize, header.databaseSizePages);
        this.hashes.apply(
          pages.map(({ pageNumber, data }) => ({ pageNumber, hash: pageHash(pageNumber, data) })),
          header.databaseSizePages,
        );
        if (this.hashes.checksum !== header.postChecksum) {
          this.logger.error({ file }, 'segment pages do not give its post-checksum; rebuilding the local copy');
          await handle.close();
          handle = undefined;
          await this.rebuild(true);
          continue;
        }
        this.current = position;
        this.lastTerm = header.term;
        this.lastError = undefined;
        applied += 1;
        // Make the applied state readable in batches, not after every segment of a long catch-up.
        if (applied % 64 === 0) {
          this.publish();
          // Let requests in between batches of a long catch-up.
          await new Promise((resolve) => setImmediate(resolve));
        }
      }
    } finally {
      await handle?.close();
      if (applied > 0) this.publish();
    }
  }

  /** Make applied segments visible: fresh read connection, waiters released, state saved now and then. */
  private publish(): void {
    this.openReader();
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

  private report(position: bigint, code: string, message: string): void {
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
    this.reader = { db, statements: new StatementCache(db) };
    previous?.db.close();
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
    this.closeReader();
  }
}
