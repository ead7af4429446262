/**
 * Restore benchmark (`npm run bench -- restore`): point-in-time restore of Litebase against
 * Litestream 0.3.13, on the same deterministic workload (bench/support/restore-workload.ts).
 *
 * 1. Litebase: one `litebase serve` (object store: a file:// folder of its own, compaction
 *    thresholds lowered through the environment so it checkpoints and archives several times),
 *    N write transactions over HTTP, one transaction per request, from C concurrent clients. After
 *    transaction k (near the end) every client waits until 1..k are acknowledged, the run pauses,
 *    the restore time T is taken in the middle of the pause, then k+1..N follow. A forced compaction
 *    (POST /v1/databases/:db/compact) archives everything; the server stops; the OFFLINE restore
 *    `litebase restore bench --timestamp T --output FILE --object-store file://...` is timed, from
 *    spawn to exit.
 * 2. Litestream: the same N transactions applied with better-sqlite3 to a local WAL database, paced
 *    on the Litebase run's acknowledgement times (same rate, same pause after k), while
 *    `litestream replicate` copies it to a file replica (sync-interval 1 s); SIGTERM; then
 *    `litestream restore -timestamp T'` (T' taken the same way) is timed, from spawn to exit.
 *
 * Both restored files must hold exactly transactions 1..k: row count and SHA-256 of (id, k,
 * payload) in id order equal to the reference computed here from the workload, and quick_check ok.
 * A wrong restore fails the benchmark (exit 1) whatever its speed. Footprints: every byte under the
 * Litebase object store folder (bundles, checkpoints: manifests and range files, index) and under
 * Litestream's replica folder, each divided by N.
 *
 * --shared-dir DIR puts the server's data dir (its log) in a new folder under DIR, e.g. a CephFS
 * mount, its local dir staying on the temp root. --object-store URL archives to a fresh prefix
 * under URL (s3://bucket/prefix, with the LITEBASE_S3_* variables of this environment, or
 * file:///folder) instead of a folder under the temp root; the restore from it is the headline
 * figure, and the same archive, copied into a local folder, is restored from there too and timed
 * beside it. The prefix is deleted at the end (kept with --keep).
 *
 * stdout: tables, then ONE JSON line, last. Progress on stderr. Exit 0 when valid, 1 when a
 * restore is wrong or a step failed, 2 for a usage error or, with --strict, a missed goal.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { objectStoreConnection } from '../src/config/config.js';
import { openObjectStore } from '../src/storage/open-object-store.js';
import { releaseAll, track } from './support/cleanup.js';
import { JsonClient } from './support/http-client.js';
import { machineInfo, mountTypeOf, type MachineInfo } from './support/machine.js';
import { progress, round, since } from './support/report.js';
import {
  ChildRun,
  cleanEnv,
  folderBytes,
  litestreamBinary,
  settleDisk,
  sleep,
  timedRun,
  type OutputLine,
} from './support/restore-procs.js';
import { CREATE_TABLE_SQL, digestSqliteFile, MAX_IN_FLIGHT_SPAN, Workload, type TableDigest } from './support/restore-workload.js';
import { benchTmpRoot, freePort, makeTempDir, parseSharedDirs, repoRoot } from './support/server.js';
import { formatNumber, renderTable } from './support/table.js';
import { readOptions } from './support/options.js';

export const RESTORE_GOALS = { maxRestoreTimeRatio: 0.5, maxArchiveBytesRatio: 1 } as const;

interface RestoreOptions {
  transactions: number;
  mb: number;
  connections: number;
  seed: number;
  /** k = transactions - tail: the restore target. */
  tail: number;
  pauseMs: number;
  strict: boolean;
  /** Keep the temporary folder (archive, replica, restored files) and print where it is. */
  keep: boolean;
  /** --shared-dir: the server's data dir goes in a new folder under this one (its local dir stays on the temp root). */
  sharedDir?: string;
  /** --object-store: archive under a fresh prefix of this store instead of a folder under the temp root. */
  objectStore?: string;
}

/** The S3 settings of this environment, passed to the server and the restores with --object-store s3://... (the only LITEBASE_ variables passed on). */
const S3_ENV_NAMES = [
  'LITEBASE_S3_ENDPOINT',
  'LITEBASE_S3_REGION',
  'LITEBASE_S3_FORCE_PATH_STYLE',
  'LITEBASE_S3_ACCESS_KEY_ID',
  'LITEBASE_S3_SECRET_ACCESS_KEY',
  'LITEBASE_S3_SESSION_TOKEN',
] as const;

function s3Environment(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of S3_ENV_NAMES) {
    const value = process.env[name];
    if (value !== undefined && value !== '') env[name] = value;
  }
  return env;
}

const DEFAULTS: RestoreOptions = {
  transactions: 50_000,
  mb: 200,
  connections: 16,
  seed: 20261125,
  tail: 0,
  pauseMs: 6_000,
  strict: false,
  keep: false,
};

const USAGE = `usage: npm run bench -- restore [options]

  Builds the same history in Litebase (over HTTP) and in a SQLite file replicated by Litestream
  0.3.13 to a file replica, restores both to a time just after transaction k (near the end),
  verifies both restored files against the workload, and compares restore times and archive bytes.

options:
  --transactions N  write transactions (default ${DEFAULTS.transactions}, the issue's size)
  --mb M            approximate database size in MiB (default ${DEFAULTS.mb})
  --connections C   concurrent HTTP clients for Litebase (default ${DEFAULTS.connections})
  --tail T          restore to k = N - T (default: 2% of N, at least 1)
  --seed S          workload seed (default ${DEFAULTS.seed})
  --strict          exit 2 when a goal is missed
  --keep            keep the temporary folder (both archives, the restored files) and print its path
  --shared-dir DIR  put Litebase's data dir (the log) in a new folder under DIR, e.g. a CephFS
                    mount; its local dir stays under the temp root (a comma-separated list is
                    accepted, the first DIR is used)
  --object-store URL
                    archive to a fresh prefix under URL instead of a folder under the temp root:
                    s3://bucket/prefix (endpoint and keys from LITEBASE_S3_ENDPOINT,
                    LITEBASE_S3_FORCE_PATH_STYLE, LITEBASE_S3_ACCESS_KEY_ID, ... in this
                    environment) or file:///folder; the restore from it is timed beside a restore
                    of the same archive copied into a local folder`;

function parseArgs(argv: string[]): RestoreOptions | string {
  const options: RestoreOptions = { ...DEFAULTS };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--strict') {
      options.strict = true;
      continue;
    }
    if (flag === '--keep') {
      options.keep = true;
      continue;
    }
    if (flag === '--shared-dir') {
      const dirs = parseSharedDirs(argv[i + 1]);
      if (typeof dirs === 'string') return dirs;
      options.sharedDir = dirs[0];
      i++;
      continue;
    }
    if (flag === '--object-store') {
      const url = argv[i + 1];
      if (url === undefined || !/^(s3:\/\/[^/]+|file:\/\/\/.+)/.test(url))
        return `--object-store needs s3://bucket[/prefix] or file:///folder`;
      options.objectStore = url.replace(/\/+$/, '');
      i++;
      continue;
    }
    const raw = argv[i + 1];
    const value = Number(raw);
    const positiveInt = raw !== undefined && Number.isInteger(value) && value > 0;
    if (flag === '--transactions' && positiveInt && value >= 10) options.transactions = value;
    else if (flag === '--mb' && raw !== undefined && value > 0) options.mb = value;
    else if (flag === '--connections' && positiveInt) options.connections = value;
    else if (flag === '--tail' && positiveInt) options.tail = value;
    else if (flag === '--seed' && raw !== undefined && Number.isInteger(value)) options.seed = value;
    else return `bad option "${flag ?? ''}"${raw === undefined ? '' : ` ${raw}`}`;
    i++;
  }
  if (options.tail === 0) options.tail = Math.max(1, Math.floor(options.transactions * 0.02));
  if (options.tail >= options.transactions) return `--tail must be below --transactions`;
  return options;
}

/** Page overhead: a row of P bytes takes about P + 20 bytes of a 4 KiB page; aim the payload at --mb. */
function payloadBytesFor(options: RestoreOptions): number {
  return Math.max(16, Math.min(200_000, Math.floor((options.mb * 1024 * 1024) / options.transactions / 1.05) - 24));
}

interface RestoreResult {
  seconds: number;
  target_time: string;
  output_bytes: number;
  digest: TableDigest & { integrity: string; page_count: number; page_size: number };
  ok: boolean;
  problem: string | null;
}

export interface RestoreReport {
  benchmark: 'restore';
  ok: boolean;
  litebase_restore_s: number;
  litestream_restore_s: number;
  restore_time_ratio: number | null;
  litebase_archive_bytes: number;
  litestream_archive_bytes: number;
  litebase_bytes_per_tx: number;
  litestream_bytes_per_tx: number;
  archive_bytes_ratio: number | null;
  transactions: number;
  restore_to_transaction: number;
  database_mb: number;
  restored_ok: { litebase: boolean; litestream: boolean };
  /** With --shared-dir: where Litebase's data dir (the log) was; its local dir was under the temp root. */
  shared_dir?: { dir: string; filesystem: string };
  /**
   * With --object-store: litebase_restore_s is the restore from that store; folder_restore_s the
   * same restore from the same archive copied into a local folder (copy_s: the copy).
   */
  object_store?: {
    url: string;
    restore_s: number;
    folder_restore_s: number;
    ratio_to_folder: number | null;
    copy_s: number;
    folder_restore_ok: boolean;
  };
  goals: { restore_le_half_litestream: boolean; archive_le_litestream: boolean };
  all_goals_pass: boolean;
  details: Record<string, unknown>;
  config: Record<string, unknown>;
  machine: MachineInfo;
  durations_s: Record<string, number>;
  warnings: string[];
  failures: string[];
}

/** Acknowledgement times of a write run, in ms after its start, indexed by transaction (1-based). */
interface WriteRun {
  ackMs: Float64Array;
  /** Wall clock (epoch ms) of the restore target: mid-pause after transaction k. */
  targetEpochMs: number;
  seconds: number;
}

/**
 * Litebase: transactions `from..to` over HTTP from `connections` clients, one transaction per
 * request, no transaction sent before every one MAX_IN_FLIGHT_SPAN older was acknowledged.
 */
async function driveRange(
  client: JsonClient,
  workload: Workload,
  from: number,
  to: number,
  connections: number,
  acked: Uint8Array,
  ackMs: Float64Array,
  startedAt: number,
): Promise<void> {
  let next = from;
  let watermark = from; // lowest transaction of the range not acknowledged yet
  let lastReport = performance.now();
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i > to) return;
      while (watermark <= i - MAX_IN_FLIGHT_SPAN) await sleep(1);
      const answer = await client.request('POST', '/v1/databases/bench/query', { statements: workload.statements(i) }, 60_000);
      if (answer.status !== 200)
        throw new Error(`transaction ${i}: POST /v1/databases/bench/query answered ${answer.status}: ${answer.text.slice(0, 300)}`);
      acked[i] = 1;
      ackMs[i] = performance.now() - startedAt;
      while (watermark <= to && acked[watermark] === 1) watermark++;
      if (performance.now() - lastReport > 5_000) {
        lastReport = performance.now();
        progress(`  litebase: ${watermark - 1} of ${workload.transactions} transactions acknowledged`);
      }
    }
  };
  await Promise.all(Array.from({ length: connections }, () => worker()));
}

async function waitReady(url: string, key: string, server: ChildRun, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    server.assertRunning();
    try {
      const response = await fetch(`${url}/readyz`, { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(2_000) });
      await response.arrayBuffer();
      if (response.status === 200) return;
      last = `GET /readyz answered ${response.status}`;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    await sleep(100);
  }
  throw new Error(`litebase not ready after ${timeoutMs} ms (${last}):\n${server.tail(30).join('\n')}`);
}

function verify(label: string, file: string, reference: TableDigest, seconds: number, targetTime: string): RestoreResult {
  const digest = digestSqliteFile(file);
  const problems: string[] = [];
  if (digest.integrity !== 'ok') problems.push(`quick_check: ${digest.integrity}`);
  if (digest.rows !== reference.rows) problems.push(`${digest.rows} rows, expected ${reference.rows}`);
  if (digest.sha256 !== reference.sha256)
    problems.push(`content sha256 ${digest.sha256.slice(0, 16)}..., expected ${reference.sha256.slice(0, 16)}...`);
  const problem = problems.length === 0 ? null : `${label} restore is wrong: ${problems.join('; ')}`;
  return { seconds: round(seconds, 3), target_time: targetTime, output_bytes: statSync(file).size, digest, ok: problem === null, problem };
}

function fieldOf(value: unknown, name: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[name] : undefined;
}

export async function runRestoreCommand(argv: string[]): Promise<number> {
  const read = readOptions(argv, USAGE, parseArgs);
  if ('exitCode' in read) return read.exitCode;
  const parsed = read.options;
  const options = parsed;
  // Past the expected time (about 25 ms per transaction on 2 cores, plus fixed costs), give up cleanly.
  const limitSeconds = Math.round(300 + options.transactions * 0.03 + options.mb * 2);
  const watchdog = setTimeout(() => {
    const message = `benchmark did not finish within ${limitSeconds} s`;
    console.error(`\n${message}; stopping processes`);
    void releaseAll().finally(() => {
      console.log(JSON.stringify({ benchmark: 'restore', ok: false, error: message }));
      process.exit(1);
    });
  }, limitSeconds * 1000);
  watchdog.unref();
  try {
    const { report, table } = await runRestoreBenchmark(options);
    await releaseAll();
    console.log(table);
    console.log(JSON.stringify(report));
    if (!report.ok) return 1;
    return options.strict && !report.all_goals_pass ? 2 : 0;
  } catch (error) {
    await releaseAll();
    const message = error instanceof Error ? error.message : String(error);
    console.error(`\nbenchmark failed: ${message}`);
    console.log(JSON.stringify({ benchmark: 'restore', ok: false, error: message }));
    return 1;
  }
}

async function runRestoreBenchmark(options: RestoreOptions): Promise<{ report: RestoreReport; table: string }> {
  const started = performance.now();
  const durations: Record<string, number> = {};
  const warnings: string[] = [];
  const failures: string[] = [];
  const machine = machineInfo(benchTmpRoot());
  const n = options.transactions;
  const k = n - options.tail;
  const workload = new Workload(options.seed, n, payloadBytesFor(options));

  const root = makeTempDir('litebase-bench-restore-');
  const removeRoot = (): void => {
    if (options.keep) progress(`kept ${root}`);
    else rmSync(root, { recursive: true, force: true });
  };
  const untrackRoot = track({ release: async () => removeRoot(), releaseNow: removeRoot });
  const outDir = path.join(root, 'restored');
  mkdirSync(outDir);

  let phase = performance.now();
  progress(`reference state after transaction ${k} of ${n} (payload ${workload.payloadBytes} bytes)`);
  const reference = workload.reference(k);
  durations.reference = since(phase);

  // ---- 1. Litebase -------------------------------------------------------------------------
  // The data dir under the temp root, or (--shared-dir) in a folder of its own on the shared file
  // system with the local dir on the temp root.
  const sharedData = options.sharedDir === undefined ? undefined : mkdtempSync(path.join(options.sharedDir, 'litebase-bench-restore-'));
  const dataDir = sharedData ?? path.join(root, 'litebase-data');
  const localDir = sharedData === undefined ? path.join(dataDir, 'local') : path.join(root, 'litebase-local');
  const removeSharedData = (): void => {
    if (sharedData !== undefined) rmSync(sharedData, { recursive: true, force: true });
  };
  const untrackSharedData = track({ release: async () => removeSharedData(), releaseNow: removeSharedData });
  const archiveDir = path.join(root, 'litebase-archive');
  mkdirSync(archiveDir);
  // The archive: a folder under the temp root, or (--object-store) a fresh prefix of that store.
  const storeEnv = options.objectStore?.startsWith('s3://') ? s3Environment() : {};
  const storeOptions = objectStoreConnection({
    s3Endpoint: storeEnv.LITEBASE_S3_ENDPOINT,
    s3Region: storeEnv.LITEBASE_S3_REGION,
    s3ForcePathStyle: storeEnv.LITEBASE_S3_FORCE_PATH_STYLE,
    s3AccessKeyId: storeEnv.LITEBASE_S3_ACCESS_KEY_ID,
    s3SecretAccessKey: storeEnv.LITEBASE_S3_SECRET_ACCESS_KEY,
    s3SessionToken: storeEnv.LITEBASE_S3_SESSION_TOKEN,
  });
  const archiveUrl =
    options.objectStore === undefined
      ? pathToFileURL(archiveDir).href
      : `${options.objectStore}/litebase-bench-restore-${randomBytes(4).toString('hex')}`;
  const removeStorePrefix = async (): Promise<void> => {
    if (options.objectStore === undefined) return;
    if (options.keep) {
      progress(`kept ${archiveUrl}`);
      return;
    }
    const store = openObjectStore(archiveUrl, storeOptions);
    try {
      const keys: string[] = [];
      for await (const info of store.list('')) keys.push(info.key);
      for (let at = 0; at < keys.length; at += 1000) await store.delete(keys.slice(at, at + 1000));
    } finally {
      await store.close();
    }
  };
  const untrackStore = track({ release: removeStorePrefix, releaseNow: () => undefined });
  const key = randomBytes(24).toString('hex');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // A checkpoint whenever the log since the last one passes a third of the database's size, and
  // segments archived every 15 s: several checkpoints and bundles over the run.
  const compactionLogBytes = Math.max(4 * 1024 * 1024, Math.floor((options.mb * 1024 * 1024) / 3));
  const serverEnv: Record<string, string> = {
    LITEBASE_COMPACTION_LOG_BYTES: String(compactionLogBytes),
    LITEBASE_ARCHIVE_INTERVAL_MS: '15000',
    LITEBASE_LOG_LEVEL: 'warn',
  };
  // Passed on beside serverEnv, never reported (they hold the keys).
  const serverSecrets = storeEnv;
  phase = performance.now();
  progress('starting litebase serve');
  const server = ChildRun.start(
    'litebase serve',
    process.execPath,
    [
      path.join(repoRoot(), 'bin', 'litebase.js'),
      'serve',
      '--data-dir',
      dataDir,
      '--local-dir',
      localDir,
      '--object-store',
      archiveUrl,
      '--port',
      String(port),
      '--host',
      '127.0.0.1',
      '--node-id',
      'bench',
      '--root-key',
      key,
      '--log-level',
      'warn',
    ],
    cleanEnv({ ...serverEnv, ...serverSecrets }),
  );
  await waitReady(url, key, server);
  const linesAtReady = server.lines.length;
  const client = new JsonClient(url, key, options.connections);
  let litebaseWrite: WriteRun;
  let compactAnswer: unknown;
  let compactSeconds: number;
  try {
    const create = await client.request('POST', '/v1/databases', { name: 'bench' });
    if (create.status !== 201) throw new Error(`create database answered ${create.status}: ${create.text.slice(0, 300)}`);
    const table = await client.request('POST', '/v1/databases/bench/query', { statements: [{ sql: CREATE_TABLE_SQL }] });
    if (table.status !== 200) throw new Error(`create table answered ${table.status}: ${table.text.slice(0, 300)}`);
    durations.litebase_start = since(phase);

    phase = performance.now();
    progress(`litebase: ${n} transactions over HTTP, ${options.connections} clients, one transaction per request`);
    const acked = new Uint8Array(n + 2);
    const ackMs = new Float64Array(n + 1);
    const startedAt = performance.now();
    await driveRange(client, workload, 1, k, options.connections, acked, ackMs, startedAt);
    server.assertRunning();
    progress(`  litebase: transactions 1..${k} acknowledged; pausing ${options.pauseMs / 1000} s (restore target in the middle)`);
    await sleep(options.pauseMs / 2);
    const targetEpochMs = Date.now();
    await sleep(options.pauseMs / 2);
    await driveRange(client, workload, k + 1, n, options.connections, acked, ackMs, startedAt);
    litebaseWrite = { ackMs, targetEpochMs, seconds: (performance.now() - startedAt) / 1000 };
    durations.litebase_writes = since(phase);
    server.assertRunning();

    phase = performance.now();
    progress('litebase: forced compaction (POST /v1/databases/bench/compact)');
    const compact = await client.request('POST', '/v1/databases/bench/compact', {}, 15 * 60_000);
    if (compact.status !== 200) throw new Error(`compact answered ${compact.status}: ${compact.text.slice(0, 500)}`);
    compactAnswer = compact.body;
    compactSeconds = since(phase);
    durations.litebase_final_compaction = compactSeconds;
  } finally {
    client.close();
  }
  const serverLines = server.lines.slice(linesAtReady).map((line) => line.line.slice(0, 400));
  await server.stop();
  removeSharedData();
  untrackSharedData();
  const litebaseTps = n / litebaseWrite.seconds;

  // With --object-store: its objects are copied into archiveDir, for the restore from a folder beside it.
  let mirrorSeconds: number | undefined;
  if (options.objectStore !== undefined) {
    phase = performance.now();
    progress(`litebase: copying the archive in ${archiveUrl} into a local folder`);
    const store = openObjectStore(archiveUrl, storeOptions);
    try {
      for await (const info of store.list('')) {
        const file = path.join(archiveDir, ...info.key.split('/'));
        mkdirSync(path.dirname(file), { recursive: true });
        await store.getToFile(info.key, file);
      }
    } finally {
      await store.close();
    }
    mirrorSeconds = since(phase);
    durations.litebase_archive_copy = mirrorSeconds;
  }
  const archive = folderBytes(archiveDir);
  // Checkpoints of either kind: legacy files, or manifests and their range files (docs/FORMAT.md §11).
  const archiveCheckpoints = folderBytes(
    archiveDir,
    (file) => file.endsWith('.ckpt') || file.endsWith('.range') || /(^|\/)manifests\/\d{20}\.json$/.test(file),
  );
  const archiveBundles = folderBytes(archiveDir, (file) => file.endsWith('.seg'));
  const litebaseTarget = new Date(litebaseWrite.targetEpochMs).toISOString();

  await settleDisk();
  phase = performance.now();
  progress(`litebase: offline restore to ${litebaseTarget} (just after transaction ${k})`);
  const litebaseOut = path.join(outDir, 'litebase.sqlite');
  /** `litebase restore bench` to the benchmark's target time, as a user runs it, timed. */
  const runLitebaseRestore = (label: string, output: string, store: string, env: NodeJS.ProcessEnv, extra: string[] = []) =>
    timedRun(
      label,
      process.execPath,
      [
        path.join(repoRoot(), 'bin', 'litebase.js'),
        'restore',
        'bench',
        '--timestamp',
        litebaseTarget,
        '--output',
        output,
        '--object-store',
        store,
        '--json',
        ...extra,
      ],
      env,
    );
  const litebaseRun = await runLitebaseRestore('litebase restore', litebaseOut, archiveUrl, cleanEnv(storeEnv));
  durations.litebase_restore = since(phase);
  const litebaseResult = verify('Litebase', litebaseOut, reference, litebaseRun.seconds, litebaseTarget);
  if (litebaseResult.problem) failures.push(litebaseResult.problem);
  let litebaseSummary: unknown = undefined;
  try {
    litebaseSummary = JSON.parse(litebaseRun.stdout.trim().split('\n').pop() ?? '');
  } catch {
    warnings.push(`litebase restore --json printed no JSON: ${litebaseRun.stdout.slice(0, 200)}`);
  }
  // The same restore without the final quick_check, for the profile (not the headline figure).
  phase = performance.now();
  const noCheckOut = path.join(outDir, 'litebase-nocheck.sqlite');
  const litebaseNoCheck = await runLitebaseRestore('litebase restore --no-check', noCheckOut, archiveUrl, cleanEnv(storeEnv), [
    '--no-check',
  ]);
  rmSync(noCheckOut, { force: true });
  durations.litebase_restore_no_check = since(phase);
  // With --object-store: the same restore from the archive copied into a local folder, beside it.
  let folderRestore: RestoreResult | undefined;
  if (options.objectStore !== undefined) {
    await settleDisk();
    phase = performance.now();
    progress(`litebase: the same restore from the archive copied into a local folder`);
    const folderOut = path.join(outDir, 'litebase-from-folder.sqlite');
    const folderRun = await runLitebaseRestore('litebase restore (from a folder)', folderOut, pathToFileURL(archiveDir).href, cleanEnv({}));
    durations.litebase_restore_from_folder = since(phase);
    folderRestore = verify('Litebase (from a folder)', folderOut, reference, folderRun.seconds, litebaseTarget);
    if (folderRestore.problem) failures.push(folderRestore.problem);
  }
  await removeStorePrefix();
  untrackStore();
  // Node start-up and module loading, for the profile: the CLI's --version path.
  const nodeStart = await timedRun(
    'litebase --version',
    process.execPath,
    [path.join(repoRoot(), 'bin', 'litebase.js'), '--version'],
    cleanEnv({}),
  );

  // ---- 2. Litestream -----------------------------------------------------------------------
  const lsDir = path.join(root, 'litestream');
  const lsDb = path.join(lsDir, 'db.sqlite');
  const replicaDir = path.join(lsDir, 'replica');
  const configFile = path.join(lsDir, 'litestream.yml');
  mkdirSync(lsDir);
  writeFileSync(
    configFile,
    [
      'dbs:',
      `  - path: ${lsDb}`,
      '    replicas:',
      '      - type: file',
      `        path: ${replicaDir}`,
      '        sync-interval: 1s',
      '',
    ].join('\n'),
  );
  const db = new Database(lsDb);
  let closed = false;
  const closeDb = (): void => {
    if (!closed) db.close();
    closed = true;
  };
  const untrackDb = track({ release: async () => closeDb(), releaseNow: closeDb });
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  // Litestream manages checkpoints (its documented setup): the app does not checkpoint by itself.
  db.pragma('wal_autocheckpoint = 0');
  db.exec(CREATE_TABLE_SQL);

  phase = performance.now();
  const binary = litestreamBinary();
  const version = (await timedRun('litestream version', binary, ['version'], process.env)).stdout.trim();
  progress(`starting litestream replicate (${version}) to a file replica`);
  const litestream = ChildRun.start('litestream replicate', binary, ['replicate', '-config', configFile], process.env);
  // Wait for its first snapshot, so the workload starts on a replicated database.
  const snapshotDeadline = Date.now() + 60_000;
  while (folderBytes(replicaDir, (file) => file.includes('snapshots')).files === 0) {
    litestream.assertRunning();
    if (Date.now() > snapshotDeadline) throw new Error(`litestream made no snapshot within 60 s:\n${litestream.tail(20).join('\n')}`);
    await sleep(100);
  }
  durations.litestream_start = since(phase);

  phase = performance.now();
  progress(`litestream: the same ${n} transactions with better-sqlite3, paced on the Litebase run's acknowledgement times`);
  const statementsCache = new Map<string, Database.Statement>();
  const prepared = (sql: string): Database.Statement => {
    let statement = statementsCache.get(sql);
    if (!statement) {
      statement = db.prepare(sql);
      statementsCache.set(sql, statement);
    }
    return statement;
  };
  const apply = db.transaction((i: number) => {
    for (const statement of workload.statements(i)) prepared(statement.sql).run(...statement.params);
  });
  const lsStartedAt = performance.now();
  let shift = 0;
  let litestreamTargetEpochMs = 0;
  let lastReport = performance.now();
  for (let i = 1; i <= n; i++) {
    const due = lsStartedAt + (litebaseWrite.ackMs[i] ?? 0) + shift;
    const wait = due - performance.now();
    if (wait > 2) await sleep(wait);
    apply(i);
    if (i === k) {
      progress(`  litestream: transactions 1..${k} committed; pausing ${options.pauseMs / 1000} s (restore target in the middle)`);
      await sleep(options.pauseMs / 2);
      litestreamTargetEpochMs = Date.now();
      await sleep(options.pauseMs / 2);
      // Keep the Litebase run's pace after the pause, from now on.
      shift = Math.max(shift, performance.now() - (lsStartedAt + (litebaseWrite.ackMs[k + 1] ?? 0)));
    }
    if (performance.now() - lastReport > 5_000) {
      lastReport = performance.now();
      progress(`  litestream: ${i} of ${n} transactions committed`);
      litestream.assertRunning();
    }
  }
  const litestreamWriteSeconds = (performance.now() - lsStartedAt) / 1000;
  // Two sync intervals, then SIGTERM (Litestream syncs on shutdown).
  await sleep(2_500);
  litestream.assertRunning();
  await litestream.stop();
  const litestreamLines = litestream.lines.map((line) => line.line.slice(0, 400));
  closeDb();
  untrackDb();
  durations.litestream_writes = since(phase);
  const sourceBytes = statSync(lsDb).size;
  const replica = folderBytes(replicaDir);
  const replicaSnapshots = folderBytes(replicaDir, (file) => file.includes(`${path.sep}snapshots${path.sep}`));
  const replicaWal = folderBytes(replicaDir, (file) => file.includes(`${path.sep}wal${path.sep}`));
  const litestreamTarget = new Date(litestreamTargetEpochMs).toISOString();

  await settleDisk();
  phase = performance.now();
  progress(`litestream: restore to ${litestreamTarget} (just after transaction ${k})`);
  const litestreamOut = path.join(outDir, 'litestream.sqlite');
  const litestreamRun = await timedRun(
    'litestream restore',
    binary,
    ['restore', '-config', configFile, '-o', litestreamOut, '-timestamp', litestreamTarget, lsDb],
    process.env,
  );
  durations.litestream_restore = since(phase);
  const litestreamResult = verify('Litestream', litestreamOut, reference, litestreamRun.seconds, litestreamTarget);
  if (litestreamResult.problem) failures.push(litestreamResult.problem);

  // ---- Report ------------------------------------------------------------------------------
  const restoreRatio = litestreamResult.seconds > 0 ? round(litebaseResult.seconds / litestreamResult.seconds, 3) : null;
  const bytesRatio = replica.bytes > 0 ? round(archive.bytes / replica.bytes, 3) : null;
  const restoredOk = { litebase: litebaseResult.ok, litestream: litestreamResult.ok };
  const goals = {
    restore_le_half_litestream: litebaseResult.ok && restoreRatio !== null && restoreRatio <= RESTORE_GOALS.maxRestoreTimeRatio,
    archive_le_litestream: bytesRatio !== null && bytesRatio <= RESTORE_GOALS.maxArchiveBytesRatio,
  };
  if (serverLines.length > 0)
    warnings.push(`litebase serve printed ${serverLines.length} warning/error line(s) (details.litebase.server_log)`);
  if (machine.load_average_1m > 1) warnings.push(`load average ${machine.load_average_1m} at start: the machine was not idle`);
  if (litestreamWriteSeconds > litebaseWrite.seconds * 1.2) {
    warnings.push(
      `the Litestream run could not keep the Litebase run's pace (${round(litestreamWriteSeconds, 1)} s vs ${round(litebaseWrite.seconds, 1)} s)`,
    );
  }
  const databaseBytes = litebaseResult.digest.page_count * litebaseResult.digest.page_size;
  removeRoot();
  untrackRoot();
  durations.total = since(started);

  const profileLines = (lines: OutputLine[]): OutputLine[] => (lines.length <= 40 ? lines : [...lines.slice(0, 20), ...lines.slice(-20)]);
  const report: RestoreReport = {
    benchmark: 'restore',
    ok: failures.length === 0,
    litebase_restore_s: litebaseResult.seconds,
    litestream_restore_s: litestreamResult.seconds,
    restore_time_ratio: restoreRatio,
    litebase_archive_bytes: archive.bytes,
    litestream_archive_bytes: replica.bytes,
    litebase_bytes_per_tx: round(archive.bytes / n, 1),
    litestream_bytes_per_tx: round(replica.bytes / n, 1),
    archive_bytes_ratio: bytesRatio,
    transactions: n,
    restore_to_transaction: k,
    database_mb: round(databaseBytes / 1024 / 1024, 1),
    restored_ok: restoredOk,
    ...(options.sharedDir === undefined ? {} : { shared_dir: { dir: options.sharedDir, filesystem: mountTypeOf(options.sharedDir) } }),
    ...(options.objectStore !== undefined && folderRestore
      ? {
          object_store: {
            url: archiveUrl,
            restore_s: litebaseResult.seconds,
            folder_restore_s: folderRestore.seconds,
            ratio_to_folder: folderRestore.seconds > 0 ? round(litebaseResult.seconds / folderRestore.seconds, 3) : null,
            copy_s: mirrorSeconds ?? 0,
            folder_restore_ok: folderRestore.ok,
          },
        }
      : {}),
    goals,
    all_goals_pass: goals.restore_le_half_litestream && goals.archive_le_litestream && failures.length === 0,
    details: {
      reference,
      litebase: {
        write_seconds: round(litebaseWrite.seconds, 2),
        write_tps: round(litebaseTps, 1),
        final_compaction_s: compactSeconds,
        final_compaction: compactAnswer,
        archive: { ...archive, checkpoints: archiveCheckpoints, bundles: archiveBundles },
        restore: { ...litebaseResult, cli_summary: litebaseSummary, progress: profileLines(litebaseRun.lines) },
        restore_no_check_s: round(litebaseNoCheck.seconds, 3),
        restore_no_check_summary_duration_ms: fieldOf(safeJson(litebaseNoCheck.stdout), 'durationMs') ?? null,
        node_cli_start_s: round(nodeStart.seconds, 3),
        server_env: serverEnv,
        server_log: serverLines.slice(0, 20),
      },
      litestream: {
        version,
        write_seconds: round(litestreamWriteSeconds, 2),
        source_db_bytes: sourceBytes,
        replica: { ...replica, snapshots: replicaSnapshots, wal: replicaWal },
        restore: { ...litestreamResult, output: profileLines(litestreamRun.lines) },
        replicate_log: litestreamLines.slice(-20),
      },
    },
    config: {
      transactions: n,
      restore_to_transaction: k,
      target_mb: options.mb,
      payload_bytes: workload.payloadBytes,
      connections: options.connections,
      seed: options.seed,
      pause_after_k_ms: options.pauseMs,
      compaction_log_bytes: compactionLogBytes,
      litestream_sync_interval: '1s',
      restores:
        'wall time from spawn to exit of the CLI; files written minutes before (page cache warm for both); sync and 1 s of quiet before each',
    },
    machine,
    durations_s: durations,
    warnings,
    failures,
  };
  return { report, table: restoreTable(report, litebaseResult, litestreamResult, folderRestore) };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text.trim().split('\n').pop() ?? '');
  } catch {
    return undefined;
  }
}

function restoreTable(report: RestoreReport, litebase: RestoreResult, litestream: RestoreResult, fromFolder?: RestoreResult): string {
  const m = report.machine;
  const c = report.config;
  const mib = (bytes: number): string => `${formatNumber(bytes / 1024 / 1024, 2)} MiB`;
  const main = renderTable(
    [
      { header: '' },
      { header: 'restore s', align: 'right' },
      { header: 'archive', align: 'right' },
      { header: 'bytes/tx', align: 'right' },
      { header: 'rows', align: 'right' },
      { header: 'content' },
    ],
    [
      [
        report.object_store
          ? `Litebase (offline restore from ${report.object_store.url.split('://')[0]}:// store)`
          : 'Litebase (offline restore from file:// store)',
        formatNumber(litebase.seconds, 2),
        mib(report.litebase_archive_bytes),
        formatNumber(report.litebase_bytes_per_tx, 0),
        litebase.digest.rows,
        litebase.ok ? 'OK' : 'WRONG',
      ],
      ...(fromFolder
        ? [
            [
              '  the same archive copied into a local folder (file://)',
              formatNumber(fromFolder.seconds, 2),
              mib(report.litebase_archive_bytes),
              formatNumber(report.litebase_bytes_per_tx, 0),
              fromFolder.digest.rows,
              fromFolder.ok ? 'OK' : 'WRONG',
            ],
          ]
        : []),
      [
        `Litestream (file replica)`,
        formatNumber(litestream.seconds, 2),
        mib(report.litestream_archive_bytes),
        formatNumber(report.litestream_bytes_per_tx, 0),
        litestream.digest.rows,
        litestream.ok ? 'OK' : 'WRONG',
      ],
    ],
  );
  const goals = renderTable(
    [{ header: 'goal' }, { header: 'measured', align: 'right' }, { header: 'result' }],
    [
      [
        `Litebase restore time <= ${RESTORE_GOALS.maxRestoreTimeRatio} x Litestream's`,
        formatNumber(report.restore_time_ratio, 3),
        report.goals.restore_le_half_litestream ? 'PASS' : 'FAIL',
      ],
      [
        `Litebase archive bytes <= ${RESTORE_GOALS.maxArchiveBytesRatio} x Litestream's`,
        formatNumber(report.archive_bytes_ratio, 3),
        report.goals.archive_le_litestream ? 'PASS' : 'FAIL',
      ],
    ],
  );
  const lines = [
    `Restore benchmark: ${report.transactions} write transactions (payload ${String(c.payload_bytes)} bytes), restored to just after transaction ${report.restore_to_transaction}; ` +
      `database ${formatNumber(report.database_mb, 1)} MiB at that point`,
    `machine: ${m.cpus} cpus (${m.cpu_model}), node ${m.node_version}, ${m.platform}/${m.arch}, data on ${m.tmp_filesystem} (${m.tmp_dir}), load ${m.load_average_1m}`,
    ...(report.shared_dir
      ? [
          `Litebase's data dir (the log) on ${report.shared_dir.filesystem} (--shared-dir ${report.shared_dir.dir}), its local dir on ${m.tmp_filesystem}`,
        ]
      : []),
    ...(report.object_store
      ? [
          `Litebase archived to ${report.object_store.url}; restore from it ${formatNumber(report.object_store.restore_s, 2)} s, ` +
            `from the same archive in a local folder ${formatNumber(report.object_store.folder_restore_s, 2)} s ` +
            `(ratio ${formatNumber(report.object_store.ratio_to_folder, 3)}; copying it took ${formatNumber(report.object_store.copy_s, 2)} s)`,
        ]
      : []),
    '',
    main,
    '',
    goals,
  ];
  if (report.warnings.length > 0) lines.push('', ...report.warnings.map((warning) => `WARNING: ${warning}`));
  if (report.failures.length > 0) lines.push('', ...report.failures.map((failure) => `FAILED: ${failure}`));
  return lines.join('\n');
}
