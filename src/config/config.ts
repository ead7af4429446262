import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { CompactionSettings } from '../compactor/compactor.js';
import type { EngineSettings, LimitsSettings } from '../engine/settings.js';
import type { StatementStatsOptions } from '../engine/statement-stats.js';
import { LitebaseError } from '../errors.js';
import { DEFAULT_RANGE_BYTES } from '../format/checkpoint-manifest.js';

/**
 * The one configuration object of a node. It is loaded once at start (flags > environment >
 * config file > defaults) and passed down; no module reads process.env on its own.
 */
export interface LitebaseConfig extends EngineSettings {
  /** Root of the shared distributed file system: the log, cluster state, keys. */
  dataDir: string;
  /** Node-local page cache: one materialized SQLite file per database. Disposable. */
  localDir: string;
  /** `file:///path` or `s3://bucket/prefix`. */
  objectStore: string;
  host: string;
  port: number;
  nodeId: string;
  /** Address other nodes use to reach this one (private network). */
  advertiseAddress: string;
  /** Root access key. When absent one is generated on first start and saved in the data dir. */
  rootKey: string | undefined;
  /** Authentication off: for local development only, and only when asked for explicitly. */
  authDisabled: boolean;
  /** Group commit batches concurrent transactions into one segment. Off only for benchmarks. */
  groupCommit: boolean;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  limits: LimitsConfig;
  /** The local WAL is checkpointed into the local database file once it passes this size. */
  walCheckpointBytes: number;
  /** A group of commits larger than this in the WAL is written as a segment chunk by chunk. */
  streamSegmentBytes: number;
  /** How a Primary appends to the log: a file per segment, or records of a term log file (docs/FORMAT.md §1). */
  logFormat: 'segments' | 'terms';
  /** Format `terms`: a term log file is followed by a new one past this many segments (files are trimmed whole). */
  termLogRollSegments: number;
  /**
   * `litebase serve` turns on V8's --optimize-for-size: the heap is collected before it grows far
   * past what is live (large request bodies otherwise leave hundreds of MiB resident). Off by
   * default: small writes were about a quarter slower with it (bench/README.md, "memory").
   */
  optimizeForSize: boolean;
  /**
   * `litebase serve` fixes glibc's mmap threshold at this many bytes (what MALLOC_MMAP_THRESHOLD_
   * does at start-up; left alone when that variable is set): blocks this large go back to the
   * system when freed, instead of staying resident after large request bodies. 0: glibc's own
   * sliding threshold. Default 4 MiB (docs/ARCHITECTURE.md §2.6): above the ~1 MiB chunk buffers
   * that decoding a segment allocates and frees over and over, which a lower threshold maps and
   * unmaps each time (a 1 GiB checkpoint load took 26 s at 128 KiB, 8 s at 4 MiB).
   */
  mallocMmapThreshold: number;
  /** How often a replica polls the log folder (watching alone misses changes made over NFS). */
  replicaPollMs: number;
  /** Watch log folders with chokidar as well as polling. */
  replicaWatch: boolean;
  /** A Primary's nudges carry the new segments, so replicas need not read them from the log (default on). */
  nudgeSegments: boolean;
  /** The Primary's lease: renewed every third of it; others take over once it expired. */
  leaseTtlMs: number;
  /** How to reach an S3 object store (ignored for file://). */
  objectStoreOptions: ObjectStoreConnection;
  /** Checkpoints, archive and retention (src/compactor). */
  compaction: CompactionSettings;
  /** HTTPS for the API; undefined serves plain HTTP. */
  tls: TlsFiles | undefined;
  /** PEM file of the CA that signs other nodes' certificates; undefined trusts the system CAs. */
  tlsCaFile: string | undefined;
  /** Signed requests (docs/SECURITY.md): clock-skew window and replay cache. */
  signing: { maxSkewMs: number; replayCacheSize: number };
  /** Statement metrics (docs/API.md "Statement metrics"): statements tracked and labelled per database. */
  statementMetrics: StatementStatsOptions;
}

/** Certificate chain and private key, PEM files, read once at start. */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

/** S3 connection settings; absent credentials mean the AWS SDK's default chain. */
export interface ObjectStoreConnection {
  endpoint?: string;
  region?: string;
  forcePathStyle?: boolean;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
}

/** The limits, as the engine declares them. */
export type LimitsConfig = LimitsSettings;

/** Every option a user can set, as strings or typed values from flags, env or a file. */
export type ConfigInput = Partial<{
  dataDir: string;
  localDir: string;
  objectStore: string;
  host: string;
  port: number | string;
  nodeId: string;
  advertiseAddress: string;
  rootKey: string;
  authDisabled: boolean | string;
  groupCommit: boolean | string;
  logLevel: string;
  walCheckpointBytes: number | string;
  streamSegmentBytes: number | string;
  logFormat: string;
  termLogRollSegments: number | string;
  optimizeForSize: boolean | string;
  mallocMmapThreshold: number | string;
  replicaPollMs: number | string;
  replicaWatch: boolean | string;
  nudgeSegments: boolean | string;
  leaseTtlMs: number | string;
  bodyLimitBytes: number | string;
  bodyMemoryBytes: number | string;
  maxStatementsPerRequest: number | string;
  transactionTimeoutMs: number | string;
  maxTransactionTimeoutMs: number | string;
  waitTimeoutMs: number | string;
  maxResultRows: number | string;
  maxResultBytes: number | string;
  statementTimeoutMs: number | string;
  maxTransactionsPerDatabase: number | string;
  readProcesses: number | string;
  watchdogMs: number | string;
  s3Endpoint: string;
  s3Region: string;
  s3ForcePathStyle: boolean | string;
  s3AccessKeyId: string;
  s3SecretAccessKey: string;
  s3SessionToken: string;
  compactionLogBytes: number | string;
  compactionLogSegments: number | string;
  archiveIntervalMs: number | string;
  archiveBundleBytes: number | string;
  archiveCheckpointPercent: number | string;
  retentionMs: number | string;
  checkpointRangeBytes: number | string;
  checkpointGraceMs: number | string;
  tlsCert: string;
  tlsKey: string;
  tlsCa: string;
  signatureMaxSkewMs: number | string;
  signatureReplayCacheSize: number | string;
  statementMetricsMax: number | string;
  statementMetricsTop: number | string;
  config: string;
}>;

const ENV_NAMES: Record<keyof ConfigInput, string> = {
  dataDir: 'LITEBASE_DATA_DIR',
  localDir: 'LITEBASE_LOCAL_DIR',
  objectStore: 'LITEBASE_OBJECT_STORE',
  host: 'LITEBASE_HOST',
  port: 'LITEBASE_PORT',
  nodeId: 'LITEBASE_NODE_ID',
  advertiseAddress: 'LITEBASE_ADVERTISE_ADDRESS',
  rootKey: 'LITEBASE_ROOT_KEY',
  authDisabled: 'LITEBASE_AUTH_DISABLED',
  groupCommit: 'LITEBASE_GROUP_COMMIT',
  logLevel: 'LITEBASE_LOG_LEVEL',
  walCheckpointBytes: 'LITEBASE_WAL_CHECKPOINT_BYTES',
  streamSegmentBytes: 'LITEBASE_STREAM_SEGMENT_BYTES',
  logFormat: 'LITEBASE_LOG_FORMAT',
  termLogRollSegments: 'LITEBASE_TERM_LOG_ROLL_SEGMENTS',
  optimizeForSize: 'LITEBASE_OPTIMIZE_FOR_SIZE',
  mallocMmapThreshold: 'LITEBASE_MALLOC_MMAP_THRESHOLD',
  replicaPollMs: 'LITEBASE_REPLICA_POLL_MS',
  replicaWatch: 'LITEBASE_REPLICA_WATCH',
  nudgeSegments: 'LITEBASE_NUDGE_SEGMENTS',
  leaseTtlMs: 'LITEBASE_LEASE_TTL_MS',
  bodyLimitBytes: 'LITEBASE_BODY_LIMIT_BYTES',
  bodyMemoryBytes: 'LITEBASE_BODY_MEMORY_BYTES',
  maxStatementsPerRequest: 'LITEBASE_MAX_STATEMENTS_PER_REQUEST',
  transactionTimeoutMs: 'LITEBASE_TRANSACTION_TIMEOUT_MS',
  maxTransactionTimeoutMs: 'LITEBASE_MAX_TRANSACTION_TIMEOUT_MS',
  waitTimeoutMs: 'LITEBASE_WAIT_TIMEOUT_MS',
  maxResultRows: 'LITEBASE_MAX_RESULT_ROWS',
  maxResultBytes: 'LITEBASE_MAX_RESULT_BYTES',
  statementTimeoutMs: 'LITEBASE_STATEMENT_TIMEOUT_MS',
  maxTransactionsPerDatabase: 'LITEBASE_MAX_TRANSACTIONS_PER_DATABASE',
  readProcesses: 'LITEBASE_READ_PROCESSES',
  watchdogMs: 'LITEBASE_WATCHDOG_MS',
  s3Endpoint: 'LITEBASE_S3_ENDPOINT',
  s3Region: 'LITEBASE_S3_REGION',
  s3ForcePathStyle: 'LITEBASE_S3_FORCE_PATH_STYLE',
  s3AccessKeyId: 'LITEBASE_S3_ACCESS_KEY_ID',
  s3SecretAccessKey: 'LITEBASE_S3_SECRET_ACCESS_KEY',
  s3SessionToken: 'LITEBASE_S3_SESSION_TOKEN',
  compactionLogBytes: 'LITEBASE_COMPACTION_LOG_BYTES',
  compactionLogSegments: 'LITEBASE_COMPACTION_LOG_SEGMENTS',
  archiveIntervalMs: 'LITEBASE_ARCHIVE_INTERVAL_MS',
  archiveBundleBytes: 'LITEBASE_ARCHIVE_BUNDLE_BYTES',
  archiveCheckpointPercent: 'LITEBASE_ARCHIVE_CHECKPOINT_PERCENT',
  retentionMs: 'LITEBASE_RETENTION_MS',
  checkpointRangeBytes: 'LITEBASE_CHECKPOINT_RANGE_BYTES',
  checkpointGraceMs: 'LITEBASE_CHECKPOINT_GRACE_MS',
  tlsCert: 'LITEBASE_TLS_CERT',
  tlsKey: 'LITEBASE_TLS_KEY',
  tlsCa: 'LITEBASE_TLS_CA',
  signatureMaxSkewMs: 'LITEBASE_SIGNATURE_MAX_SKEW_MS',
  signatureReplayCacheSize: 'LITEBASE_SIGNATURE_REPLAY_CACHE_SIZE',
  statementMetricsMax: 'LITEBASE_STATEMENT_METRICS_MAX',
  statementMetricsTop: 'LITEBASE_STATEMENT_METRICS_TOP',
  config: 'LITEBASE_CONFIG',
};

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

function fromEnvironment(env: NodeJS.ProcessEnv): ConfigInput {
  const input: Record<string, string> = {};
  for (const [key, name] of Object.entries(ENV_NAMES)) {
    const value = env[name];
    if (value !== undefined && value !== '') input[key] = value;
  }
  return input as ConfigInput;
}

function fromFile(file: string): ConfigInput {
  try {
    const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new Error('the file must hold one JSON object');
    }
    return parsed as ConfigInput;
  } catch (error) {
    throw new LitebaseError('CONFIG_INVALID', `cannot read config file ${file}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

function toInteger(name: string, value: number | string | undefined, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  const parsed = typeof value === 'number' ? value : Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in ${min}..${max}`;
    throw new LitebaseError('CONFIG_INVALID', `${name} must be an integer ${range}, got ${String(value)}`);
  }
  return parsed;
}

function toBoolean(name: string, value: boolean | string | undefined, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value === 'boolean') return value;
  const normalized = value.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(normalized)) return true;
  if (['0', 'false', 'no', 'off'].includes(normalized)) return false;
  throw new LitebaseError('CONFIG_INVALID', `${name} must be true or false, got ${value}`);
}

/**
 * Merge flags > environment > config file > defaults into one validated object.
 * `flags` holds only what the user actually typed (undefined for the rest).
 */
export function loadConfig(flags: ConfigInput = {}, env: NodeJS.ProcessEnv = process.env): LitebaseConfig {
  const fromEnv = fromEnvironment(env);
  const configFile = flags.config ?? fromEnv.config;
  const fileInput = configFile ? fromFile(configFile) : {};
  const defined = (input: ConfigInput): ConfigInput =>
    Object.fromEntries(Object.entries(input).filter(([, value]) => value !== undefined)) as ConfigInput;
  const input: ConfigInput = { ...defined(fileInput), ...defined(fromEnv), ...defined(flags) };

  const dataDir = path.resolve(input.dataDir ?? 'litebase-data');
  const nodeId = input.nodeId ?? `node-${hostname()}`.toLowerCase().replace(/[^a-z0-9_-]/g, '-');
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/.test(nodeId)) {
    throw new LitebaseError('CONFIG_INVALID', `node id ${nodeId} must match [a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}`);
  }
  const port = toInteger('port', input.port, 8080, 0);
  if (port > 65535) throw new LitebaseError('CONFIG_INVALID', `port must be <= 65535, got ${port}`);
  const host = input.host ?? '127.0.0.1';
  const logLevel = (input.logLevel ?? 'info') as LitebaseConfig['logLevel'];
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new LitebaseError('CONFIG_INVALID', `log level must be one of ${LOG_LEVELS.join(', ')}`);
  }
  if ((input.tlsCert === undefined) !== (input.tlsKey === undefined)) {
    throw new LitebaseError('CONFIG_INVALID', 'TLS needs both a certificate (--tls-cert) and its private key (--tls-key)');
  }
  const tls =
    input.tlsCert !== undefined && input.tlsKey !== undefined
      ? { certFile: path.resolve(input.tlsCert), keyFile: path.resolve(input.tlsKey) }
      : undefined;
  const transactionTimeoutMs = toInteger('transactionTimeoutMs', input.transactionTimeoutMs, 5_000, 1);
  return {
    dataDir,
    localDir: path.resolve(input.localDir ?? path.join(dataDir, 'local', nodeId)),
    objectStore: input.objectStore ?? pathToFileURL(path.join(dataDir, 'object-store')).href,
    host,
    port,
    nodeId,
    advertiseAddress: input.advertiseAddress ?? `${tls ? 'https' : 'http'}://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`,
    rootKey: input.rootKey,
    authDisabled: toBoolean('authDisabled', input.authDisabled, false),
    groupCommit: toBoolean('groupCommit', input.groupCommit, true),
    logLevel,
    walCheckpointBytes: toInteger('walCheckpointBytes', input.walCheckpointBytes, 16 * 1024 * 1024, 0),
    streamSegmentBytes: toInteger('streamSegmentBytes', input.streamSegmentBytes, 4 * 1024 * 1024, 0),
    logFormat: toLogFormat(input.logFormat),
    termLogRollSegments: toInteger('termLogRollSegments', input.termLogRollSegments, 1024, 1),
    optimizeForSize: toBoolean('optimizeForSize', input.optimizeForSize, false),
    mallocMmapThreshold: toInteger('mallocMmapThreshold', input.mallocMmapThreshold, 4 * 1024 * 1024, 0, 32 * 1024 * 1024),
    replicaPollMs: toInteger('replicaPollMs', input.replicaPollMs, 1000, 10),
    replicaWatch: toBoolean('replicaWatch', input.replicaWatch, true),
    nudgeSegments: toBoolean('nudgeSegments', input.nudgeSegments, true),
    leaseTtlMs: toInteger('leaseTtlMs', input.leaseTtlMs, 5000, 100),
    objectStoreOptions: objectStoreConnection(input),
    compaction: {
      logBytes: toInteger('compactionLogBytes', input.compactionLogBytes, 64 * 1024 * 1024, 0),
      logSegments: toInteger('compactionLogSegments', input.compactionLogSegments, 10_000, 0),
      archiveIntervalMs: toInteger('archiveIntervalMs', input.archiveIntervalMs, 10 * 60 * 1000, 0),
      bundleBytes: toInteger('archiveBundleBytes', input.archiveBundleBytes, 32 * 1024 * 1024, 1),
      archiveCheckpointPercent: toInteger('archiveCheckpointPercent', input.archiveCheckpointPercent, 200, 0),
      retentionMs: toInteger('retentionMs', input.retentionMs, 7 * 24 * 60 * 60 * 1000, 1),
      rangeBytes: toInteger('checkpointRangeBytes', input.checkpointRangeBytes, DEFAULT_RANGE_BYTES, 512),
      graceMs: toInteger('checkpointGraceMs', input.checkpointGraceMs, 10 * 60 * 1000, 0),
    },
    tls,
    tlsCaFile: input.tlsCa === undefined ? undefined : path.resolve(input.tlsCa),
    signing: {
      maxSkewMs: toInteger('signatureMaxSkewMs', input.signatureMaxSkewMs, 5 * 60 * 1000, 1000),
      replayCacheSize: toInteger('signatureReplayCacheSize', input.signatureReplayCacheSize, 1_000_000, 1),
    },
    statementMetrics: {
      maxPerDatabase: toInteger('statementMetricsMax', input.statementMetricsMax, 1000, 0),
      prometheusTop: toInteger('statementMetricsTop', input.statementMetricsTop, 20, 0),
    },
    limits: {
      bodyLimitBytes: toInteger('bodyLimitBytes', input.bodyLimitBytes, 10 * 1024 * 1024, 1024),
      bodyMemoryBytes: toInteger('bodyMemoryBytes', input.bodyMemoryBytes, 16 * 1024 * 1024, 0),
      maxStatementsPerRequest: toInteger('maxStatementsPerRequest', input.maxStatementsPerRequest, 1000, 1),
      transactionTimeoutMs,
      maxTransactionTimeoutMs: toInteger('maxTransactionTimeoutMs', input.maxTransactionTimeoutMs, 60_000, 1),
      waitTimeoutMs: toInteger('waitTimeoutMs', input.waitTimeoutMs, 5_000, 1),
      maxResultRows: toInteger('maxResultRows', input.maxResultRows, 100_000, 1),
      maxResultBytes: toInteger('maxResultBytes', input.maxResultBytes, 32 * 1024 * 1024, 1024),
      statementTimeoutMs: toInteger('statementTimeoutMs', input.statementTimeoutMs, 10_000, 1),
      maxTransactionsPerDatabase: toInteger('maxTransactionsPerDatabase', input.maxTransactionsPerDatabase, 16, 1),
      readProcesses: toInteger('readProcesses', input.readProcesses, 2, 0),
      watchdogMs: toInteger('watchdogMs', input.watchdogMs, 30_000, 0),
    },
  };
}

/** The S3 settings the user gave; the rest is left to the SDK (region default, credential chain). */
export function objectStoreConnection(input: ConfigInput): ObjectStoreConnection {
  const connection: ObjectStoreConnection = {};
  if (input.s3Endpoint) connection.endpoint = input.s3Endpoint;
  if (input.s3Region) connection.region = input.s3Region;
  if (input.s3ForcePathStyle !== undefined) connection.forcePathStyle = toBoolean('s3ForcePathStyle', input.s3ForcePathStyle, false);
  if (input.s3AccessKeyId) connection.accessKeyId = input.s3AccessKeyId;
  if (input.s3SecretAccessKey) connection.secretAccessKey = input.s3SecretAccessKey;
  if (input.s3SessionToken) connection.sessionToken = input.s3SessionToken;
  return connection;
}

const LOG_FORMATS = ['segments', 'terms'] as const;

function toLogFormat(value: string | undefined): 'segments' | 'terms' {
  if (value === undefined) return 'terms';
  const format = LOG_FORMATS.find((candidate) => candidate === value);
  if (!format) throw new LitebaseError('CONFIG_INVALID', `log format must be one of ${LOG_FORMATS.join(', ')}, not "${value}"`);
  return format;
}
