/**
 * Memory benchmark (`npm run bench -- memory`): the peak resident memory (RSS) of a node's process
 * through the work that moves the most bytes (issue 14, item 5: at most 300 MiB at any database
 * size). A Primary and a Replica as `litebase serve` processes on one shared folder (compaction
 * off: compaction and bootstrap from range checkpoints are measured by their own benchmark), and:
 *
 * 1. load: the database grown to --gib GiB with requests of about 10 MiB (the default body limit):
 *    each inserts --rows-per-request rows of --row-kib KiB of random bytes, sent as `$blob`
 *    (base64), from --clients clients at once; the Replica applies as it goes;
 * 2. big transaction: ONE request whose single INSERT ... SELECT writes --big-mib MiB of new pages
 *    (one 4,000-byte random blob per 4 KiB page), timed on the Primary to its answer;
 * 3. replica apply: the Replica, from that answer until it has the same position and checksum;
 * 4. fresh node: a third node with an empty local folder, from its spawn until it has the newest
 *    position (it replays the whole log, the big segment included); its peak since spawn;
 * 5. backups: GET /v1/databases/:db/backup of the whole database from the Primary, then from the
 *    Replica, read by this process and thrown away;
 * 6. restore: POST /v1/databases/:db/restore of the whole database as it is into a new one, on the
 *    Primary, from the shared log (compaction is off: the log holds all of it), checked against the
 *    source's checksum.
 *
 * Each node's RSS is sampled from /proc/PID/status every 100 ms, and its peak (VmHWM) is reset at
 * the start of each phase (/proc/PID/clear_refs), so a phase's peak is exact. Read processes (the
 * node's child processes for looping reads) are separate processes and not counted.
 *
 * stdout: a table, then ONE JSON line, last. Progress on stderr. Exit 0 when the measurements are
 * valid, 1 when not (a failed request, a replica that ends with another checksum, a node that
 * died), 2 for a usage error or, with --strict, a missed goal.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { BenchCluster, positionOf, sleep, type ClusterNode } from './support/cluster.js';
import { releaseAll } from './support/cleanup.js';
import { answerPosition, databaseChecksum, databasePosition, JsonClient } from './support/http-client.js';
import { machineInfo, type MachineInfo } from './support/machine.js';
import { progress, since } from './support/report.js';
import { RssSampler, type PhasePeak } from './support/rss.js';
import { benchTmpRoot } from './support/server.js';
import { formatNumber, renderTable } from './support/table.js';

export const MEMORY_GOALS = { maxPeakRssMiB: 300 } as const;

const DB = 'bench';
const QUERY = `/v1/databases/${DB}/query`;
const MIB = 1024 * 1024;
/** A 4,000-byte blob fills one 4 KiB page of a table b-tree leaf (at most 4,061 bytes of payload fit). */
const BIG_ROW_BYTES = 4000;
const PAGE_SIZE = 4096;

interface MemoryOptions {
  gib: number;
  bigMib: number;
  clients: number;
  rowKib: number;
  rowsPerRequest: number;
  strict: boolean;
  skipFreshNode: boolean;
  /** Only phase 1 (loading): what the HTTP layer's handling of large bodies costs, in a few minutes. */
  loadOnly: boolean;
  /** Node.js flags for every node (before bin/litebase.js), e.g. V8 heap settings. */
  nodeArgs: string[];
  /** LITEBASE_OPTIMIZE_FOR_SIZE for the nodes (off by default, as for any node). */
  optimizeForSize: boolean;
}

const DEFAULTS: MemoryOptions = {
  gib: 2,
  bigMib: 1024,
  clients: 4,
  rowKib: 1024,
  rowsPerRequest: 7,
  strict: false,
  skipFreshNode: false,
  loadOnly: false,
  nodeArgs: [],
  optimizeForSize: false,
};

const USAGE = `usage: npm run bench -- memory [options]

  Peak RSS of a Primary, a Replica and a fresh node while a database is loaded with ~10 MiB
  requests, while one transaction writes --big-mib MiB of pages and the Replica applies it,
  while a fresh node replays the whole log, and while the whole database is downloaded as a
  backup from each node, and while the Primary restores the whole database into a new one. Goal: every peak <= ${MEMORY_GOALS.maxPeakRssMiB} MiB. Needs about 7x --gib of free disk
  under the temp root (LITEBASE_BENCH_TMPDIR); everything is removed at the end.

options:
  --gib N               database size to load first, GiB (default ${DEFAULTS.gib}; 10 for the issue's size)
  --big-mib N           pages written by the one big transaction, MiB (default ${DEFAULTS.bigMib})
  --clients N           loading clients, one ~10 MiB request in flight each (default ${DEFAULTS.clients})
  --row-kib N           size of one loaded row's blob, KiB (default ${DEFAULTS.rowKib})
  --rows-per-request N  rows per load request (default ${DEFAULTS.rowsPerRequest}: 7 x 1 MiB is a 9.3 MiB body in base64,
                        under the default 10 MiB body limit)
  --no-fresh-node       skip the fresh node's replay of the whole log
  --load-only           only the load phase (the rest is skipped)
  --node-arg=FLAG       a Node.js flag for every node, e.g. --node-arg=--max-semi-space-size=1 (repeatable)
  --optimize-for-size   the nodes run with LITEBASE_OPTIMIZE_FOR_SIZE=true (V8's --optimize-for-size)
  --strict              exit 2 when a goal is missed`;

function parseArgs(argv: string[]): MemoryOptions | string {
  const options: MemoryOptions = { ...DEFAULTS, nodeArgs: [] };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--strict') {
      options.strict = true;
      continue;
    }
    if (flag === '--no-fresh-node') {
      options.skipFreshNode = true;
      continue;
    }
    if (flag === '--load-only') {
      options.loadOnly = true;
      continue;
    }
    if (flag === '--optimize-for-size') {
      options.optimizeForSize = true;
      continue;
    }
    if (flag?.startsWith('--node-arg=')) {
      options.nodeArgs.push(flag.slice('--node-arg='.length));
      continue;
    }
    const raw = argv[i + 1];
    const value = Number(raw);
    const positive = raw !== undefined && Number.isFinite(value) && value > 0;
    const positiveInt = positive && Number.isInteger(value);
    if (flag === '--gib' && positive) options.gib = value;
    else if (flag === '--big-mib' && positiveInt) options.bigMib = value;
    else if (flag === '--clients' && positiveInt) options.clients = value;
    else if (flag === '--row-kib' && positiveInt) options.rowKib = value;
    else if (flag === '--rows-per-request' && positiveInt) options.rowsPerRequest = value;
    else return `bad option "${flag ?? ''}"${raw === undefined ? '' : ` ${raw}`}`;
    i++;
  }
  return options;
}

interface PhaseRow {
  phase: string;
  node: string;
  /** RSS at the start of the phase: memory earlier phases left resident counts in its peak too. */
  start_mib: number | null;
  peak_mib: number | null;
  end_mib: number | null;
  /** Whether the kernel's peak (VmHWM) was reset for the phase; else only the samples counted. */
  exact: boolean;
  seconds: number;
  detail: string;
}

interface MemoryReport {
  benchmark: 'memory';
  ok: boolean;
  all_goals_pass: boolean;
  goal_max_peak_rss_mib: number;
  max_peak_rss_mib: number | null;
  options: Omit<MemoryOptions, 'strict'>;
  phases: PhaseRow[];
  idle_rss_mib: Record<string, number | null>;
  database_bytes: number;
  durations: Record<string, number>;
  failures: string[];
  warnings: string[];
  machine: MachineInfo;
}

export async function runMemoryCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    console.log(USAGE);
    return 0;
  }
  const parsed = parseArgs(argv);
  if (typeof parsed === 'string') {
    console.error(`${parsed}\n\n${USAGE}`);
    return 2;
  }
  const options = parsed;
  // A generous ceiling: ~20 MiB/s of loading on a busy 2-core machine, plus the replays and downloads.
  const totalMib = options.gib * 1024 + options.bigMib;
  const limitSeconds = Math.round(600 + totalMib / 4);
  const watchdog = setTimeout(() => {
    const message = `benchmark did not finish within ${limitSeconds} s`;
    console.error(`\n${message}; stopping processes`);
    void releaseAll().finally(() => {
      console.log(JSON.stringify({ benchmark: 'memory', ok: false, error: message }));
      process.exit(1);
    });
  }, limitSeconds * 1000);
  watchdog.unref();
  try {
    const report = await runMemoryBenchmark(options);
    await releaseAll();
    console.log(renderReport(report));
    console.log('');
    console.log(JSON.stringify(report));
    if (!report.ok) return 1;
    return options.strict && !report.all_goals_pass ? 2 : 0;
  } catch (error) {
    await releaseAll();
    const message = error instanceof Error ? error.message : String(error);
    console.error(`\nbenchmark failed: ${message}`);
    console.log(JSON.stringify({ benchmark: 'memory', ok: false, error: message }));
    return 1;
  }
}

async function runMemoryBenchmark(options: MemoryOptions): Promise<MemoryReport> {
  const machine = machineInfo(benchTmpRoot());
  const warnings: string[] = [];
  const failures: string[] = [];
  const durations: Record<string, number> = {};
  const phases: PhaseRow[] = [];
  if (machine.load_average_1m > 0.5 * machine.cpus) {
    warnings.push(`the 1-minute load average was ${machine.load_average_1m} at the start (${machine.cpus} cpus): other work was running`);
  }
  const started = performance.now();
  const cluster = new BenchCluster(
    randomBytes(16).toString('hex'),
    {
      LITEBASE_COMPACTION_LOG_BYTES: '0',
      LITEBASE_COMPACTION_LOG_SEGMENTS: '0',
      LITEBASE_ARCHIVE_INTERVAL_MS: '0',
      LITEBASE_OPTIMIZE_FOR_SIZE: String(options.optimizeForSize),
    },
    undefined,
  );
  // The big transaction is one statement: it must not meet the statement time limit (nor the watchdog).
  const nodeArgs = ['--statement-timeout-ms', '3600000'];
  try {
    progress('starting the Primary and a Replica');
    const first = await cluster.start('n1', nodeArgs, { nodeArgs: options.nodeArgs });
    const primary = await cluster.primary(first);
    await expectStatus(primary.client.request('POST', '/v1/databases', { name: DB }), 201, 'create database');
    await expectStatus(
      primary.client.request('POST', QUERY, {
        statements: [
          { sql: 'CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)' },
          { sql: 'CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB)' },
        ],
      }),
      200,
      'create tables',
    );
    const replica = await cluster.start('n2', nodeArgs, { nodeArgs: options.nodeArgs });
    const idle = { primary: rssNow(primary), replica: rssNow(replica) };
    const samplers = { primary: samplerOf(primary), replica: samplerOf(replica) };

    // 1. Loading with ~10 MiB requests.
    let phase = performance.now();
    const target = Math.round(options.gib * 1024 * MIB);
    progress(
      `load: ${formatNumber(options.gib, 1)} GiB in requests of ${options.rowsPerRequest} x ${options.rowKib} KiB rows, ${options.clients} clients`,
    );
    samplers.primary.start();
    samplers.replica.start();
    const loaded = await load(primary, options, target);
    const afterLoad = await waitForSameState(primary, replica, 600_000);
    const loadSeconds = since(phase);
    phases.push(
      row(
        'load (~10 MiB requests)',
        'primary',
        samplers.primary.stop(),
        loadSeconds,
        `${formatNumber(loaded.bytes / MIB)} MiB in ${loaded.requests} requests, ${formatNumber(loaded.bytes / MIB / loadSeconds, 1)} MiB/s`,
      ),
      row('load (~10 MiB requests)', 'replica', samplers.replica.stop(), loadSeconds, `applied up to position ${afterLoad.position}`),
    );
    durations.load = loadSeconds;
    let databaseBytes = 0;

    if (!options.loadOnly) {
      // 2 and 3. One transaction of --big-mib MiB of pages; the Replica applies it.
      const rows = Math.ceil((options.bigMib * MIB) / PAGE_SIZE);
      progress(`big transaction: ${rows} rows of ${BIG_ROW_BYTES} random bytes (${options.bigMib} MiB of pages) in one INSERT`);
      phase = performance.now();
      samplers.primary.start();
      samplers.replica.start();
      const answer = await primary.client.request(
        'POST',
        QUERY,
        {
          statements: [
            {
              sql: 'WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ?) INSERT INTO big(b) SELECT randomblob(?) FROM s',
              params: [rows, BIG_ROW_BYTES],
            },
          ],
        },
        3_600_000,
      );
      if (answer.status !== 200) throw new Error(`big transaction: ${answer.status} ${answer.text.slice(0, 300)}`);
      const bigPosition = answerPosition(answer.body);
      const bigSeconds = since(phase);
      phases.push(
        row(
          'one big transaction',
          'primary',
          samplers.primary.stop(),
          bigSeconds,
          `${options.bigMib} MiB of pages, position ${bigPosition ?? '?'}`,
        ),
      );
      const applyStart = performance.now();
      const afterBig = await waitForSameState(primary, replica, 900_000);
      phases.push(
        row(
          'replica applies it',
          'replica',
          samplers.replica.stop(),
          since(phase),
          `same checksum ${afterBig.checksum} at position ${afterBig.position} ${formatNumber((performance.now() - applyStart) / 1000, 1)} s after the answer`,
        ),
      );
      durations.big_transaction = bigSeconds;
      durations.replica_apply = since(applyStart);
      databaseBytes = await databaseSize(primary);

      // 4. A fresh node replays the whole log.
      if (!options.skipFreshNode) {
        progress('fresh node: replaying the whole log');
        phase = performance.now();
        const fresh = await cluster.start('n3', nodeArgs, { readyTimeoutMs: 1_800_000, nodeArgs: options.nodeArgs });
        const freshSampler = samplerOf(fresh);
        freshSampler.start({ sinceStart: true });
        const state = await waitForSameState(primary, fresh, 1_800_000);
        const seconds = since(phase);
        phases.push(
          row(
            'fresh node replays the log',
            'fresh',
            freshSampler.stop(),
            seconds,
            `${formatNumber(databaseBytes / MIB)} MiB database at position ${state.position} (peak since spawn)`,
          ),
        );
        durations.fresh_node = seconds;
        await fresh.stop();
      }

      // 5. Backups of the whole database.
      for (const [name, node] of [
        ['primary', primary],
        ['replica', replica],
      ] as const) {
        progress(`backup from the ${name}`);
        phase = performance.now();
        const sampler = samplers[name];
        sampler.start();
        const bytes = await downloadBackup(node);
        const seconds = since(phase);
        phases.push(
          row(
            `backup download`,
            name,
            sampler.stop(),
            seconds,
            `${formatNumber(bytes / MIB)} MiB, ${formatNumber(bytes / MIB / seconds, 1)} MiB/s`,
          ),
        );
        if (bytes !== databaseBytes) failures.push(`the backup from the ${name} has ${bytes} bytes, the database ${databaseBytes}`);
        durations[`backup_${name}`] = seconds;
      }

      // 6. A restore of the whole database into a new one, on the Primary, from the shared log.
      progress('restore on the Primary');
      phase = performance.now();
      samplers.primary.start();
      const restored = await restoreWhole(primary);
      const restoreSeconds = since(phase);
      phases.push(
        row(
          'restore',
          'primary',
          samplers.primary.stop(),
          restoreSeconds,
          `${formatNumber(restored.bytes / MIB)} MiB of log to position ${restored.position}, ${formatNumber((restored.pages * 4096) / MIB)} MiB of pages`,
        ),
      );
      if (restored.problem) failures.push(restored.problem);
      durations.restore = restoreSeconds;
    } else {
      databaseBytes = await databaseSize(primary);
    }

    for (const node of [primary, replica]) {
      if (!node.running) failures.push(`node ${node.id} died`);
      const log = node.logSummary(3);
      // The banner can come after the node answered its first readiness probe.
      log.samples = log.samples.filter((line) => !line.includes(' listening on '));
      log.lines = log.samples.length === 0 ? 0 : log.lines;
      if (log.lines > 0) warnings.push(`${node.id} printed ${log.lines} warning or error lines, e.g. ${log.samples.join(' | ')}`);
    }
    await cluster.stopAll();
    durations.total = since(started);
    const peaks = phases.map((phase) => phase.peak_mib).filter((peak): peak is number => peak !== null);
    const maxPeak = peaks.length > 0 ? Math.max(...peaks) : null;
    return {
      benchmark: 'memory',
      ok: failures.length === 0,
      all_goals_pass: maxPeak !== null && maxPeak <= MEMORY_GOALS.maxPeakRssMiB,
      goal_max_peak_rss_mib: MEMORY_GOALS.maxPeakRssMiB,
      max_peak_rss_mib: maxPeak,
      options: {
        gib: options.gib,
        bigMib: options.bigMib,
        clients: options.clients,
        rowKib: options.rowKib,
        rowsPerRequest: options.rowsPerRequest,
        skipFreshNode: options.skipFreshNode,
        loadOnly: options.loadOnly,
        nodeArgs: options.nodeArgs,
        optimizeForSize: options.optimizeForSize,
      },
      phases,
      idle_rss_mib: idle,
      database_bytes: databaseBytes,
      durations,
      failures,
      warnings,
      machine,
    };
  } finally {
    await cluster.stopAll();
  }
}

function samplerOf(node: ClusterNode): RssSampler {
  if (node.pid === undefined) throw new Error(`node ${node.id} has no process id`);
  return new RssSampler(node.pid, 100);
}

function rssNow(node: ClusterNode): number | null {
  const sampler = samplerOf(node);
  sampler.start({ sinceStart: true });
  return sampler.stop()?.endMiB ?? null;
}

function row(phase: string, node: string, peak: PhasePeak | undefined, seconds: number, detail: string): PhaseRow {
  return {
    phase,
    node,
    start_mib: peak?.startMiB ?? null,
    peak_mib: peak?.peakMiB ?? null,
    end_mib: peak?.endMiB ?? null,
    exact: peak?.exact ?? false,
    seconds,
    detail,
  };
}

async function expectStatus(answer: Promise<{ status: number; text: string }>, status: number, step: string): Promise<void> {
  const got = await answer;
  if (got.status !== status) throw new Error(`${step}: ${got.status} ${got.text.slice(0, 300)}`);
}

/** `clients` loops, each sending one ~10 MiB INSERT request at a time, until `target` bytes of rows were acknowledged. */
async function load(primary: ClusterNode, options: MemoryOptions, target: number): Promise<{ bytes: number; requests: number }> {
  const rowBytes = options.rowKib * 1024;
  const requestBytes = rowBytes * options.rowsPerRequest;
  const total = Math.ceil(target / requestBytes);
  const sql = `INSERT INTO t(b) VALUES ${Array.from({ length: options.rowsPerRequest }, () => '(?)').join(', ')}`;
  let sent = 0;
  let done = 0;
  let lastReport = performance.now();
  const loop = async (): Promise<void> => {
    const client = new JsonClient(primary.url, primary.key, 1);
    try {
      while (sent < total) {
        sent += 1;
        const params = Array.from({ length: options.rowsPerRequest }, () => ({ $blob: randomBytes(rowBytes).toString('base64') }));
        const answer = await client.request('POST', QUERY, { statements: [{ sql, params }] }, 300_000);
        if (answer.status !== 200) throw new Error(`load request: ${answer.status} ${answer.text.slice(0, 300)}`);
        done += 1;
        if (performance.now() - lastReport > 10_000) {
          lastReport = performance.now();
          progress(`  ${formatNumber((done * requestBytes) / MIB)} of ${formatNumber(target / MIB)} MiB`);
        }
      }
    } finally {
      client.close();
    }
  };
  await Promise.all(Array.from({ length: options.clients }, () => loop()));
  return { bytes: done * requestBytes, requests: done };
}

interface DatabaseState {
  position: bigint;
  checksum: string;
}

async function stateOf(node: ClusterNode): Promise<DatabaseState | undefined> {
  const answer = await node.client.request('GET', `/v1/databases/${DB}`, undefined, 30_000).catch(() => undefined);
  if (answer?.status !== 200) return undefined;
  const position = databasePosition(answer.body);
  const checksum = databaseChecksum(answer.body);
  return position === undefined || checksum === undefined ? undefined : { position, checksum };
}

/** Waits until `node` has the Primary's position, then checks that it has the Primary's checksum too. */
async function waitForSameState(primary: ClusterNode, node: ClusterNode, timeoutMs: number): Promise<DatabaseState> {
  const wanted = await stateOf(primary);
  if (!wanted) throw new Error('the Primary did not report its position');
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    node.assertRunning();
    const position = await positionOf(node, DB);
    if (position !== undefined && position >= wanted.position) break;
    if (performance.now() > deadline)
      throw new Error(`node ${node.id} did not reach position ${wanted.position} within ${timeoutMs} ms (at ${position ?? '?'})`);
    await sleep(50);
  }
  const state = await stateOf(node);
  if (!state || state.position !== wanted.position || state.checksum !== wanted.checksum) {
    throw new Error(
      `node ${node.id} has ${state?.position ?? '?'} / ${state?.checksum ?? '?'}, the Primary ${wanted.position} / ${wanted.checksum}`,
    );
  }
  return state;
}

/** The database file's size: page_count x page_size, through the Primary. */
async function databaseSize(primary: ClusterNode): Promise<number> {
  const answer = await primary.client.request('POST', QUERY, {
    statements: [{ sql: 'SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()' }],
  });
  const rows = (answer.body as { results?: Array<{ rows?: unknown[][] }> } | undefined)?.results?.[0]?.rows;
  const value = rows?.[0]?.[0];
  if (typeof value !== 'number') throw new Error(`database size: ${answer.status} ${answer.text.slice(0, 300)}`);
  return value;
}

/**
 * Restores the database as it is now into a new one on `primary` (POST /v1/databases/:db/restore,
 * then its job polled until done), and checks that the restored pages sum to the source's checksum.
 */
async function restoreWhole(primary: ClusterNode): Promise<{ position: string; bytes: number; pages: number; problem?: string }> {
  const source = await stateOf(primary);
  if (!source) throw new Error('the Primary did not report its position before the restore');
  const position = source.position.toString();
  const started = await primary.client.request('POST', `/v1/databases/${DB}/restore`, { position, target: `${DB}-restored` });
  if (started.status !== 202) throw new Error(`restore: ${started.status} ${started.text.slice(0, 300)}`);
  const id = (started.body as { restore?: { id?: string } }).restore?.id;
  if (id === undefined) throw new Error(`restore: no job id in ${started.text.slice(0, 300)}`);
  for (;;) {
    await sleep(250);
    const answer = await primary.client.request('GET', `/v1/databases/${DB}/restores/${id}`);
    const job = (answer.body as { restore?: RestoreJob }).restore;
    if (answer.status !== 200 || job === undefined) throw new Error(`restore job: ${answer.status} ${answer.text.slice(0, 300)}`);
    if (job.status === 'running') continue;
    if (job.status !== 'succeeded' || job.result === undefined) {
      throw new Error(`restore job ${job.status}: ${job.error?.code ?? ''} ${job.error?.message ?? ''}`);
    }
    const { result } = job;
    const problem =
      result.checksum === source.checksum && result.position === position
        ? undefined
        : `the restore reached position ${result.position} with checksum ${result.checksum}, the source is at ${position} with ${source.checksum}`;
    return { position: result.position, bytes: result.bytes, pages: result.pages, ...(problem ? { problem } : {}) };
  }
}

interface RestoreJob {
  status: 'running' | 'succeeded' | 'failed';
  result?: { position: string; checksum: string; pages: number; bytes: number };
  error?: { code: string; message: string };
}

/** GET the backup, count its bytes, keep none. */
function downloadBackup(node: ClusterNode): Promise<number> {
  const url = new URL(`/v1/databases/${DB}/backup`, node.url);
  return new Promise((resolve, reject) => {
    const request = http.get(url, { headers: { authorization: `Bearer ${node.key}` } }, (response) => {
      if (response.statusCode !== 200) {
        response.resume();
        reject(new Error(`backup from ${node.id}: status ${response.statusCode}`));
        return;
      }
      let bytes = 0;
      response.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
      response.on('error', reject);
      response.on('end', () => resolve(bytes));
    });
    request.setTimeout(1_800_000, () => request.destroy(new Error(`backup from ${node.id} timed out`)));
    request.on('error', reject);
  });
}

function renderReport(report: MemoryReport): string {
  const table = renderTable(
    [
      { header: 'phase' },
      { header: 'node' },
      { header: 'start RSS MiB', align: 'right' },
      { header: 'peak RSS MiB', align: 'right' },
      { header: 'end RSS MiB', align: 'right' },
      { header: 's', align: 'right' },
      { header: 'detail' },
    ],
    report.phases.map((phase) => [
      phase.phase,
      phase.node,
      phase.start_mib === null ? null : formatNumber(phase.start_mib, 1),
      phase.peak_mib === null ? null : `${formatNumber(phase.peak_mib, 1)}${phase.exact ? '' : ' (sampled)'}`,
      phase.end_mib === null ? null : formatNumber(phase.end_mib, 1),
      formatNumber(phase.seconds, 1),
      phase.detail,
    ]),
  );
  const lines = [
    table,
    '',
    `idle RSS after start: primary ${report.idle_rss_mib.primary ?? '-'} MiB, replica ${report.idle_rss_mib.replica ?? '-'} MiB; database ${formatNumber(report.database_bytes / MIB)} MiB`,
    `goal: every peak <= ${MEMORY_GOALS.maxPeakRssMiB} MiB: ${report.all_goals_pass ? 'PASS' : 'FAIL'} (highest ${report.max_peak_rss_mib ?? '-'} MiB)`,
  ];
  for (const warning of report.warnings) lines.push(`warning: ${warning}`);
  for (const failure of report.failures) lines.push(`FAILURE: ${failure}`);
  return lines.join('\n');
}
