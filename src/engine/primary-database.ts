import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { releaseEvery } from '../native/malloc-tuning.js';
import { LitebaseError, notFound, unavailable } from '../errors.js';
import { LogDirectory } from '../log/log-directory.js';
import { formatChecksum } from '../format/rolling-checksum.js';
import type { Metrics } from '../metrics.js';
import type { DatabaseMeta } from '../storage/catalog.js';
import type { LocalLayout, SharedLayout } from '../storage/layout.js';
import type { AttachFollower, EngineSettings, LogFollower } from './settings.js';
import { AsyncMutex, type Release } from './async-mutex.js';
import { copySnapshot, openSnapshot } from './backup.js';
import { DurableLog } from './durable-log.js';
import { PositionWaiters } from './position-waiters.js';
import {
  describeStatement,
  FULL_ACCESS,
  isReadOnlyRequest,
  readOnlyKey,
  isSchemaChange,
  runStatement,
  StatementCache,
  toStatementError,
  type StatementAccess,
  type StatementDescription,
  type StatementInput,
  type StatementResult,
  type StatementRun,
} from './executor.js';
import { ResultBudget } from './result-limits.js';
import { SandboxFile } from './read-sandbox.js';
import type { StatementStats } from './statement-stats.js';
import { StatementDeadline } from './statement-deadline.js';
import { recoverLocalCopy, writeLocalState } from '../replay/local-copy.js';
import { WalCapture } from './wal-capture.js';

export type QueryMode = 'transaction' | 'independent';

export interface StatementFailure {
  error: { code: string; message: string; statement: number };
}

export interface QueryOutcome {
  results: Array<StatementResult | StatementFailure>;
  position: bigint;
}

export interface TransactionInfo {
  id: string;
  expiresAt: string;
}

interface Connections {
  writer: Database.Database;
  reader: Database.Database;
  writerStatements: StatementCache;
  readerStatements: StatementCache;
  /** Prepared once: exec() would parse these on every transaction. */
  begin: Database.Statement;
  commit: Database.Statement;
  rollback: Database.Statement;
  /** A write group member's own savepoint (§5.4): its statements succeed or fail together. */
  memberBegin: Database.Statement;
  memberEnd: Database.Statement;
  memberUndo: Database.Statement;
  /**
   * Whether writes may share a transaction: false while the schema holds something that can roll
   * back a whole transaction or fail its COMMIT (ON CONFLICT ROLLBACK, RAISE(ROLLBACK), deferred
   * constraints). Undefined until looked at; forgotten with the statements on a schema change.
   */
  groupable?: boolean;
}

type WriteBody = (writer: Database.Database, cache: StatementCache) => void;

/**
 * Writes of one turn of the event loop that share one SQLite transaction (docs/ARCHITECTURE.md §5.4):
 * it holds the write lock from its first member until it commits, right after the turn.
 */
interface WriteGroup {
  release: Release;
  /** The connections it was opened on: after a rebuild of the local copy (§5.5) its transaction is gone with them. */
  connections: Connections;
  members: Array<{ body: WriteBody; resolve: (position: bigint) => void; reject: (error: unknown) => void }>;
  /** Committed or broken up: no write joins it any more. */
  closed: boolean;
}

/**
 * Statement text that can end a whole transaction or defer its checks to COMMIT (`INSERT OR ROLLBACK`,
 * `PRAGMA defer_foreign_keys`): such a request writes alone, never inside a write group.
 */
const ENDS_OR_DEFERS = /rollback|defer/i;

/**
 * What a write body changes in its request's run (the response budget, the statement samples),
 * remembered before it runs: the returned function puts it back, so a body that runs again (a write
 * group broke up) starts where the first run did.
 */
function restartPoint(run: StatementRun): () => void {
  const { rows, bytes } = run.budget;
  const samples = run.samples?.length ?? 0;
  return () => {
    run.budget.rows = rows;
    run.budget.bytes = bytes;
    if (run.samples !== undefined) run.samples.length = samples;
  };
}

/** Schema that can do the same from inside an ordinary statement (a trigger's RAISE(ROLLBACK), a deferred foreign key). */
const SCHEMA_ENDS_OR_DEFERS = "SELECT 1 FROM sqlite_schema WHERE sql LIKE '%rollback%' OR sql LIKE '%defer%' LIMIT 1";

interface InteractiveTransaction {
  id: string;
  expiresAt: number;
  release: Release;
  timer: NodeJS.Timeout;
}

/**
 * Where a Primary's durable progress goes (the node nudges its replicas: src/cluster/replica-nudger.ts).
 * `durable` is called after each flush that made new segments durable, with copies of them when
 * `wantsSegments` asked for each as it was encoded; undefined when one of them was not copied (not
 * wanted, or a large one).
 */
export interface ReplicaFeed {
  wantsSegments(database: string): boolean;
  durable(database: string, segments: readonly Buffer[] | undefined): void;
}

export interface PrimaryDatabaseOptions<Follower extends LogFollower = LogFollower> {
  meta: DatabaseMeta;
  shared: SharedLayout;
  local: LocalLayout;
  settings: EngineSettings;
  logger: Logger;
  metrics: Metrics;
  term: bigint;
  /** False once this node may no longer write the log (its lease expired or was taken). */
  canWrite?: () => boolean;
  writeFence?: SharedArrayBuffer;
  /** Another writer took a log position: this node must stop being the Primary. */
  onDeposed?: (reason: string) => void;
  /** Told after each flush that made commits durable (the node nudges its replicas). */
  replicaFeed?: ReplicaFeed;
  /** Work that follows the log once the database is open (the node attaches its compactor here). */
  follow?: AttachFollower<Follower>;
  /** Where the statements this engine runs are counted (statement-stats.ts); none when absent. */
  statements?: StatementStats;
}

type State = 'ready' | 'recovering' | 'closed';

let deadlineWarningGiven = false;

/**
 * One database on the node that writes it (docs/ARCHITECTURE.md §5): a local SQLite file in WAL mode, a
 * writer connection behind a write lock, a reader connection, and the durable log that turns local
 * commits into acknowledged positions. The local file is only a cache of the log: when a segment
 * cannot be persisted, the local copy is rolled back by rebuilding it from the log.
 */
export class PrimaryDatabase<Follower extends LogFollower = LogFollower> {
  private state: State = 'recovering';
  private connections: Connections | undefined;
  private durableLog: DurableLog | undefined;
  private capture: WalCapture;
  private readonly writeLock = new AsyncMutex();
  /** This turn's write group, while it takes members (§5.4). */
  private group: WriteGroup | undefined;
  private readonly positionWaiters: PositionWaiters;
  private readonly transactions = new Map<string, InteractiveTransaction>();
  /** Interactive transactions waiting for the write lock: they count against the limit too. */
  private transactionsWaiting = 0;
  private readonly endedTransactions = new Map<string, string>();
  private checkpointing = false;
  private recovery: Promise<void> | undefined;
  private attached: Follower | undefined;
  private readonly log: LogDirectory;
  private readonly sqliteFile: string;
  private readonly stateFile: string;
  private readonly logger: Logger;
  /** Looping reads run in read processes that can be killed (read-sandbox.ts). */
  private readonly sandbox: SandboxFile;

  private constructor(private readonly options: PrimaryDatabaseOptions<Follower>) {
    const { meta, shared, local } = options;
    // The Primary of this term claimed it before it reads the log: it accepts every complete record
    // of the terms before, and seals their log where it ends (docs/FORMAT.md §1.2).
    this.log = new LogDirectory(shared.logDir(meta.name), {
      format: options.settings.logFormat ?? 'terms',
      termsDir: path.join(shared.clusterDir, 'terms'),
      writerTerm: options.term,
      ...(options.settings.termLogRollSegments === undefined ? {} : { rollSegments: options.settings.termLogRollSegments }),
    });
    this.sqliteFile = local.sqliteFile(meta.name);
    this.stateFile = local.stateFile(meta.name);
    this.capture = new WalCapture(`${this.sqliteFile}-wal`);
    this.sandbox = new SandboxFile(this.sqliteFile, options.settings.limits);
    this.logger = options.logger.child({ database: meta.name });
    this.positionWaiters = new PositionWaiters(options.settings.limits.waitTimeoutMs);
  }

  static async open<Follower extends LogFollower = LogFollower>(
    options: PrimaryDatabaseOptions<Follower>,
  ): Promise<PrimaryDatabase<Follower>> {
    const database = new PrimaryDatabase<Follower>(options);
    await database.recover();
    return database;
  }

  get name(): string {
    return this.options.meta.name;
  }

  get meta(): DatabaseMeta {
    return this.options.meta;
  }

  /** The newest durable position. */
  get position(): bigint {
    return this.durableLog?.position ?? 0n;
  }

  get checksum(): string {
    return formatChecksum(this.durableLog?.checksum ?? 0n);
  }

  get isReady(): boolean {
    return this.state === 'ready';
  }

  /** What follows this database's log (the compactor, when the node attached one). */
  get follower(): Follower | undefined {
    return this.attached;
  }

  /** Run a request's statements (docs/API.md "POST /v1/databases/:db/query"), then wait until what it saw or wrote is durable. */
  async query(
    statements: StatementInput[],
    mode: QueryMode,
    minPosition?: bigint,
    access: StatementAccess = FULL_ACCESS,
  ): Promise<QueryOutcome> {
    if (minPosition !== undefined) await this.waitForPosition(minPosition);
    const run = this.run(access);
    try {
      return mode === 'transaction'
        ? await this.queryAsTransaction(statements, access, run)
        : await this.queryIndependently(statements, access, run);
    } finally {
      this.record(run);
    }
  }

  /** Parse a statement without running it (on the read connection; the statement guard applies). */
  describe(sql: string, admin: boolean): StatementDescription {
    return describeStatement(this.ready().readerStatements, sql, admin);
  }

  /** A request's run: one budget of response limits shared by all its statements, and their samples when the node counts them. */
  private run(access: StatementAccess): StatementRun {
    const run: StatementRun = { admin: access.admin, budget: new ResultBudget(this.options.settings.limits), exact: access.exact === true };
    if (this.options.statements?.enabled) run.samples = [];
    return run;
  }

  /** Count the request's statements (statement-stats.ts), whether it succeeded or not. */
  private record(run: StatementRun): void {
    if (run.samples !== undefined) this.options.statements?.record(this.name, run.samples);
  }

  private async queryAsTransaction(statements: StatementInput[], access: StatementAccess, run: StatementRun): Promise<QueryOutcome> {
    const connections = this.ready();
    if (isReadOnlyRequest(connections.readerStatements, statements, access.admin)) {
      const results = await this.sandbox.runRead(connections.readerStatements, connections.reader, statements, run);
      return { results, position: await this.afterRead() };
    }
    if (!access.write) throw readOnlyKey(this.name);
    const results: StatementResult[] = [];
    const restart = restartPoint(run);
    const position = await this.write(
      (writer, cache) => {
        restart();
        results.length = 0;
        statements.forEach((statement, index) => results.push(runStatement(cache, writer, statement, index, run)));
      },
      statements.some((statement) => isSchemaChange(statement.sql)),
      !statements.some((statement) => ENDS_OR_DEFERS.test(statement.sql)),
    );
    return { results, position };
  }

  private async queryIndependently(statements: StatementInput[], access: StatementAccess, run: StatementRun): Promise<QueryOutcome> {
    const results: Array<StatementResult | StatementFailure> = [];
    let lastWrite: bigint | undefined;
    for (const [index, statement] of statements.entries()) {
      try {
        const connections = this.ready();
        if (isReadOnlyRequest(connections.readerStatements, [statement], access.admin)) {
          results.push(...(await this.sandbox.runRead(connections.readerStatements, connections.reader, [statement], run, index)));
        } else {
          if (!access.write) throw readOnlyKey(this.name, index);
          let result: StatementResult | undefined;
          const restart = restartPoint(run);
          lastWrite = await this.write(
            (writer, cache) => {
              restart();
              result = runStatement(cache, writer, statement, index, run);
            },
            isSchemaChange(statement.sql),
            !ENDS_OR_DEFERS.test(statement.sql),
          );
          if (result) results.push(result);
        }
      } catch (error) {
        const failure = toStatementError(error, index);
        // The log being unavailable is not a per-statement problem: the whole request fails.
        if (failure.status === 503) throw failure;
        results.push({ error: { code: failure.code, message: failure.message, statement: index } });
      }
    }
    const position = await this.afterRead();
    return { results, position: lastWrite !== undefined && lastWrite > position ? lastWrite : position };
  }

  /**
   * A read may have seen commits whose segment is still being written; it is answered only once
   * they are durable, so no client ever sees a write that could still be rolled back.
   */
  private async afterRead(): Promise<bigint> {
    const log = this.durableLog;
    if (!log) throw this.notReady();
    if (log.hasPending) return log.waitDurable(log.lastCommitted);
    return log.position;
  }

  /**
   * Run `body` in a write transaction and resolve with the durable position that holds it: in the
   * open write group, or a new one, when `groupable` and group commit allow (§5.4), else alone. A
   * body may run twice (a group that broke up runs its members again alone): it must start over
   * each time, as the query bodies do (restartPoint).
   */
  private write(body: WriteBody, changesSchema = false, groupable = false): Promise<bigint> {
    if (groupable && !changesSchema && this.options.settings.groupCommit) {
      const grouped = this.writeInGroup(body);
      if (grouped !== undefined) return grouped;
    }
    return this.writeAlone(body, changesSchema);
  }

  /**
   * Run `body` as a member of this turn's write group, in its own savepoint; undefined when no group
   * can take it (the write lock is held by something else, or the schema forbids groups), so it
   * writes alone. The group commits right after this turn of the event loop (setImmediate), when
   * every request read from the sockets in it has run.
   */
  private writeInGroup(body: WriteBody): Promise<bigint> | undefined {
    let group = this.group;
    if (group !== undefined && (group.connections !== this.connections || this.state !== 'ready')) {
      // The local copy is being rebuilt under it (§5.5): its transaction goes with the old connections.
      this.breakUp(group);
      group = undefined;
    }
    if (group === undefined) {
      const release = this.writeLock.tryAcquire();
      if (release === undefined) return undefined;
      let connections: Connections;
      try {
        connections = this.ready();
        connections.groupable ??= connections.writer.prepare(SCHEMA_ENDS_OR_DEFERS).get() === undefined;
        if (!connections.groupable) {
          release();
          return undefined;
        }
        connections.begin.run();
      } catch (error) {
        release();
        throw error;
      }
      const opened: WriteGroup = { release, connections, members: [], closed: false };
      this.group = group = opened;
      setImmediate(() => this.commitGroup(opened));
    }
    const { writer, writerStatements, memberBegin, memberEnd, memberUndo } = group.connections;
    memberBegin.run();
    try {
      body(writer, writerStatements);
    } catch (error) {
      try {
        // SQLite may have ended the whole transaction (an interrupted statement, a full disk): the
        // members before this one lost their work too.
        if (!writer.inTransaction) throw error;
        memberUndo.run();
        memberEnd.run();
      } catch {
        // This member's work could not be taken out on its own: none of the group's stays, and the
        // members before this one run again alone.
        this.breakUp(group);
      }
      throw error;
    }
    if (!writer.inTransaction) {
      // A statement ended the group's transaction (the statement guard refuses COMMIT and friends;
      // should one slip through): what it committed is in the WAL, this member's work included.
      this.options.logger.error({ database: this.name }, 'a statement ended the write transaction itself; the statement guard missed it');
    } else {
      try {
        memberEnd.run();
      } catch (error) {
        this.breakUp(group);
        throw error;
      }
    }
    const joined = group;
    return new Promise<bigint>((resolve, reject) => {
      joined.members.push({ body, resolve, reject });
      if (!writer.inTransaction) this.commitGroup(joined);
    });
  }

  /** Commit a write group (or what is left of it) and answer its members once their segment is durable. */
  private commitGroup(group: WriteGroup): void {
    if (group.closed) return;
    group.closed = true;
    if (this.group === group) this.group = undefined;
    try {
      if (this.connections !== group.connections || this.state !== 'ready') throw this.notReady();
      const { writer, commit, rollback } = group.connections;
      if (group.members.length === 0) {
        // Every member failed and was rolled back to its savepoint: nothing to commit.
        if (writer.inTransaction) rollback.run();
        group.release();
        return;
      }
      if (writer.inTransaction) commit.run();
    } catch (error) {
      // COMMIT failed (or the connections are gone): nothing of the group is in the database. Each
      // member runs again alone and gets its own outcome.
      this.logger.warn({ err: error, members: group.members.length }, 'a write group could not commit; its writes run again one by one');
      group.closed = false;
      this.breakUp(group);
      return;
    }
    // Committed: from here on a member is never run again (it would write twice), only answered.
    group.release();
    let durable: Promise<bigint>;
    try {
      const log = this.durableLog as DurableLog;
      durable = log.waitDurable(log.noteCommit(group.members.length, true));
    } catch (error) {
      durable = Promise.reject(error);
    }
    for (const member of group.members) durable.then(member.resolve, member.reject);
  }

  /** The group's transaction is gone or cannot commit: roll back what is left, and run each member again alone. */
  private breakUp(group: WriteGroup): void {
    if (group.closed) return;
    group.closed = true;
    if (this.group === group) this.group = undefined;
    try {
      const { writer, rollback } = group.connections;
      if (writer.open && writer.inTransaction) rollback.run();
    } finally {
      group.release();
    }
    for (const member of group.members) this.writeAlone(member.body, false).then(member.resolve, member.reject);
  }

  /** Run `body` in a write transaction of its own. */
  private async writeAlone(body: WriteBody, changesSchema: boolean): Promise<bigint> {
    const release = this.writeLock.tryAcquire() ?? (await this.writeLock.acquire(this.options.settings.limits.waitTimeoutMs));
    let sequence: number;
    let log: DurableLog;
    try {
      const connections = this.ready();
      const { writer, writerStatements, begin, commit, rollback } = connections;
      log = this.durableLog as DurableLog;
      begin.run();
      try {
        body(writer, writerStatements);
        // The statement guard refuses COMMIT and friends; should one slip through, whatever it
        // committed is in the WAL, and noteCommit below still takes it into the log.
        if (writer.inTransaction) commit.run();
        else
          this.options.logger.error(
            { database: this.name },
            'a statement ended the write transaction itself; the statement guard missed it',
          );
      } catch (error) {
        if (writer.inTransaction) rollback.run();
        throw error;
      } finally {
        if (changesSchema) this.forgetStatements(connections);
      }
      sequence = log.noteCommit();
    } catch (error) {
      release();
      throw error;
    }
    if (this.options.settings.groupCommit) {
      release();
      return log.waitDurable(sequence);
    }
    // Without group commit the lock is held until the segment is durable: one fsync per transaction.
    try {
      return await log.waitDurable(sequence);
    } finally {
      release();
    }
  }

  /** Wait (bounded) until this node has the given position durable. */
  async waitForPosition(minPosition: bigint): Promise<void> {
    await this.positionWaiters.wait(minPosition, () => this.position);
  }

  /**
   * Write a copy of the database, exactly as of a durable position, into `file`, a new SQLite file
   * (src/engine/backup.ts). The snapshot is pinned under the write lock once nothing is pending;
   * the copy then runs while writes go on. Abandoned when the local copy is rebuilt or closed.
   */
  async backupTo(file: string, signal?: AbortSignal): Promise<{ position: bigint }> {
    return this.sandbox.reading(async () => {
      const generation = this.sandbox.generation;
      const release = await this.writeLock.acquire(this.options.settings.limits.waitTimeoutMs);
      let snapshot: { source: Database.Database; position: bigint };
      try {
        this.ready();
        const log = this.durableLog as DurableLog;
        if (log.hasPending) await log.waitDurable(log.lastCommitted);
        snapshot = { source: openSnapshot(this.sqliteFile), position: log.position };
      } finally {
        release();
      }
      try {
        await copySnapshot(snapshot.source, file, () => this.sandbox.generation === generation && !signal?.aborted, this.name);
      } finally {
        snapshot.source.close();
      }
      return { position: snapshot.position };
    });
  }

  private forgetStatements(connections: Connections): void {
    connections.writerStatements.clear();
    connections.readerStatements.clear();
    connections.groupable = undefined;
  }

  // ---- interactive transactions -------------------------------------------------------------

  async beginTransaction(timeoutMs: number): Promise<TransactionInfo> {
    const limit = this.options.settings.limits;
    const timeout = Math.min(timeoutMs, limit.maxTransactionTimeoutMs);
    // Only one is open at a time (it holds the write lock); the others wait in line, each with a
    // timer and a request held open. The line is bounded so a burst cannot pile them up.
    if (this.transactions.size + this.transactionsWaiting >= limit.maxTransactionsPerDatabase) {
      throw new LitebaseError(
        'TOO_MANY_TRANSACTIONS',
        `database ${this.name} already has ${limit.maxTransactionsPerDatabase} interactive transactions open or waiting to begin; retry later`,
        { details: { limit: limit.maxTransactionsPerDatabase } },
      );
    }
    this.transactionsWaiting += 1;
    let release: Release;
    try {
      release = await this.writeLock.acquire(limit.waitTimeoutMs);
    } finally {
      this.transactionsWaiting -= 1;
    }
    try {
      this.ready().writer.exec('BEGIN IMMEDIATE');
    } catch (error) {
      release();
      throw toStatementError(error, 0);
    }
    const id = randomUUID();
    const expiresAt = Date.now() + timeout;
    const timer = setTimeout(() => this.endTransaction(id, 'expired', 'ROLLBACK'), timeout);
    timer.unref();
    this.transactions.set(id, { id, expiresAt, release, timer });
    return { id, expiresAt: new Date(expiresAt).toISOString() };
  }

  async transactionQuery(id: string, statements: StatementInput[], access: StatementAccess = FULL_ACCESS): Promise<QueryOutcome> {
    this.openTransaction(id);
    const { writer, writerStatements } = this.ready();
    const run = this.run(access);
    try {
      const results = statements.map((statement, index) => runStatement(writerStatements, writer, statement, index, run));
      return { results, position: this.position };
    } catch (error) {
      // SQLite rolls the whole transaction back after some failures (an interrupted write, a full
      // disk); the transaction is then over and its write lock is given back.
      if (!writer.inTransaction) this.endTransaction(id, 'rolled back when a statement failed');
      throw error;
    } finally {
      this.record(run);
    }
  }

  async commitTransaction(id: string): Promise<bigint> {
    this.openTransaction(id);
    const log = this.durableLog as DurableLog;
    try {
      this.ready().writer.exec('COMMIT');
      // The transaction may have changed the schema; its statements were not inspected one by one.
      this.forgetStatements(this.ready());
    } catch (error) {
      this.endTransaction(id, 'failed', 'ROLLBACK');
      throw toStatementError(error, 0);
    }
    const sequence = log.noteCommit();
    this.endTransaction(id, 'committed');
    return log.waitDurable(sequence);
  }

  /**
   * A savepoint inside an open interactive transaction (Hrana streams; the statement guard refuses
   * savepoint statements in requests). The statement is built here from the name alone, and only
   * runs inside the transaction's BEGIN, so RELEASE never commits and ROLLBACK TO never ends it.
   */
  transactionSavepoint(id: string, kind: 'savepoint' | 'release' | 'rollback_to', name: string): void {
    this.openTransaction(id);
    const connections = this.ready();
    const quoted = `"${name.replaceAll('"', '""')}"`;
    const sql =
      kind === 'savepoint' ? `SAVEPOINT ${quoted}` : kind === 'release' ? `RELEASE SAVEPOINT ${quoted}` : `ROLLBACK TO SAVEPOINT ${quoted}`;
    try {
      connections.writer.exec(sql);
    } catch (error) {
      throw toStatementError(error, 0);
    } finally {
      // ROLLBACK TO may have undone a schema change.
      if (kind === 'rollback_to') this.forgetStatements(connections);
    }
  }

  async rollbackTransaction(id: string): Promise<void> {
    this.openTransaction(id);
    this.endTransaction(id, 'rolled back', 'ROLLBACK');
  }

  /** True while the interactive transaction is open (SQLite may have rolled it back after a failed statement). */
  hasTransaction(id: string): boolean {
    return this.transactions.has(id);
  }

  private openTransaction(id: string): InteractiveTransaction {
    const transaction = this.transactions.get(id);
    if (transaction) return transaction;
    const ended = this.endedTransactions.get(id);
    if (ended) {
      throw new LitebaseError(
        'TRANSACTION_ENDED',
        `transaction ${id} has already ${ended === 'expired' ? 'expired and was rolled back' : ended}`,
      );
    }
    throw notFound('TRANSACTION_NOT_FOUND', `transaction ${id} does not exist on this node`);
  }

  private endTransaction(id: string, outcome: string, finish?: 'ROLLBACK'): void {
    const transaction = this.transactions.get(id);
    if (!transaction) return;
    this.transactions.delete(id);
    clearTimeout(transaction.timer);
    if (finish && this.connections?.writer.inTransaction) {
      try {
        this.connections.writer.exec(finish);
      } catch (error) {
        this.logger.warn({ err: error, transaction: id }, 'rollback of an interactive transaction failed');
      }
    }
    // The transaction may have changed the schema (or rolled a change back).
    if (this.connections) this.forgetStatements(this.connections);
    this.endedTransactions.set(id, outcome);
    if (this.endedTransactions.size > 1000) {
      const oldest = this.endedTransactions.keys().next().value;
      if (oldest !== undefined) this.endedTransactions.delete(oldest);
    }
    transaction.release();
    if (outcome === 'expired') this.logger.info({ transaction: id }, 'interactive transaction timed out and was rolled back');
  }

  // ---- recovery and lifecycle ---------------------------------------------------------------

  private ready(): Connections {
    if (this.state !== 'ready' || !this.connections) throw this.notReady();
    return this.connections;
  }

  private notReady(): LitebaseError {
    return this.state === 'closed'
      ? unavailable('DATABASE_CLOSED', `database ${this.name} is shutting down on this node`)
      : unavailable('DATABASE_RECOVERING', `database ${this.name} is being rebuilt from the log; retry shortly`);
  }

  /**
   * Rebuild the local copy from the log and open it. Used at start and after a segment could not
   * be persisted: rebuilding drops every local transaction the log does not hold.
   */
  private recover(): Promise<void> {
    this.recovery ??= this.runRecovery().finally(() => {
      this.recovery = undefined;
    });
    return this.recovery;
  }

  private async runRecovery(): Promise<void> {
    const { meta, metrics, settings } = this.options;
    this.state = 'recovering';
    for (const id of [...this.transactions.keys()]) this.endTransaction(id, 'aborted because the log became unavailable');
    this.closeConnections();
    this.capture.close();
    mkdirSync(this.options.local.databaseDir(meta.name), { recursive: true });
    // Rebuilding deletes the local WAL: no read process may have the file open meanwhile.
    this.sandbox.forget();
    const recovered = await this.sandbox.exclusive(() =>
      recoverLocalCopy({ sqliteFile: this.sqliteFile, stateFile: this.stateFile }, this.log, meta.id, this.logger),
    );
    // close() may have run while the log was replayed.
    if ((this.state as State) === 'closed') return;
    if (recovered.replayedSegments > 0) metrics.localRecoveries.inc({ database: meta.name });
    this.connections = this.openConnections();
    this.capture = new WalCapture(`${this.sqliteFile}-wal`);
    const feed = this.options.replicaFeed;
    /** Segments made durable since the feed was last told: their copies, and whether one was not copied. */
    let copies: Buffer[] = [];
    let uncopied = false;
    const tellFeed = (): void => {
      if (!feed || (copies.length === 0 && !uncopied)) return;
      feed.durable(meta.name, uncopied ? undefined : copies);
      copies = [];
      uncopied = false;
    };
    // A new writer of the log: temp files earlier writers left behind go (in the background).
    void this.log.sweepStaleTemps().then((removed) => {
      if (removed > 0) this.logger.info({ removed }, 'removed stale append temp files from the log folder');
    });
    const releaseAfterStreaming = releaseEvery(256 * 1024 * 1024);
    this.durableLog = new DurableLog({
      database: meta.name,
      databaseId: meta.id,
      pageSize: recovered.hashes.databaseSizePages > 0 ? recovered.hashes.pageSize : meta.pageSize,
      term: this.options.term,
      log: this.log,
      capture: this.capture,
      hashes: recovered.hashes,
      position: recovered.position,
      metrics,
      canWrite: this.options.canWrite ?? (() => true),
      ...(this.options.writeFence ? { writeFence: this.options.writeFence } : {}),
      ...(settings.streamSegmentBytes === undefined ? {} : { streamSegmentBytes: settings.streamSegmentBytes }),
      onStreamed: (segment) => {
        this.logger.info(
          {
            position: segment.position.toString(),
            pages: segment.pages,
            bytes: segment.bytes,
            transactions: segment.transactions,
            seconds: segment.seconds,
          },
          'large segment written chunk by chunk',
        );
        // Capturing and compressing large transactions goes through far more memory than stays in
        // use: give it back (a node held ~70 MiB more after a 1 GiB transaction). Every 256 MiB of
        // them, not after each: a transaction of a few MiB is streamed too, and a full collection
        // (a mark of the whole heap) per such commit is work the commit path need not carry.
        releaseAfterStreaming(segment.bytes);
      },
      onFailure: (error) => this.onLogFailure(error),
      ...(feed
        ? {
            segmentCopies: {
              wanted: () => feed.wantsSegments(meta.name),
              durable: (segment: Buffer | undefined) => {
                if (segment) copies.push(segment);
                else uncopied = true;
              },
            },
          }
        : {}),
      onFlushed: () => {
        this.positionWaiters.release(this.position);
        void this.checkpointIfLarge();
        this.attached?.notify(this.position);
        tellFeed();
      },
    });
    // Format `terms`: the log of the terms before this one ends here, for every reader (a no-op for `segments`).
    await this.durableLog.seal();
    metrics.position.set({ database: meta.name }, Number(recovered.position));
    this.state = 'ready';
    if (this.options.follow && !this.attached) {
      this.attached = this.options.follow({
        canWrite: () => this.state !== 'closed' && (this.options.canWrite?.() ?? true),
        rollLog: async () => (this.state === 'ready' && this.durableLog ? this.durableLog.roll() : false),
      });
      this.attached.start(recovered.position);
    }
    this.logger.info(
      { position: recovered.position.toString(), replayed: recovered.replayedSegments, groupCommit: settings.groupCommit },
      'database open',
    );
  }

  private onLogFailure(error: LitebaseError): void {
    this.state = 'recovering';
    if (error.code === 'LOG_POSITION_TAKEN' || error.code === 'LEASE_LOST') {
      // Another node writes the log now: this engine is about to be replaced by a replica, which
      // rebuilds the local copy from the log (dropping what this node committed locally).
      this.logger.warn({ err: error }, 'deposed: another node writes the log');
      this.options.onDeposed?.(error.message);
      return;
    }
    this.logger.error({ err: error }, 'segment could not be persisted; rolling the local copy back to the log');
    void this.retryRecovery();
  }

  private async retryRecovery(): Promise<void> {
    for (let attempt = 1; this.state === 'recovering'; attempt++) {
      if (attempt > 1 && !(this.options.canWrite?.() ?? true)) return;
      try {
        await this.recover();
        return;
      } catch (error) {
        this.logger.error({ err: error, attempt }, 'local copy could not be rebuilt from the log; retrying');
        await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 200 * attempt)));
      }
    }
  }

  private openConnections(): Connections {
    const writer = new Database(this.sqliteFile);
    writer.pragma(`page_size = ${this.options.meta.pageSize}`);
    writer.pragma('journal_mode = WAL');
    // The Primary checkpoints its WAL itself, only below durable positions (docs/ARCHITECTURE.md §5.7).
    writer.pragma('wal_autocheckpoint = 0');
    // Durability comes from the log on the shared file system, not from the local disk.
    writer.pragma('synchronous = OFF');
    writer.pragma('foreign_keys = ON');
    writer.pragma('busy_timeout = 0');
    const reader = new Database(this.sqliteFile, { readonly: true });
    reader.pragma('foreign_keys = ON');
    return {
      writer,
      reader,
      writerStatements: new StatementCache(writer, this.deadlineFor(writer)),
      readerStatements: new StatementCache(reader),
      begin: writer.prepare('BEGIN IMMEDIATE'),
      commit: writer.prepare('COMMIT'),
      rollback: writer.prepare('ROLLBACK'),
      memberBegin: writer.prepare('SAVEPOINT litebase_write_group_member'),
      memberEnd: writer.prepare('RELEASE SAVEPOINT litebase_write_group_member'),
      memberUndo: writer.prepare('ROLLBACK TO SAVEPOINT litebase_write_group_member'),
    };
  }

  /**
   * The write connection's statement time limit. Without the extension (not built: no C compiler
   * at install time) a looping write is stopped only by the event-loop watchdog, which kills the
   * node; said once per process.
   */
  private deadlineFor(writer: Database.Database): StatementDeadline | undefined {
    try {
      return StatementDeadline.attach(writer);
    } catch (error) {
      if (!deadlineWarningGiven) {
        deadlineWarningGiven = true;
        this.logger.warn(
          { err: error },
          'write statements have no time limit: a looping write is stopped only by the watchdog (docs/SECURITY.md)',
        );
      }
      return undefined;
    }
  }

  /**
   * Close without letting SQLite checkpoint the WAL into the file: the WAL may hold commits that
   * are not in the log. SQLite's last connection to close checkpoints unless another connection
   * still holds the file open, and a read-only connection never checkpoints; so a read-only guard
   * is opened first and closed last.
   */
  private closeConnections(): void {
    const connections = this.connections;
    this.connections = undefined;
    if (!connections) return;
    const guard = new Database(this.sqliteFile, { readonly: true });
    try {
      guard.prepare('SELECT 1').get();
      connections.reader.close();
      connections.writer.close();
    } finally {
      guard.close();
    }
  }

  /**
   * Fold the local WAL into the local file once everything in it is durable, then record the
   * position the file now reflects. Holds the write lock so no commit can slip in between.
   */
  async checkpointIfLarge(): Promise<void> {
    if (this.checkpointing || this.state !== 'ready' || this.capture.bytesConsumed < this.options.settings.walCheckpointBytes) return;
    this.checkpointing = true;
    let release: Release | undefined;
    try {
      release = await this.writeLock.acquire(this.options.settings.limits.waitTimeoutMs);
      await this.checkpointLocked();
    } catch (error) {
      this.logger.warn({ err: error }, 'local checkpoint skipped');
    } finally {
      release?.();
      this.checkpointing = false;
    }
  }

  private async checkpointLocked(): Promise<void> {
    const log = this.durableLog;
    if (!log || this.state !== 'ready') return;
    if (log.hasPending) await log.waitDurable(log.lastCommitted);
    const { writer } = this.ready();
    const [result] = writer.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number; log: number; checkpointed: number }>;
    if (!result || result.busy !== 0 || result.log !== result.checkpointed) return;
    this.capture.reset();
    await writeLocalState(this.stateFile, {
      databaseId: this.options.meta.id,
      position: log.position.toString(),
      checksum: formatChecksum(log.checksum),
    });
  }

  /** Stop: finish pending segments, fold the WAL into the file, close the connections. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    await this.attached?.stop();
    await this.recovery?.catch(() => undefined);
    const release = await this.writeLock.acquire(this.options.settings.limits.waitTimeoutMs).catch(() => undefined);
    try {
      for (const id of [...this.transactions.keys()]) this.endTransaction(id, 'aborted by shutdown', 'ROLLBACK');
      if (this.state === 'ready')
        await this.checkpointLocked().catch((error) => this.logger.warn({ err: error }, 'checkpoint at close failed'));
    } finally {
      this.state = 'closed';
      this.sandbox.forget();
      this.closeConnections();
      this.capture.close();
      release?.();
    }
    // After the last segment: the append thread's spare temp file goes, so a drop can delete the folder.
    await this.durableLog?.release();
  }

  /** Close and delete the local copy (the database was dropped). */
  async destroy(): Promise<void> {
    await this.close();
    const { rm } = await import('node:fs/promises');
    await rm(this.options.local.databaseDir(this.name), { recursive: true, force: true });
  }
}
