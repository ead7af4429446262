/**
 * Scale benchmark (`npm run bench -- scale`, issue 14 item 7): does a small-write load cost the same
 * on a big database as on a tiny one? For each database size (tiny and 1 GiB by default, 10 GiB with
 * --with-10g, or --sizes), on fresh temp folders:
 *
 * 1. One `litebase serve` (the Primary) on a shared folder, its own node-local folder and a file://
 *    object store folder, with compaction after LITEBASE_COMPACTION_LOG_SEGMENTS log segments
 *    (default here 1000, so compactions happen during the small-write load) and the archive timer
 *    off (archiving happens in each compaction run, so every object store write is a compaction's).
 * 2. Loading: a table `blobs` filled to the size with 10 MiB requests (29 rows of 256 KiB random
 *    bytes each, sent as {"$blob": base64}), then a forced compaction (POST .../compact) so that the
 *    small-write load starts from a checkpoint and an idle compactor.
 * 3. The small-write load: single-row INSERTs into a small table of the same database from N
 *    connections (32) for a fixed time (30 s) after a warm-up, as in bench/write.ts. Measured: tx/s;
 *    bytes written to the shared folder and to the object store by the window and by the compactions
 *    it triggered (counted until the compactor is idle again), per committed transaction; the
 *    durations of those compactions (from the Primary's "compaction done" log lines). Then a forced
 *    compaction, timed.
 * 4. Bootstrap: the shared folder's checkpoint files (every file under databases/<db>/ outside the
 *    log: today checkpoints/*.ckpt) are dropped from the page cache and read once, sequentially (the
 *    "plain read"); dropped again; then a fresh node (a Replica, empty local folder) is started on the
 *    same shared folder and timed from its spawn until it serves the Primary's position (its rolling
 *    checksum must equal the Primary's).
 * 5. Memory: VmRSS of each node sampled every 100 ms (peak per phase), VmHWM at the end.
 *
 * Everything is measured from outside: HTTP, the files in the folders, /proc. Goals (one run):
 * tx/s at the biggest size >= 0.9x the smallest's; bytes per transaction at the biggest size <=
 * 1.5x the smallest's (shared folder and object store each); bootstrap >= 0.5x the plain read (at
 * the biggest size); every node's RSS <= 300 MiB.
 *
 * stdout: tables, then ONE JSON line, last. Progress on stderr. Exit 0 when the measurements are
 * valid, 1 when not (failed requests, lost writes, a Replica that ends different from the Primary,
 * a node that died), 2 for a usage error or, with --strict, a missed goal.
 */
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { releaseAll } from './support/cleanup.js';
import { BenchCluster, sleep, waitForPosition, type ClusterNode } from './support/cluster.js';
import { databaseChecksum, databasePosition, JsonClient } from './support/http-client.js';
import { errorRateProblem, prepareBodies, runLoad, type LoadResult } from './support/load.js';
import { machineInfo, type MachineInfo } from './support/machine.js';
import { commitStats, scrapeMetrics, type CommitStats } from './support/metrics.js';
import { ioDelta, MemorySampler, procIo, type MemoryReport, type ProcIo } from './support/proc-memory.js';
import { cpuCell, cpuWarnings, progress, round, since, summarize, type LoadSummary } from './support/report.js';
import { folderBytes } from './support/restore-procs.js';
import { evictFromPageCache } from './support/segment-read.js';
import { benchTmpRoot } from './support/server.js';
import { formatNumber, renderTable } from './support/table.js';
import { meterDelta, WriteMeter, type MeterTotals } from './support/write-meter.js';
import { readOptions } from './support/options.js';

export const SCALE_GOALS = { minTpsRatio: 0.9, maxBytesPerTxRatio: 1.5, minBootstrapRatio: 0.5, maxRssMib: 300 } as const;

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;
const DATABASE = 'bench';

/** Loading: rows of 256 KiB random bytes; 29 of them as base64 make a 9.7 MiB body, the most under the 10 MiB body limit. */
const LOAD_ROW_BYTES = 256 * KIB;
const LOAD_ROWS_PER_REQUEST = 29;
/** Two loading requests in flight: one is parsed while the other commits. */
const LOAD_CONNECTIONS = 2;
/** Single INSERTs sent after the load and before the forced compaction, so that it always has a small change to fold in. */
const FORCED_AFTER_TRANSACTIONS = 100;
const PAYLOAD = 'litebase-bench-payload-'.padEnd(100, 'x');
const INSERT_BODIES = prepareBodies(
  (index) => `{"statements":[{"sql":"INSERT INTO small(a,b) VALUES (?,?)","params":[${index + 1},"${PAYLOAD}"]}]}`,
);

interface SizeSpec {
  label: string;
  bytes: number;
}

interface ScaleOptions {
  sizes: SizeSpec[];
  connections: number;
  warmupSeconds: number;
  durationSeconds: number;
  compactionSegments: number;
  strict: boolean;
}

const TINY: SizeSpec = { label: 'tiny (4 MiB)', bytes: 4 * MIB };
const DEFAULTS: ScaleOptions = {
  sizes: [TINY, { label: '1 GiB', bytes: GIB }],
  connections: 32,
  warmupSeconds: 3,
  durationSeconds: 30,
  compactionSegments: 1000,
  strict: false,
};

const USAGE = `usage: npm run bench -- scale [options]

  The same small-write load (single-row INSERTs into a small table) on databases of several sizes:
  tx/s, bytes written to the shared folder and to the object store per committed transaction, the
  compactions' durations, a fresh node's bootstrap beside a plain read of the checkpoint files, and
  each node's peak RSS. Default sizes: tiny (4 MiB) and 1 GiB.

options:
  --sizes LIST            comma-separated sizes instead of the default, e.g. tiny,64MiB,256MiB
                          (units KiB, MiB, GiB; "tiny" is 4 MiB); the smallest is the reference
  --with-10g              add a 10 GiB database (up to ~70 GiB of free disk today, and hours)
  --connections N         clients of the small-write load (default ${DEFAULTS.connections})
  --warmup S              warm-up seconds before the measured window (default ${DEFAULTS.warmupSeconds})
  --duration S            measured seconds of the small-write load (default ${DEFAULTS.durationSeconds})
  --compaction-segments N LITEBASE_COMPACTION_LOG_SEGMENTS of the nodes (default ${DEFAULTS.compactionSegments})
  --strict                exit 2 when a goal is missed

environment:
  LITEBASE_BENCH_TMPDIR   where the folders go (default: the OS temp dir)`;

function sizeLabel(bytes: number): string {
  if (bytes % GIB === 0) return `${bytes / GIB} GiB`;
  if (bytes % MIB === 0) return `${bytes / MIB} MiB`;
  return `${round(bytes / MIB, 1)} MiB`;
}

function parseSize(text: string): SizeSpec | undefined {
  if (text.toLowerCase() === 'tiny') return TINY;
  const match = /^(\d+(?:\.\d+)?)\s*(k|kib|m|mib|g|gib)$/i.exec(text.trim());
  if (!match?.[1] || !match[2]) return undefined;
  const unit = match[2].toLowerCase()[0];
  const bytes = Math.round(Number(match[1]) * (unit === 'k' ? KIB : unit === 'm' ? MIB : GIB));
  return bytes >= MIB ? { label: sizeLabel(bytes), bytes } : undefined;
}

function parseArgs(argv: string[]): ScaleOptions | string {
  const options: ScaleOptions = { ...DEFAULTS, sizes: [...DEFAULTS.sizes] };
  let with10g = false;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--strict') {
      options.strict = true;
      continue;
    }
    if (flag === '--with-10g') {
      with10g = true;
      continue;
    }
    const raw = argv[i + 1];
    if (flag === '--sizes') {
      const sizes = (raw ?? '').split(',').map((part) => parseSize(part));
      if (raw === undefined || sizes.some((size) => size === undefined))
        return `--sizes needs a list like tiny,64MiB,1GiB (at least 1 MiB each)`;
      options.sizes = sizes.filter((size): size is SizeSpec => size !== undefined);
      i++;
      continue;
    }
    const value = Number(raw);
    const positive = raw !== undefined && Number.isFinite(value) && value > 0;
    if (flag === '--connections' && positive && Number.isInteger(value)) options.connections = value;
    else if (flag === '--warmup' && raw !== undefined && Number.isFinite(value) && value >= 0) options.warmupSeconds = value;
    else if (flag === '--duration' && positive) options.durationSeconds = value;
    else if (flag === '--compaction-segments' && positive && Number.isInteger(value)) options.compactionSegments = value;
    else return `bad option "${flag ?? ''}"${raw === undefined ? '' : ` ${raw}`}`;
    i++;
  }
  if (with10g && !options.sizes.some((size) => size.bytes === 10 * GIB)) options.sizes.push({ label: '10 GiB', bytes: 10 * GIB });
  options.sizes.sort((a, b) => a.bytes - b.bytes);
  return options;
}

// ---- The Primary's log: compaction runs -------------------------------------------------------

interface CompactionRun {
  /** performance.now() when its "compaction done" line arrived. */
  at: number;
  reason: string;
  duration_ms: number;
  checkpoint_bytes: number | null;
  archived_bytes: number | null;
}

/**
 * Reads the Primary's info-level log (pino JSON lines): each finished compaction with its report
 * (the same report POST .../compact answers), threshold-triggered runs started and not finished
 * yet, and warning/error lines.
 */
class PrimaryLog {
  readonly runs: CompactionRun[] = [];
  private thresholdStarts = 0;
  private thresholdEnds = 0;
  warnings = 0;
  readonly warningSamples: string[] = [];

  onLine(line: string): void {
    if (!line.startsWith('{')) return;
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    const level = typeof record.level === 'number' ? record.level : 0;
    if (level >= 40) {
      this.warnings++;
      if (this.warningSamples.length < 10) this.warningSamples.push(line.slice(0, 400));
    }
    if (record.msg === 'log passed the compaction threshold') this.thresholdStarts++;
    const report = record.report;
    if (typeof report === 'object' && report !== null && typeof (report as { durationMs?: unknown }).durationMs === 'number') {
      const r = report as {
        reason?: unknown;
        durationMs: number;
        checkpoint?: { bytes?: unknown } | null;
        archived?: { bytes?: unknown } | null;
      };
      const reason = typeof r.reason === 'string' ? r.reason : 'unknown';
      if (reason === 'threshold') this.thresholdEnds++;
      this.runs.push({
        at: performance.now(),
        reason,
        duration_ms: r.durationMs,
        checkpoint_bytes: typeof r.checkpoint?.bytes === 'number' ? r.checkpoint.bytes : null,
        archived_bytes: typeof r.archived?.bytes === 'number' ? r.archived.bytes : null,
      });
    } else if (record.msg === 'compaction failed' && record.reason === 'threshold') {
      this.thresholdEnds++;
    }
  }

  /** A threshold run was announced and has not finished. */
  get busy(): boolean {
    return this.thresholdStarts > this.thresholdEnds;
  }
}

// ---- Report types -----------------------------------------------------------------------------

interface CompactionSummary {
  count: number;
  reasons: Record<string, number>;
  durations_ms: number[];
  total_ms: number;
  max_ms: number;
  checkpoint_bytes: number;
}

function summarizeRuns(runs: CompactionRun[]): CompactionSummary {
  const reasons: Record<string, number> = {};
  for (const run of runs) reasons[run.reason] = (reasons[run.reason] ?? 0) + 1;
  const durations = runs.map((run) => run.duration_ms);
  return {
    count: runs.length,
    reasons,
    durations_ms: durations,
    total_ms: durations.reduce((sum, value) => sum + value, 0),
    max_ms: durations.length === 0 ? 0 : Math.max(...durations),
    checkpoint_bytes: runs.reduce((sum, run) => sum + (run.checkpoint_bytes ?? 0), 0),
  };
}

interface Written {
  /** Shared folder: total, and by area (log, checkpoints = databases/<db>/<folder other than log>/, database, cluster). */
  shared: { total: number; by_area: Record<string, number> };
  store: number;
}

function written(before: Record<string, MeterTotals>, after: Record<string, MeterTotals>): Written {
  const delta = meterDelta(before, after);
  return { shared: { total: delta.shared?.total ?? 0, by_area: delta.shared?.by_category ?? {} }, store: delta.store?.total ?? 0 };
}

interface ForcedCompaction {
  seconds: number;
  /** durationMs of the report the route answered. */
  duration_ms: number | null;
  checkpoint_bytes: number | null;
  /** Whether the run wrote a new checkpoint (false: the newest one was already at the log's end). */
  checkpoint_created: boolean | null;
  /** Every run that finished while the request waited: runs already under way (it waits for them), then its own. */
  runs: CompactionSummary;
  written: Written;
}

interface SizeReport {
  label: string;
  target_bytes: number;
  database_bytes_after_load: number;
  database_bytes_at_end: number;
  load: {
    seconds: number;
    requests: number;
    payload_bytes: number;
    mib_per_s: number;
    written: Written;
    compactions: CompactionSummary;
  };
  settle_compaction: ForcedCompaction;
  write_load: {
    tx_per_s: number;
    measured: LoadSummary;
    commit: CommitStats;
    /** Transactions the bytes are divided by: the server's committed count over the window, else the 200s. */
    transactions: number;
    /** From the window's start until the compactor was idle again after it. */
    accounted_seconds: number;
    written: Written;
    shared_bytes_per_tx: number;
    store_bytes_per_tx: number;
    compactions: CompactionSummary;
    /** /proc/PID/io of the Primary over the same span: every folder together (local SQLite files included). */
    primary_io: ProcIo | null;
    rows_acknowledged: number;
    rows_gained: number;
  };
  forced_compaction: ForcedCompaction;
  bootstrap: {
    position: string;
    checkpoint_files: number;
    checkpoint_bytes: number;
    page_cache: 'cold' | 'warm';
    /** Bytes of the checkpoint files still in the page cache after dropping them (fincore), when it could be asked. */
    resident_after_drop_bytes: number | null;
    plain_read_s: number;
    plain_read_mib_per_s: number;
    ready_s: number;
    caught_up_s: number;
    mib_per_s: number;
    /** plain_read_s / caught_up_s: the bootstrap's speed over the plain read's, on the same bytes. */
    ratio_to_plain_read: number | null;
    checksum_match: boolean;
    replica_io: ProcIo | null;
  };
  memory: { primary: MemoryReport; replica: MemoryReport };
  /** Apparent bytes in each folder at the end (nodes stopped). */
  folders_at_end: { shared: number; store: number; primary_local: number; replica_local: number };
  primary_log: { warnings: number; samples: string[] };
  /** What scanning the folders cost this process. */
  folder_scans: { scans: number; total_ms: number; mean_ms: number };
  durations_s: Record<string, number>;
}

interface Goal {
  goal: string;
  measured: number | null;
  pass: boolean;
}

export interface ScaleReport {
  benchmark: 'scale';
  ok: boolean;
  all_goals_pass: boolean;
  goals: Record<'tps' | 'shared_bytes_per_tx' | 'store_bytes_per_tx' | 'bootstrap' | 'rss', Goal>;
  sizes: SizeReport[];
  config: Record<string, unknown>;
  machine: MachineInfo;
  durations_s: Record<string, number>;
  warnings: string[];
  failures: string[];
}

// ---- Steps ------------------------------------------------------------------------------------

async function query(
  client: JsonClient,
  step: string,
  statements: { sql: string; params?: unknown[] }[],
  timeoutMs = 60_000,
): Promise<unknown> {
  const answer = await client.request('POST', `/v1/databases/${DATABASE}/query`, { statements }, timeoutMs);
  if (answer.status !== 200) throw new Error(`${step}: answered ${answer.status}: ${answer.text.slice(0, 300)}`);
  return answer.body;
}

/** The single value of each statement's first row. */
function firstValues(body: unknown): unknown[] {
  const results = (body as { results?: { rows?: unknown[][] }[] } | undefined)?.results ?? [];
  return results.map((result) => result.rows?.[0]?.[0]);
}

async function databaseBytes(client: JsonClient): Promise<number> {
  const [pages, pageSize] = firstValues(await query(client, 'database size', [{ sql: 'PRAGMA page_count' }, { sql: 'PRAGMA page_size' }]));
  if (typeof pages !== 'number' || typeof pageSize !== 'number') throw new Error('PRAGMA page_count/page_size answered no numbers');
  return pages * pageSize;
}

async function countSmall(client: JsonClient): Promise<number> {
  const [count] = firstValues(await query(client, 'count rows', [{ sql: 'SELECT count(*) FROM small' }]));
  if (typeof count !== 'number') throw new Error(`count(*) answered ${JSON.stringify(count)}`);
  return count;
}

/** One loading request: `rows` rows of fresh random bytes (incompressible, so nothing is smaller in the log than in the database). */
function loadBody(rows: number): string {
  const values = Array.from({ length: rows }, () => '(?)').join(',');
  const params = Array.from({ length: rows }, () => `{"$blob":"${randomBytes(LOAD_ROW_BYTES).toString('base64')}"}`);
  return `{"statements":[{"sql":"INSERT INTO blobs(data) VALUES ${values}","params":[${params.join(',')}]}]}`;
}

/** Fill `blobs` until `targetBytes` of payload are in; every request one transaction. */
async function loadTo(primary: ClusterNode, key: string, targetBytes: number): Promise<{ requests: number; payload: number }> {
  const client = new JsonClient(primary.url, key, LOAD_CONNECTIONS);
  const totalRows = Math.max(1, Math.ceil(targetBytes / LOAD_ROW_BYTES));
  let rowsSent = 0;
  let rowsDone = 0;
  let requests = 0;
  const started = performance.now();
  let lastReport = started;
  const worker = async (): Promise<void> => {
    while (rowsSent < totalRows) {
      const rows = Math.min(LOAD_ROWS_PER_REQUEST, totalRows - rowsSent);
      rowsSent += rows;
      const body = loadBody(rows);
      const answer = await client.requestJsonText('POST', `/v1/databases/${DATABASE}/query`, body, 300_000);
      if (answer.status !== 200) throw new Error(`loading: answered ${answer.status}: ${answer.text.slice(0, 300)}`);
      rowsDone += rows;
      requests++;
      if (performance.now() - lastReport > 10_000) {
        lastReport = performance.now();
        const mib = (rowsDone * LOAD_ROW_BYTES) / MIB;
        progress(
          `  loaded ${formatNumber(mib, 0)} of ${formatNumber(targetBytes / MIB, 0)} MiB (${formatNumber(mib / ((lastReport - started) / 1000), 1)} MiB/s)`,
        );
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: LOAD_CONNECTIONS }, () => worker()));
  } finally {
    client.close();
  }
  return { requests, payload: rowsDone * LOAD_ROW_BYTES };
}

/**
 * Until no compaction the load started is running: no threshold run announced and unfinished in
 * the log, no temp file in the shared folder's checkpoint area or the store, and no new bytes
 * there for a second. Waits 1.5 s first: the compactor measures the log a second after a flush.
 */
/** The folder areas only a compaction writes to: the shared folder's checkpoint area and the object store. */
const COMPACTION_AREAS = ['checkpoints', 'archive'] as const;

async function waitCompactorIdle(
  primary: ClusterNode,
  log: PrimaryLog,
  meter: WriteMeter,
  warnings: string[],
  timeoutMs: number,
): Promise<number> {
  await sleep(1500);
  const deadline = performance.now() + timeoutMs;
  let lastReport = performance.now();
  for (;;) {
    primary.assertRunning();
    meter.scanNow();
    if (!log.busy && meter.quiet(1000, COMPACTION_AREAS)) return performance.now();
    if (performance.now() - lastReport > 10_000) {
      lastReport = performance.now();
      progress(
        `  waiting for the compactor (${log.busy ? 'a threshold run is under way' : 'no run announced'}; ${meter.activity(COMPACTION_AREAS)})`,
      );
    }
    if (performance.now() > deadline) {
      warnings.push(`the compactor was still busy ${Math.round(timeoutMs / 1000)} s after the load; bytes of later runs are not counted`);
      return performance.now();
    }
    await sleep(200);
  }
}

async function forcedCompaction(primary: ClusterNode, meter: WriteMeter, log: PrimaryLog): Promise<ForcedCompaction> {
  const before = meter.snapshot();
  const runsMark = log.runs.length;
  const started = performance.now();
  const answer = await primary.client.request('POST', `/v1/databases/${DATABASE}/compact`, undefined, 4 * 60 * 60_000);
  const seconds = (performance.now() - started) / 1000;
  if (answer.status !== 200)
    throw new Error(`POST /v1/databases/${DATABASE}/compact answered ${answer.status}: ${answer.text.slice(0, 300)}`);
  const report = (
    answer.body as { compaction?: { durationMs?: unknown; checkpoint?: { bytes?: unknown; created?: unknown } | null } } | undefined
  )?.compaction;
  // Its own "compaction done" line comes on the node's stdout around the answer: give it a moment.
  await sleep(200);
  return {
    seconds: round(seconds, 3),
    duration_ms: typeof report?.durationMs === 'number' ? report.durationMs : null,
    checkpoint_bytes: typeof report?.checkpoint?.bytes === 'number' ? report.checkpoint.bytes : null,
    checkpoint_created: typeof report?.checkpoint?.created === 'boolean' ? report.checkpoint.created : null,
    runs: summarizeRuns(log.runs.slice(runsMark)),
    written: written(before, meter.snapshot()),
  };
}

/**
 * `count` small transactions (single-row INSERTs, 8 in flight): something for the forced
 * compaction after the load to fold in whatever the compactions during the load left, so that it
 * always measures a compaction after a small change.
 */
async function smallTransactions(primary: ClusterNode, key: string, count: number): Promise<void> {
  const client = new JsonClient(primary.url, key, 8);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const body = INSERT_BODIES[next++ % INSERT_BODIES.length]!;
      const answer = await client.requestJsonText('POST', `/v1/databases/${DATABASE}/query`, body);
      if (answer.status !== 200) throw new Error(`small transaction: answered ${answer.status}: ${answer.text.slice(0, 300)}`);
    }
  };
  try {
    await Promise.all(Array.from({ length: 8 }, () => worker()));
  } finally {
    client.close();
  }
}

/** Which area of the shared folder a file (path relative to it) is in. */
function sharedArea(relative: string): string {
  const parts = relative.split(path.sep);
  if (parts[0] !== 'databases') return 'cluster';
  if (parts[2] === 'log') return 'log';
  return parts.length >= 4 ? 'checkpoints' : 'database';
}

/** The checkpoint files of `database`: every final-named file under databases/<db>/ in a folder other than log/. */
function checkpointFiles(sharedDir: string, database: string): string[] {
  const root = path.join(sharedDir, 'databases', database);
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile() && !entry.name.startsWith('.') && sharedArea(path.relative(sharedDir, full)) === 'checkpoints')
        files.push(full);
    }
  };
  walk(root);
  return files.sort();
}

/** Every final-named file under databases/<db>/ (checkpoints and log): what a bootstrap may read. */
function databaseFiles(sharedDir: string, database: string): string[] {
  const files: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile() && !entry.name.startsWith('.')) files.push(full);
    }
  };
  walk(path.join(sharedDir, 'databases', database));
  return files;
}

/** Sequential read of every file in 8 MiB chunks into one buffer (a 10 GiB file does not fit a Node buffer). */
function plainRead(files: string[]): { bytes: number; seconds: number } {
  const buffer = Buffer.allocUnsafe(8 * MIB);
  const started = performance.now();
  let bytes = 0;
  for (const file of files) {
    const fd = openSync(file, 'r');
    try {
      for (;;) {
        const read = readSync(fd, buffer, 0, buffer.length, null);
        if (read === 0) break;
        bytes += read;
      }
    } finally {
      closeSync(fd);
    }
  }
  return { bytes, seconds: (performance.now() - started) / 1000 };
}

/** Bytes of `files` in the page cache (util-linux fincore); undefined when it cannot be asked. */
function residentBytes(files: string[]): number | undefined {
  if (files.length === 0) return 0;
  const result = spawnSync('fincore', ['--bytes', '--noheadings', '--raw', '--output', 'RES', ...files], { encoding: 'utf8' });
  if (result.error || result.status !== 0) return undefined;
  return result.stdout
    .split('\n')
    .map((line) => Number(line.trim()))
    .filter((value) => Number.isFinite(value))
    .reduce((sum, value) => sum + value, 0);
}

/** The node process that `start` is spawning, as soon as it exists (for sampling its memory from the first moment). */
async function spawned(cluster: BenchCluster, nodeId: string, starting: Promise<ClusterNode>): Promise<ClusterNode | undefined> {
  let failed = false;
  starting.catch(() => (failed = true));
  for (;;) {
    const node = cluster.nodes.find((candidate) => candidate.id === nodeId);
    if (node || failed) return node;
    await sleep(5);
  }
}

async function positionAndChecksum(node: ClusterNode): Promise<{ position: bigint; checksum: string | undefined }> {
  const answer = await node.client.request('GET', `/v1/databases/${DATABASE}`);
  const position = databasePosition(answer.body);
  if (answer.status !== 200 || position === undefined)
    throw new Error(`GET /v1/databases/${DATABASE} on ${node.id} answered ${answer.status}`);
  return { position, checksum: databaseChecksum(answer.body) };
}

// ---- One size ---------------------------------------------------------------------------------

async function runSize(size: SizeSpec, options: ScaleOptions, warnings: string[], failures: string[]): Promise<SizeReport> {
  const durations: Record<string, number> = {};
  const key = randomBytes(24).toString('hex');
  const cluster = new BenchCluster(
    key,
    {
      LITEBASE_COMPACTION_LOG_SEGMENTS: String(options.compactionSegments),
      // Off: archiving then happens only in compaction runs, which the log reports and the idle wait sees.
      LITEBASE_ARCHIVE_INTERVAL_MS: '0',
    },
    undefined,
    'litebase-bench-scale-',
  );
  try {
    const sharedDir = cluster.views[0]!;
    const storeDir = path.join(cluster.root, 'store');
    mkdirSync(storeDir);
    const storeUrl = pathToFileURL(storeDir).href;
    const nodeArgs = ['--object-store', storeUrl];

    let phase = performance.now();
    progress(`${size.label}: starting the Primary`);
    const primary = await cluster.start('primary', [...nodeArgs, '--log-level', 'info']);
    const log = new PrimaryLog();
    primary.onLine((line) => log.onLine(line));
    const primaryMemory = new MemorySampler(primary.pid);
    const meter = new WriteMeter(200);
    meter.add('shared', sharedDir, sharedArea);
    meter.add('store', storeDir, () => 'archive');
    meter.start();
    const stopMeter = (): void => meter.stop();
    try {
      const create = await primary.client.request('POST', '/v1/databases', { name: DATABASE });
      if (create.status !== 201) throw new Error(`create database answered ${create.status}: ${create.text.slice(0, 300)}`);
      await query(primary.client, 'create tables', [
        { sql: 'CREATE TABLE blobs(id INTEGER PRIMARY KEY, data BLOB)' },
        { sql: 'CREATE TABLE small(id INTEGER PRIMARY KEY, a INTEGER, b TEXT)' },
      ]);
      durations.start = since(phase);

      // ---- 2. Loading ----
      phase = performance.now();
      primaryMemory.setPhase('load');
      progress(`${size.label}: loading with 10 MiB requests`);
      let mark = meter.snapshot();
      let runsMark = log.runs.length;
      const loaded = await loadTo(primary, key, size.bytes);
      const loadSeconds = since(phase);
      const loadWritten = written(mark, meter.snapshot());
      const loadRuns = summarizeRuns(log.runs.slice(runsMark));
      durations.load = loadSeconds;
      const databaseAfterLoad = await databaseBytes(primary.client);

      phase = performance.now();
      primaryMemory.setPhase('settle compaction');
      progress(
        `${size.label}: ${formatNumber(databaseAfterLoad / MIB, 1)} MiB loaded in ${loadSeconds} s; forced compaction before the small writes`,
      );
      const settle = await forcedCompaction(primary, meter, log);
      durations.settle_compaction = since(phase);

      // ---- 3. The small-write load ----
      phase = performance.now();
      primaryMemory.setPhase('write load');
      const rowsBefore = await countSmall(primary.client);
      const load = {
        url: primary.url,
        method: 'POST' as const,
        path: `/v1/databases/${DATABASE}/query`,
        headers: { authorization: `Bearer ${key}` },
        bodies: INSERT_BODIES,
        connections: options.connections,
        ...(primary.pid === undefined ? {} : { serverPid: primary.pid }),
      };
      let warmup: LoadResult | undefined;
      if (options.warmupSeconds > 0) {
        progress(`${size.label}: small writes, warm-up ${options.warmupSeconds} s`);
        warmup = await runLoad({ ...load, title: `${size.label}: single INSERTs (warm-up)`, seconds: options.warmupSeconds });
        await waitCompactorIdle(primary, log, meter, warnings, 30 * 60_000);
      }
      const metricsBefore = await scrapeMetrics(primary.client);
      mark = meter.snapshot();
      runsMark = log.runs.length;
      const ioBefore = procIo(primary.pid);
      const windowStart = performance.now();
      progress(`${size.label}: small writes, measuring ${options.durationSeconds} s (${options.connections} connections)`);
      const measured = await runLoad({ ...load, title: `${size.label}: single INSERTs`, seconds: options.durationSeconds });
      primary.assertRunning();
      const metricsAfter = await scrapeMetrics(primary.client);
      progress(`${size.label}: ${formatNumber(measured.rps, 0)} tx/s; waiting for the compactions the load started`);
      const idleAt = await waitCompactorIdle(primary, log, meter, warnings, 60 * 60_000);
      const loadWrittenWindow = written(mark, meter.snapshot());
      const primaryIo = ioDelta(ioBefore, procIo(primary.pid));
      const windowRuns = summarizeRuns(log.runs.slice(runsMark));
      for (const result of [warmup, measured]) {
        const problem = result && errorRateProblem(result);
        if (problem) failures.push(problem);
      }
      const rowsAfter = await countSmall(primary.client);
      const acknowledged = (warmup?.ok ?? 0) + measured.ok;
      if (rowsAfter - rowsBefore < acknowledged)
        failures.push(`${size.label}: ${acknowledged} INSERTs answered 200 but the table gained ${rowsAfter - rowsBefore} rows`);
      const commit = commitStats(metricsBefore, metricsAfter);
      const transactions = commit.transactions !== null && commit.transactions > 0 ? commit.transactions : measured.ok;
      warnings.push(...cpuWarnings([measured]));
      durations.write_load = since(phase);

      phase = performance.now();
      primaryMemory.setPhase('forced compaction');
      progress(`${size.label}: ${FORCED_AFTER_TRANSACTIONS} more single INSERTs, then a forced compaction`);
      await smallTransactions(primary, key, FORCED_AFTER_TRANSACTIONS);
      const forced = await forcedCompaction(primary, meter, log);
      durations.forced_compaction = since(phase);
      const databaseAtEnd = await databaseBytes(primary.client);

      // ---- 4. Bootstrap of a fresh node ----
      phase = performance.now();
      primaryMemory.setPhase('bootstrap (idle)');
      const { position, checksum } = await positionAndChecksum(primary);
      const checkpoints = checkpointFiles(sharedDir, DATABASE);
      const everything = databaseFiles(sharedDir, DATABASE);
      let dropProblem = evictFromPageCache(everything);
      const resident = dropProblem === undefined ? residentBytes(checkpoints) : undefined;
      const read = plainRead(checkpoints);
      if (dropProblem === undefined && resident !== undefined && read.bytes > 0 && resident > read.bytes * 0.05)
        dropProblem = `${formatNumber(resident / MIB, 1)} MiB of the checkpoint files stayed in the page cache`;
      if (dropProblem !== undefined)
        warnings.push(`${size.label}: page cache not dropped (${dropProblem}): the plain read and the bootstrap are warm`);
      evictFromPageCache(everything);
      progress(
        `${size.label}: plain read of ${checkpoints.length} checkpoint file(s), ${formatNumber(read.bytes / MIB, 1)} MiB, ` +
          `${formatNumber(read.bytes / MIB / read.seconds, 1)} MiB/s; a fresh node bootstraps to position ${position}`,
      );
      const starting = cluster.start('fresh', nodeArgs, { readyTimeoutMs: 4 * 60 * 60_000 });
      const freshNode = await spawned(cluster, 'fresh', starting);
      const replicaMemory = new MemorySampler(freshNode?.pid, 'bootstrap');
      let replicaReport: MemoryReport;
      let caughtUpSeconds: number;
      let readySeconds: number;
      let replicaChecksum: string | undefined;
      let replicaIo: ProcIo | null;
      try {
        const replica = await starting;
        readySeconds = replica.startMs / 1000;
        const caughtAt = await waitForPosition(replica, DATABASE, position, 4 * 60 * 60_000, 10);
        caughtUpSeconds = (caughtAt - replica.spawnedAt) / 1000;
        replicaChecksum = (await positionAndChecksum(replica)).checksum;
        replicaIo = procIo(replica.pid);
      } finally {
        replicaReport = replicaMemory.stop();
      }
      const checksumMatch = checksum !== undefined && checksum === replicaChecksum;
      if (!checksumMatch)
        failures.push(
          `${size.label}: the fresh node's checksum ${replicaChecksum ?? '?'} differs from the Primary's ${checksum ?? '?'} at position ${position}`,
        );
      durations.bootstrap = since(phase);

      stopMeter();
      const primaryReport = primaryMemory.stop();
      await cluster.stopNodes();
      const foldersAtEnd = {
        shared: folderBytes(sharedDir).bytes,
        store: folderBytes(storeDir).bytes,
        primary_local: folderBytes(primary.localDir).bytes,
        replica_local: freshNode ? folderBytes(freshNode.localDir).bytes : 0,
      };
      if (log.warnings > 0) warnings.push(`${size.label}: the Primary logged ${log.warnings} warning/error line(s) (primary_log.samples)`);

      return {
        label: size.label,
        target_bytes: size.bytes,
        database_bytes_after_load: databaseAfterLoad,
        database_bytes_at_end: databaseAtEnd,
        load: {
          seconds: loadSeconds,
          requests: loaded.requests,
          payload_bytes: loaded.payload,
          mib_per_s: round(loaded.payload / MIB / loadSeconds, 1),
          written: loadWritten,
          compactions: loadRuns,
        },
        settle_compaction: settle,
        write_load: {
          tx_per_s: round(measured.rps, 1),
          measured: summarize(measured),
          commit,
          transactions,
          accounted_seconds: round((idleAt - windowStart) / 1000, 2),
          written: loadWrittenWindow,
          shared_bytes_per_tx: round(loadWrittenWindow.shared.total / transactions, 1),
          store_bytes_per_tx: round(loadWrittenWindow.store / transactions, 1),
          compactions: windowRuns,
          primary_io: primaryIo,
          rows_acknowledged: acknowledged,
          rows_gained: rowsAfter - rowsBefore,
        },
        forced_compaction: forced,
        bootstrap: {
          position: position.toString(),
          checkpoint_files: checkpoints.length,
          checkpoint_bytes: read.bytes,
          page_cache: dropProblem === undefined ? 'cold' : 'warm',
          resident_after_drop_bytes: resident ?? null,
          plain_read_s: round(read.seconds, 3),
          plain_read_mib_per_s: round(read.bytes / MIB / read.seconds, 1),
          ready_s: round(readySeconds, 3),
          caught_up_s: round(caughtUpSeconds, 3),
          mib_per_s: round(read.bytes / MIB / caughtUpSeconds, 1),
          ratio_to_plain_read: caughtUpSeconds > 0 ? round(read.seconds / caughtUpSeconds, 3) : null,
          checksum_match: checksumMatch,
          replica_io: replicaIo,
        },
        memory: { primary: primaryReport, replica: replicaReport },
        folders_at_end: foldersAtEnd,
        primary_log: { warnings: log.warnings, samples: log.warningSamples },
        folder_scans: meter.cost(),
        durations_s: durations,
      };
    } finally {
      stopMeter();
      primaryMemory.stop();
    }
  } finally {
    await cluster.stopAll();
  }
}

// ---- Goals, tables, entry point --------------------------------------------------------------

function judge(sizes: SizeReport[]): ScaleReport['goals'] {
  const smallest = sizes[0];
  const biggest = sizes.length > 1 ? sizes[sizes.length - 1] : undefined;
  const ratioGoal = (goal: string, value: (size: SizeReport) => number, pass: (ratio: number) => boolean): Goal => {
    if (!smallest || !biggest) return { goal: `${goal} (needs two sizes)`, measured: null, pass: false };
    const base = value(smallest);
    const measured = base > 0 ? round(value(biggest) / base, 3) : value(biggest) === 0 ? 1 : null;
    return { goal, measured, pass: measured !== null && pass(measured) };
  };
  const big = biggest?.label ?? '?';
  const small = smallest?.label ?? '?';
  const last = sizes[sizes.length - 1];
  const rss = sizes
    .flatMap((size) => [size.memory.primary, size.memory.replica])
    .map((memory) => Math.max(memory.hwm_mib ?? 0, memory.peak_rss_mib ?? 0));
  const maxRss = rss.length === 0 ? null : Math.max(...rss);
  return {
    tps: ratioGoal(
      `tx/s at ${big} >= ${SCALE_GOALS.minTpsRatio} x ${small}'s`,
      (size) => size.write_load.tx_per_s,
      (r) => r >= SCALE_GOALS.minTpsRatio,
    ),
    shared_bytes_per_tx: ratioGoal(
      `shared folder bytes/tx at ${big} <= ${SCALE_GOALS.maxBytesPerTxRatio} x ${small}'s`,
      (size) => size.write_load.shared_bytes_per_tx,
      (r) => r <= SCALE_GOALS.maxBytesPerTxRatio,
    ),
    store_bytes_per_tx: ratioGoal(
      `object store bytes/tx at ${big} <= ${SCALE_GOALS.maxBytesPerTxRatio} x ${small}'s`,
      (size) => size.write_load.store_bytes_per_tx,
      (r) => r <= SCALE_GOALS.maxBytesPerTxRatio,
    ),
    bootstrap: {
      goal: `fresh node bootstrap at ${last?.label ?? '?'} >= ${SCALE_GOALS.minBootstrapRatio} x the plain read's speed`,
      measured: last?.bootstrap.ratio_to_plain_read ?? null,
      pass: (last?.bootstrap.ratio_to_plain_read ?? 0) >= SCALE_GOALS.minBootstrapRatio,
    },
    rss: {
      goal: `peak RSS of every node at every size <= ${SCALE_GOALS.maxRssMib} MiB`,
      measured: maxRss,
      pass: maxRss !== null && maxRss <= SCALE_GOALS.maxRssMib,
    },
  };
}

function scaleTable(report: ScaleReport): string {
  const m = report.machine;
  const c = report.config;
  const mib = (bytes: number | null | undefined, digits = 1): string =>
    bytes === null || bytes === undefined ? '-' : formatNumber(bytes / MIB, digits);
  const sec = (ms: number): string => formatNumber(ms / 1000, 1);
  const writes = renderTable(
    [
      { header: 'size' },
      { header: 'db MiB', align: 'right' },
      { header: 'tx/s', align: 'right' },
      { header: 'p99 ms', align: 'right' },
      { header: 'shared B/tx', align: 'right' },
      { header: '(log / ckpt)', align: 'right' },
      { header: 'store B/tx', align: 'right' },
      { header: 'compactions: n, s each', align: 'left' },
      { header: 'settle s', align: 'right' },
      { header: 'forced s', align: 'right' },
      { header: 'cpu% srv/gen/other' },
    ],
    report.sizes.map((size) => {
      const w = size.write_load;
      const perTx = (bytes: number | undefined): string => formatNumber((bytes ?? 0) / w.transactions, 0);
      return [
        size.label,
        mib(size.database_bytes_after_load),
        formatNumber(w.tx_per_s, 0),
        formatNumber(w.measured.p99_ms, 1),
        formatNumber(w.shared_bytes_per_tx, 0),
        `${perTx(w.written.shared.by_area.log)} / ${perTx(w.written.shared.by_area.checkpoints)}`,
        formatNumber(w.store_bytes_per_tx, 0),
        `${w.compactions.count}${w.compactions.count > 0 ? `: ${w.compactions.durations_ms.map(sec).join(', ')}` : ''}`,
        formatNumber(size.settle_compaction.seconds, 1),
        formatNumber(size.forced_compaction.seconds, 1),
        cpuCell(w.measured.cpu),
      ];
    }),
  );
  const boot = renderTable(
    [
      { header: 'size' },
      { header: 'checkpoint MiB', align: 'right' },
      { header: 'files', align: 'right' },
      { header: 'page cache' },
      { header: 'plain read s', align: 'right' },
      { header: 'MiB/s', align: 'right' },
      { header: 'fresh node ready s', align: 'right' },
      { header: 'caught up s', align: 'right' },
      { header: 'MiB/s', align: 'right' },
      { header: 'x plain read', align: 'right' },
      { header: 'checksum' },
    ],
    report.sizes.map((size) => {
      const b = size.bootstrap;
      return [
        size.label,
        mib(b.checkpoint_bytes),
        b.checkpoint_files,
        b.page_cache,
        formatNumber(b.plain_read_s, 2),
        formatNumber(b.plain_read_mib_per_s, 1),
        formatNumber(b.ready_s, 2),
        formatNumber(b.caught_up_s, 2),
        formatNumber(b.mib_per_s, 1),
        formatNumber(b.ratio_to_plain_read, 3),
        b.checksum_match ? 'same' : 'DIFFERENT',
      ];
    }),
  );
  const peak = (memory: MemoryReport, phase: string): string => formatNumber(memory.peak_rss_by_phase_mib[phase], 0);
  const memory = renderTable(
    [
      { header: 'size' },
      { header: 'Primary RSS MiB: load', align: 'right' },
      { header: 'write load', align: 'right' },
      { header: 'compactions', align: 'right' },
      { header: 'HWM', align: 'right' },
      { header: 'fresh node HWM', align: 'right' },
      { header: 'load MiB/s', align: 'right' },
      { header: 'shared MiB', align: 'right' },
      { header: 'store MiB', align: 'right' },
      { header: 'Primary local MiB', align: 'right' },
      { header: 'fresh node local MiB', align: 'right' },
    ],
    report.sizes.map((size) => {
      const p = size.memory.primary;
      const compactionPeak = Math.max(p.peak_rss_by_phase_mib['settle compaction'] ?? 0, p.peak_rss_by_phase_mib['forced compaction'] ?? 0);
      return [
        size.label,
        peak(p, 'load'),
        peak(p, 'write load'),
        formatNumber(compactionPeak, 0),
        formatNumber(p.hwm_mib, 0),
        formatNumber(size.memory.replica.hwm_mib, 0),
        formatNumber(size.load.mib_per_s, 1),
        mib(size.folders_at_end.shared, 0),
        mib(size.folders_at_end.store, 0),
        mib(size.folders_at_end.primary_local, 0),
        mib(size.folders_at_end.replica_local, 0),
      ];
    }),
  );
  const goals = renderTable(
    [{ header: 'goal' }, { header: 'measured', align: 'right' }, { header: 'result' }],
    Object.values(report.goals).map((goal) => [goal.goal, formatNumber(goal.measured, 3), goal.pass ? 'PASS' : 'FAIL']),
  );
  const lines = [
    `Scale benchmark: ${String(c.connections)} connections of single-row INSERTs for ${String(c.duration_s)} s (after ${String(c.warmup_s)} s of warm-up) ` +
      `on databases of ${report.sizes.map((size) => size.label).join(', ')}`,
    `loading: ${LOAD_ROWS_PER_REQUEST} rows of 256 KiB random bytes per request (9.7 MiB bodies), ${LOAD_CONNECTIONS} in flight; ` +
      `compaction after ${String(c.compaction_log_segments)} log segments (or 64 MiB of log), archive timer off`,
    `bytes/tx: bytes written to the folder from the window's start until the compactions it started had finished, over the transactions committed in the window`,
    `settle: the forced compaction right after loading; forced: the one after the load and ${FORCED_AFTER_TRANSACTIONS} more single INSERTs (seconds until POST .../compact answered)`,
    `machine: ${m.cpus} cpus (${m.cpu_model}), node ${m.node_version}, ${m.platform}/${m.arch}, folders on ${m.tmp_filesystem} (${m.tmp_dir}), load ${m.load_average_1m}`,
    '',
    writes,
    '',
    boot,
    '',
    memory,
    '',
    goals,
  ];
  if (report.warnings.length > 0) lines.push('', ...report.warnings.map((warning) => `WARNING: ${warning}`));
  if (report.failures.length > 0) lines.push('', ...report.failures.map((failure) => `FAILED: ${failure}`));
  return lines.join('\n');
}

export async function scaleMain(argv: string[]): Promise<number> {
  const read = readOptions(argv, USAGE, parseArgs);
  if ('exitCode' in read) return read.exitCode;
  const parsed = read.options;
  const options = parsed;
  // A hang must not keep a CI job forever: 2 s per MiB loaded (loading, three compactions, a
  // bootstrap and the plain read each go through the database once), plus the load windows.
  const limitSeconds = Math.round(
    600 + options.sizes.reduce((sum, size) => sum + (size.bytes / MIB) * 2 + options.warmupSeconds + options.durationSeconds + 300, 0),
  );
  const watchdog = setTimeout(() => {
    const message = `benchmark did not finish within ${limitSeconds} s`;
    console.error(`\n${message}; stopping servers`);
    void releaseAll().finally(() => {
      console.log(JSON.stringify({ benchmark: 'scale', ok: false, error: message }));
      process.exit(1);
    });
  }, limitSeconds * 1000);
  watchdog.unref();

  const started = performance.now();
  const machine = machineInfo(benchTmpRoot());
  const warnings: string[] = [];
  const failures: string[] = [];
  const sizes: SizeReport[] = [];
  if (machine.load_average_1m > 1) warnings.push(`load average ${machine.load_average_1m} at start: the machine was not idle`);
  try {
    for (const size of options.sizes) sizes.push(await runSize(size, options, warnings, failures));
  } catch (error) {
    await releaseAll();
    const message = error instanceof Error ? error.message : String(error);
    console.error(`\nbenchmark failed: ${message}`);
    console.log(JSON.stringify({ benchmark: 'scale', ok: false, error: message, sizes, warnings, failures }));
    return 1;
  }
  await releaseAll();
  const goals = judge(sizes);
  const report: ScaleReport = {
    benchmark: 'scale',
    ok: failures.length === 0,
    all_goals_pass: failures.length === 0 && Object.values(goals).every((goal) => goal.pass),
    goals,
    sizes,
    config: {
      sizes: options.sizes.map((size) => size.label),
      connections: options.connections,
      warmup_s: options.warmupSeconds,
      duration_s: options.durationSeconds,
      compaction_log_segments: options.compactionSegments,
      archive_interval_ms: 0,
      load_rows_per_request: LOAD_ROWS_PER_REQUEST,
      load_row_bytes: LOAD_ROW_BYTES,
      load_connections: LOAD_CONNECTIONS,
      insert_payload_bytes: PAYLOAD.length,
      transactions_before_forced_compaction: FORCED_AFTER_TRANSACTIONS,
      folder_scan_every_ms: 200,
      rss_sample_every_ms: 100,
    },
    machine,
    durations_s: { total: since(started) },
    warnings,
    failures,
  };
  console.log(scaleTable(report));
  console.log(JSON.stringify(report));
  if (!report.ok) return 1;
  return options.strict && !report.all_goals_pass ? 2 : 0;
}
