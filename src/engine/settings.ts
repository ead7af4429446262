import type { LogFormat } from '../log/log-directory.js';
/**
 * What the engine needs to know of the node's configuration, declared here so that the engine
 * depends on no configuration loader: src/config/config.ts builds a LitebaseConfig, which is a
 * superset of these, from flags, environment and file.
 */

/** Limits on requests, results and waits (docs/SECURITY.md, "Limits"). */
export interface LimitsSettings {
  bodyLimitBytes: number;
  /**
   * Request bodies of 64 KiB or more held at once (src/server/body-budget.ts): a request whose
   * body does not fit beside those being handled waits before it is read; 0: no bound.
   */
  bodyMemoryBytes: number;
  maxStatementsPerRequest: number;
  /** Default and ceiling for interactive transaction timeouts. */
  transactionTimeoutMs: number;
  maxTransactionTimeoutMs: number;
  /** How long a read with minPosition (or a write waiting for the write lock) may wait. */
  waitTimeoutMs: number;
  /** Rows in one response, over all its statements (TOO_MANY_ROWS past it). */
  maxResultRows: number;
  /** Estimated JSON bytes of the rows in one response (RESULT_TOO_LARGE past it). */
  maxResultBytes: number;
  /** Run time of one statement, checked between the rows it returns (STATEMENT_TIMEOUT). */
  statementTimeoutMs: number;
  /** Interactive transactions open or waiting to begin, per database (TOO_MANY_TRANSACTIONS). */
  maxTransactionsPerDatabase: number;
  /** Child processes that run looping reads, killed at the statement timeout; 0 runs them in-process. */
  readProcesses: number;
  /** `litebase serve` ends itself when its event loop is blocked this long; 0 turns the watchdog off. */
  watchdogMs: number;
}

/** The settings a Primary or Replica engine reads. */
export interface EngineSettings {
  limits: LimitsSettings;
  /** Group commit batches concurrent transactions into one segment. Off only for benchmarks. */
  groupCommit: boolean;
  /** The local WAL is checkpointed into the local database file once it passes this size. */
  walCheckpointBytes: number;
  /**
   * A group of commits larger than this in the WAL is written as a segment chunk by chunk, never
   * whole in memory (default 4 MiB; 0 streams every segment).
   */
  streamSegmentBytes?: number;
  /** How the Primary appends to the log (docs/FORMAT.md §1); `terms` when absent. */
  logFormat?: LogFormat;
  /** Format `terms`: a term log file is followed by a new one past this many segments (default 1024). */
  termLogRollSegments?: number;
  /** How often a replica polls the log folder (watching alone misses changes made over NFS). */
  replicaPollMs: number;
  /** Watch the log's head file with chokidar as well as polling. */
  replicaWatch: boolean;
}

/**
 * Work that follows a Primary's durable log, attached by the node's wiring (src/node): the
 * compactor. The engine only tells it where the log stands; it knows nothing else of it.
 */
export interface LogFollower {
  /** The Primary opened at `position` (after recovering its local copy). */
  start(position: bigint): void;
  /** New commits are durable up to `position`. */
  notify(position: bigint): void;
  /** The Primary closes: finish or abandon the work in hand. */
  stop(): Promise<void>;
}

/** Builds a Primary's follower once it is open; `canWrite` is false once it may no longer write the log. */
export type AttachFollower<Follower extends LogFollower> = (context: {
  canWrite: () => boolean;
  /**
   * Start a new term log file at the next position (docs/FORMAT.md §1.2), so that files holding
   * only checkpointed positions can be trimmed now; resolves false when it could not (a large
   * segment is being written, or the log is not in term log files).
   */
  rollLog: () => Promise<boolean>;
}) => Follower;
