import { Option, type Command } from 'commander';
import { loadConfig, type ConfigInput } from '../config/config.js';
import { LitebaseError, type ErrorCode, type SqliteErrorCode } from '../errors.js';
import type { RestoreProgress } from '../restore/executor.js';
import type { RestoreTarget } from '../restore/planner.js';
import { CliUsageError, connect, withConnectionOptions, type CliIo, type ConnectionOptions } from './common.js';

interface RestoreFlags extends ConnectionOptions {
  timestamp?: string;
  position?: string;
  to?: string;
  output?: string;
  objectStore?: string;
  dataDir?: string;
  s3Endpoint?: string;
  s3Region?: string;
  s3ForcePathStyle?: boolean;
  s3AccessKeyId?: string;
  s3SecretAccessKey?: string;
  databaseId?: string;
  force?: boolean;
  check?: boolean;
  json?: boolean;
}

const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;
const PROGRESS_EVERY_MS = 250;

export const RESTORE_HELP = `
Exactly one of --timestamp and --position, and exactly one of --to and --output.

  --to NEWNAME      restore through a server (--url, --key) into a new database, replicated on
                    every node. The source may be any database the server knows, or one only its
                    object store still has (dropped, or the shared file system lost); then NEWNAME
                    may be NAME itself, to bring a lost database back under its own name
  --output FILE     restore offline, straight from the object store, into a SQLite file (rollback
                    journal mode); no server needed. The store is --object-store (env
                    LITEBASE_OBJECT_STORE), else the default folder inside --data-dir (env
                    LITEBASE_DATA_DIR, default ./litebase-data). S3 settings: --s3-* flags or
                    LITEBASE_S3_* environment variables, else the AWS SDK's credential chain.

--database-id picks among databases of the same name dropped and created again (default: the
server's database of that name, else the newest archived), with --to as with --output.

A timestamp restores the database as the last write committed at or before it left it.
Progress (bytes, segments, percent) goes to stderr; the result to stdout (--json: one JSON line).`;

/** `litebase restore NAME (--timestamp ISO8601 | --position N) (--to NEWNAME | --output FILE)`. */
export function registerRestoreCommand(program: Command, io: CliIo): void {
  withConnectionOptions(
    program
      .command('restore')
      .description('restore a database to a point in time or a log position')
      .argument('<name>', 'database to restore')
      .option('--timestamp <iso8601>', 'the time to restore to, e.g. 2026-11-25T10:00:00.000Z')
      .option('--position <n>', 'the log position to restore to')
      .option('--to <newname>', 'restore into a new database through the server')
      .option('--output <file>', 'restore offline into a SQLite file')
      .addOption(new Option('--object-store <url>', 'object store URL, for --output').env('LITEBASE_OBJECT_STORE'))
      .addOption(new Option('--data-dir <dir>', 'data dir whose default object store to read, for --output').env('LITEBASE_DATA_DIR'))
      .addOption(new Option('--s3-endpoint <url>', 'S3 endpoint (MinIO, R2, Ceph)').env('LITEBASE_S3_ENDPOINT'))
      .addOption(new Option('--s3-region <region>', 'S3 region').env('LITEBASE_S3_REGION'))
      .addOption(new Option('--s3-force-path-style', 'path-style S3 URLs').env('LITEBASE_S3_FORCE_PATH_STYLE'))
      .addOption(new Option('--s3-access-key-id <id>', 'S3 access key id').env('LITEBASE_S3_ACCESS_KEY_ID'))
      .addOption(new Option('--s3-secret-access-key <secret>', 'S3 secret access key').env('LITEBASE_S3_SECRET_ACCESS_KEY'))
      .option('--database-id <uuid>', 'which archived database of that name (default: the existing one, else the newest archived)')
      .option('--force', 'replace an existing --output file')
      .option('--no-check', 'skip SQLite quick_check of the --output file')
      .option('--json', 'print the result as one JSON line')
      .addHelpText('after', RESTORE_HELP),
  ).action(async (name: string, flags: RestoreFlags) => {
    const target = parseTarget(flags);
    if ((flags.to === undefined) === (flags.output === undefined)) {
      throw new CliUsageError('INVALID_ARGUMENTS', 'give exactly one of --to NEWNAME and --output FILE');
    }
    if (flags.output !== undefined) await restoreOffline(name, target, flags.output, flags, io);
    else await restoreThroughServer(name, target, flags.to as string, flags, io);
  });
}

function parseTarget(flags: RestoreFlags): RestoreTarget {
  if ((flags.timestamp === undefined) === (flags.position === undefined)) {
    throw new CliUsageError('INVALID_ARGUMENTS', 'give exactly one of --timestamp ISO8601 and --position N');
  }
  if (flags.position !== undefined) {
    if (!/^\d{1,20}$/.test(flags.position) || BigInt(flags.position) < 1n) {
      throw new CliUsageError('INVALID_ARGUMENTS', `--position ${flags.position}: expected a positive decimal integer`);
    }
    return { position: BigInt(flags.position) };
  }
  const text = flags.timestamp as string;
  const timeMs = Date.parse(text);
  if (!ISO_8601.test(text) || !Number.isFinite(timeMs)) {
    throw new CliUsageError('INVALID_ARGUMENTS', `--timestamp ${text}: expected ISO 8601 with a time zone, e.g. 2026-11-25T10:00:00.000Z`);
  }
  return { timeMs };
}

async function restoreOffline(name: string, target: RestoreTarget, output: string, flags: RestoreFlags, io: CliIo): Promise<void> {
  const input: ConfigInput = {};
  if (flags.objectStore !== undefined) input.objectStore = flags.objectStore;
  if (flags.dataDir !== undefined) input.dataDir = flags.dataDir;
  if (flags.s3Endpoint !== undefined) input.s3Endpoint = flags.s3Endpoint;
  if (flags.s3Region !== undefined) input.s3Region = flags.s3Region;
  if (flags.s3ForcePathStyle !== undefined) input.s3ForcePathStyle = flags.s3ForcePathStyle;
  if (flags.s3AccessKeyId !== undefined) input.s3AccessKeyId = flags.s3AccessKeyId;
  if (flags.s3SecretAccessKey !== undefined) input.s3SecretAccessKey = flags.s3SecretAccessKey;
  // The same resolution as the server's: flags > environment > config file > defaults.
  const config = loadConfig(input, process.env);
  // Loaded here: the S3 SDK and SQLite are not for the client commands to pay for at start.
  const { openObjectStore } = await import('../storage/open-object-store.js');
  const { restoreToFile } = await import('../restore/offline.js');
  const store = openObjectStore(config.objectStore, config.objectStoreOptions);
  const progress = progressPrinter(io, name);
  try {
    await store.verify();
    const result = await restoreToFile({
      store,
      database: name,
      ...(flags.databaseId !== undefined ? { databaseId: flags.databaseId } : {}),
      target,
      output,
      force: flags.force === true,
      check: flags.check !== false,
      onProgress: progress,
    });
    const { outcome, plan } = result;
    if (result.otherIds.length > 0 && flags.databaseId === undefined) {
      io.err(
        `note: ${store.url} also holds older databases named ${name} (ids ${result.otherIds.join(', ')}); restored the newest, ${result.databaseId}; choose with --database-id`,
      );
    }
    if (plan.clampedToLatest) {
      io.err(
        `note: the archive ends at position ${outcome.position}; writes after it (still on the shared file system, or lost with it) are not in this restore`,
      );
    }
    const summary = {
      database: name,
      databaseId: result.databaseId,
      output: result.output,
      position: outcome.position.toString(),
      time: outcome.timeMs > 0 ? new Date(outcome.timeMs).toISOString() : null,
      checksum: outcome.checksum.toString(16).padStart(16, '0'),
      pages: outcome.databaseSizePages,
      pageSize: outcome.pageSize,
      bytes: outcome.bytes,
      segments: outcome.segments,
      durationMs: outcome.durationMs,
      clampedToLatest: plan.clampedToLatest,
    };
    if (flags.json) io.out(JSON.stringify(summary));
    else {
      io.out(
        `restored ${name} to position ${summary.position}${summary.time ? ` (${summary.time})` : ''} into ${summary.output}: ` +
          `${summary.pages} pages, checksum ${summary.checksum}, ${formatBytes(summary.bytes)} read, ${summary.segments} segments applied in ${(summary.durationMs / 1000).toFixed(1)} s`,
      );
    }
  } finally {
    await store.close();
  }
}

interface RestoreJob {
  id: string;
  databaseId?: string;
  source?: 'catalog' | 'archive';
  otherDatabaseIds?: string[];
  plan?: { clampedToLatest: boolean; lastPosition: string };
  target: string;
  status: 'running' | 'succeeded' | 'failed';
  progress: RestoreProgress;
  result?: { position: string; time: string | null; checksum: string; pages: number; bytes: number; segments: number; durationMs: number };
  error?: { code: ErrorCode | SqliteErrorCode; message: string };
}

async function restoreThroughServer(name: string, target: RestoreTarget, newName: string, flags: RestoreFlags, io: CliIo): Promise<void> {
  const client = connect(flags, { timeoutMs: 60_000 });
  const body = {
    ...('position' in target ? { position: target.position.toString() } : { timestamp: flags.timestamp }),
    target: newName,
    ...(flags.databaseId !== undefined ? { databaseId: flags.databaseId } : {}),
  };
  const path = `/v1/databases/${encodeURIComponent(name)}`;
  let job = (await client.json<{ restore: RestoreJob }>('POST', `${path}/restore`, { body })).restore;
  if (job.source === 'archive') {
    io.err(
      `note: the server has no database ${name}${flags.databaseId === undefined ? '' : ` with id ${flags.databaseId}`}; restoring from its object store alone (database id ${job.databaseId})`,
    );
    if (job.otherDatabaseIds && job.otherDatabaseIds.length > 0 && flags.databaseId === undefined) {
      io.err(
        `note: the object store also holds older databases named ${name} (ids ${job.otherDatabaseIds.join(', ')}); choose with --database-id`,
      );
    }
  }
  const progress = progressPrinter(io, name);
  while (job.status === 'running') {
    progress(job.progress);
    await new Promise((resolve) => setTimeout(resolve, PROGRESS_EVERY_MS));
    job = (await client.json<{ restore: RestoreJob }>('GET', `${path}/restores/${job.id}`)).restore;
  }
  if (job.status === 'failed' || !job.result) {
    throw new LitebaseError(job.error?.code ?? 'RESTORE_FAILED', job.error?.message ?? 'the restore failed');
  }
  progress({ ...job.progress, phase: 'done', percent: 100 });
  if (job.plan?.clampedToLatest) {
    io.err(`note: the history ends at position ${job.result.position}; the newest state is what was restored`);
  }
  if (flags.json) return io.out(JSON.stringify(job));
  const { result } = job;
  io.out(
    `restored ${name} to position ${result.position}${result.time ? ` (${result.time})` : ''} into database ${job.target}: ` +
      `${result.pages} pages, checksum ${result.checksum}, ${formatBytes(result.bytes)} read, ${result.segments} segments applied in ${(result.durationMs / 1000).toFixed(1)} s`,
  );
}

/** Progress lines on stderr, at most every 250 ms, and always the last one. */
function progressPrinter(io: CliIo, name: string): (progress: RestoreProgress) => void {
  let last = 0;
  return (progress) => {
    const now = Date.now();
    if (progress.phase !== 'done' && now - last < PROGRESS_EVERY_MS) return;
    last = now;
    io.err(
      `restore ${name}: ${progress.percent.toFixed(1)}% ${progress.phase}, ${formatBytes(progress.bytes)} of ${formatBytes(progress.totalBytes)}, ` +
        `${progress.segments} of ${progress.totalSegments} segments, position ${progress.position}`,
    );
  };
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 * 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  return `${(bytes / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}
