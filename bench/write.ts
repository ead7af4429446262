import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { track } from './support/cleanup.js';
import {
  GET_CEILING_LABEL,
  HTTP_CEILING_ROUTE,
  measureGetCeiling,
  POST_CEILING_LABEL,
  postCeilingSpec,
  type Ceilings,
  type LoadShape,
} from './support/ceiling.js';
import { bodyBytes, errorRateProblem, prepareBodies, type LoadResult } from './support/load.js';
import { measureSideBySide } from './support/side-by-side.js';
import { machineInfo, mountTypeOf, type MachineInfo } from './support/machine.js';
import { commitStats, scrapeMetrics, type CommitStats } from './support/metrics.js';
import { rawSqliteInserts, type RawSqliteResult } from './support/raw-sqlite.js';
import {
  cpuCell,
  cpuWarnings,
  notes,
  progress,
  ratio,
  round,
  since,
  summarize,
  type BenchOptions,
  type BenchOutcome,
  type GoalSummary,
  type LoadSummary,
} from './support/report.js';
import { BenchServer, benchTmpRoot, makeTempDir, type ServerLogSummary } from './support/server.js';
import { countRows, createBenchTable } from './support/sql.js';
import { formatNumber, renderTable, type Cell } from './support/table.js';

/** Goals from the issues (5; 18 for the batch; 15 for the data dir on a shared file system). */
export const WRITE_GOALS = {
  minRatioToCeiling: 0.7,
  minRatioToNoGroupCommit: 5,
  minBatchRatioToSingle: 3,
  minSharedDirRatioToLocal: 0.5,
} as const;

/** ~100 bytes of TEXT per row: a small but not empty row, the same for HTTP and raw SQLite. */
const PAYLOAD = 'litebase-bench-payload-'.padEnd(100, 'x');
const RAW_SECONDS = 3;
/** INSERTs per request of the batch load, one transaction (mode "transaction"), one durable commit. */
const BATCH_STATEMENTS = 10;
/**
 * Fewer prepared batch bodies than single ones: autocannon keeps a copy of every body and its
 * request buffer per connection (64 x 200 x ~1.7 KB twice is about 45 MB; 1000 would be 220 MB).
 */
const BATCH_PREPARED = 200;

export interface WriteReport {
  benchmark: 'write';
  /** `POST /v1/ping` with the INSERT load's headers and bodies: the ceiling the goals use. */
  http_ceiling_rps: number;
  http_ceiling_route: typeof HTTP_CEILING_ROUTE;
  /** `GET /healthz`, for reference only. */
  http_ceiling_get_rps: number;
  litebase_tps: number;
  raw_sqlite_tps: number;
  no_group_commit_tps: number;
  p50_ms: number;
  p99_ms: number;
  ratio_to_ceiling: number | null;
  /** litebase_tps / http_ceiling_get_rps, for reference only. */
  ratio_to_get_ceiling: number | null;
  ratio_to_no_group_commit: number | null;
  pass_ratio_to_ceiling: boolean;
  pass_ratio_to_no_group_commit: boolean;
  /** Whether the ceiling goal would pass against the GET ceiling; not part of all_goals_pass. */
  would_pass_ratio_to_get_ceiling: boolean;
  /** INSERTs per request of the batch load. */
  batch_statements: number;
  /** Batch requests answered 200 per second (each one transaction of `batch_statements` INSERTs). */
  batch_requests_per_s: number;
  /** batch_statements x batch_requests_per_s: rows made durable per second. */
  batch_rows_per_s: number;
  batch_p50_ms: number;
  batch_p99_ms: number;
  /** `POST /v1/ping` with the batch load's headers and bodies, for reference. */
  batch_http_ceiling_rps: number;
  /** batch_requests_per_s / batch_http_ceiling_rps, for reference. */
  batch_ratio_to_ceiling: number | null;
  /** batch_rows_per_s / litebase_tps (single-INSERT rows per second, same server, same run). */
  batch_ratio_to_single: number | null;
  pass_batch_ratio_to_single: boolean;
  /**
   * With --shared-dir: the same single-INSERT load (group commit) on a server whose data dir is on
   * the shared folder and whose local dir is on the local disk, beside litebase_tps (data dir on
   * the temp root). Absent without --shared-dir.
   */
  shared_dir?: {
    dir: string;
    filesystem: string;
    litebase_tps: number;
    p50_ms: number;
    p99_ms: number;
    /** shared_dir.litebase_tps / litebase_tps. */
    ratio_to_local: number | null;
    pass_ratio_to_local: boolean;
  };
  all_goals_pass: boolean;
  goals: {
    ratio_to_ceiling_min: number;
    ratio_to_no_group_commit_min: number;
    batch_ratio_to_single_min: number;
    /** Only judged with --shared-dir. */
    shared_dir_ratio_to_local_min: number;
  };
  raw_sqlite_settings: Omit<RawSqliteResult, 'tps' | 'inserts' | 'seconds'>;
  /** The same raw loop with synchronous=FULL (an fsync per commit), for comparison. */
  raw_sqlite_full_tps: number;
  details: {
    http_ceiling: LoadSummary;
    http_ceiling_get: LoadSummary;
    litebase: LoadSummary & { commit: CommitStats; rows_in_table: number; acknowledged_inserts: number };
    no_group_commit: LoadSummary & { commit: CommitStats; rows_in_table: number; acknowledged_inserts: number };
    batch_http_ceiling: LoadSummary;
    /** rows_before: rows in the table when the batch warm-up started; acknowledged_rows: 10 x the 200s. */
    batch: LoadSummary & { commit: CommitStats; rows_before: number; rows_in_table: number; acknowledged_rows: number };
    shared_dir?: LoadSummary & { commit: CommitStats; rows_in_table: number; acknowledged_inserts: number };
    raw_sqlite: RawSqliteResult;
    raw_sqlite_full: RawSqliteResult;
  };
  /** Lines the servers printed at --log-level warn (warnings and errors) during the run. */
  server_log_lines: { litebase: number; no_group_commit: number; shared_dir?: number; samples: string[] };
  config: {
    connections: number;
    warmup_s: number;
    measure_s: number;
    raw_sqlite_s: number;
    payload_bytes: number;
    /** Distinct prepared request bodies each connection cycles through (the same for the ceiling). */
    prepared_requests: number;
    request_body_bytes: { min: number; max: number };
    batch_prepared_requests: number;
    batch_request_body_bytes: { min: number; max: number };
  };
  machine: MachineInfo;
  durations_s: Record<string, number>;
  warnings: string[];
  failures: string[];
}

/**
 * The INSERT bodies, prepared once per run: `a` is 1..1000 (each connection cycles through them,
 * so values repeat; nothing is indexed or unique on `a`), `b` the 100-byte payload.
 */
const INSERT_BODIES = prepareBodies(
  (index) => `{"statements":[{"sql":"INSERT INTO t(a,b) VALUES (?,?)","params":[${index + 1},"${PAYLOAD}"]}]}`,
);

/**
 * The batch bodies: BATCH_STATEMENTS single-row INSERTs of the same shape as INSERT_BODIES in one
 * request, mode "transaction": all or nothing, one commit, one durable position.
 */
const BATCH_BODIES = prepareBodies((index) => {
  const statements = Array.from(
    { length: BATCH_STATEMENTS },
    (_, k) => `{"sql":"INSERT INTO t(a,b) VALUES (?,?)","params":[${index * BATCH_STATEMENTS + k + 1},"${PAYLOAD}"]}`,
  );
  return `{"statements":[${statements.join(',')}],"mode":"transaction"}`;
}, BATCH_PREPARED);

/** The INSERT load against `server` (single INSERTs unless `bodies` says else); the POST ceiling is this with the path changed. */
function insertLoad(server: BenchServer, options: BenchOptions, bodies: readonly string[] = INSERT_BODIES): LoadShape {
  return {
    url: server.url,
    method: 'POST',
    path: '/v1/databases/bench/query',
    headers: { authorization: `Bearer ${server.key}` },
    bodies,
    connections: options.connections,
    ...(server.pid === undefined ? {} : { serverPid: server.pid }),
  };
}

interface InsertRun {
  measured: LoadResult;
  commit: CommitStats;
  rowsBefore: number;
  rowsInTable: number;
  /** Rows acknowledged: requests answered 200 (warm-up and measured) x rows per request. */
  acknowledged: number;
}

/**
 * Warm-up, then the measured INSERT window bracketed by two /metrics scrapes (so commit statistics
 * cover the measured window only), then a row count: every acknowledged INSERT must be in the table.
 * `bodies` of `rowsPerRequest` INSERTs each (default: the single-INSERT bodies). With `ceilingTitle`,
 * the POST ceiling of the same bodies is warmed up and measured too, in windows alternating with the
 * INSERT windows (as the read benchmark does): whatever else runs on the machine, or a drift of its
 * speed, falls on both alike instead of on whichever ran at the wrong moment. /v1/ping commits
 * nothing, so the commit statistics are still the INSERT windows'.
 */
async function measureInserts(
  server: BenchServer,
  options: BenchOptions,
  title: string,
  failures: string[],
  bodies: readonly string[] = INSERT_BODIES,
  rowsPerRequest = 1,
  ceilingTitle?: string,
): Promise<InsertRun & { ceiling?: LoadResult }> {
  const rowsBefore = await countRows(server, 'bench', 't');
  const load = { ...insertLoad(server, options, bodies), title };
  const specs = ceilingTitle === undefined ? [load] : [postCeilingSpec(load, ceilingTitle), load];
  let before: Awaited<ReturnType<typeof scrapeMetrics>> | undefined;
  const { warmups, measured: results } = await measureSideBySide(specs, options.warmupSeconds, options.measureSeconds, async () => {
    server.assertRunning();
    before = await scrapeMetrics(server);
  });
  if (before === undefined) throw new Error('the metrics were not scraped before the measured windows');
  server.assertRunning();
  const after = await scrapeMetrics(server);
  const measured = results[results.length - 1];
  if (measured === undefined) throw new Error('runInterleaved gave fewer results than loads');
  for (const result of [...warmups, ...results]) {
    const problem = errorRateProblem(result);
    if (problem) failures.push(problem);
  }
  const rowsInTable = await countRows(server, 'bench', 't');
  const acknowledged = ((warmups[warmups.length - 1]?.ok ?? 0) + measured.ok) * rowsPerRequest;
  // More rows than acknowledgements is expected (requests in flight when the load stopped);
  // fewer means an INSERT answered 200 and was lost.
  if (rowsInTable - rowsBefore < acknowledged) {
    failures.push(`${title}: ${acknowledged} INSERTs answered 200 but the table gained ${rowsInTable - rowsBefore} rows`);
  }
  const run = { measured, commit: commitStats(before, after), rowsBefore, rowsInTable, acknowledged };
  return specs.length > 1 ? { ...run, ceiling: results[0] } : run;
}

export async function runWriteBenchmark(options: BenchOptions): Promise<BenchOutcome<WriteReport>> {
  const started = performance.now();
  const durations: Record<string, number> = {};
  const failures: string[] = [];
  const warnings: string[] = [];
  const machine = machineInfo(benchTmpRoot());
  const rootKey = randomBytes(24).toString('hex');

  // 1. Raw SQLite first, while nothing else runs: it blocks this process and wants the disk alone.
  let phase = performance.now();
  const rawDir = makeTempDir('litebase-bench-raw-');
  const removeRawDir = (): void => rmSync(rawDir, { recursive: true, force: true });
  const untrackRaw = track({ release: async () => removeRawDir(), releaseNow: removeRawDir });
  progress(`raw better-sqlite3 inserts (WAL, synchronous=NORMAL): ${RAW_SECONDS} s`);
  const rawNormal = rawSqliteInserts(rawDir, 'NORMAL', RAW_SECONDS, PAYLOAD);
  progress(`raw better-sqlite3 inserts (WAL, synchronous=FULL): ${RAW_SECONDS} s`);
  const rawFull = rawSqliteInserts(rawDir, 'FULL', RAW_SECONDS, PAYLOAD);
  removeRawDir();
  untrackRaw();
  durations.raw_sqlite = since(phase);

  // 2. Litebase with group commit: the HTTP ceiling and the INSERT load against the same process.
  phase = performance.now();
  progress('starting litebase (group commit on)');
  const server = await BenchServer.start({ label: 'litebase', groupCommit: true, rootKey });
  let ceilings: Ceilings;
  let litebase: InsertRun;
  let batchCeiling: LoadResult;
  let batch: InsertRun;
  let litebaseLog: ServerLogSummary;
  try {
    durations.litebase_start = since(phase);
    await createBenchTable(server);

    phase = performance.now();
    const get = await measureGetCeiling(server, insertLoad(server, options), options, failures);
    durations.http_ceiling_get = since(phase);

    // The POST ceiling and the INSERTs it is compared with, in alternating windows.
    phase = performance.now();
    const singles = await measureInserts(
      server,
      options,
      'Litebase INSERT (group commit)',
      failures,
      INSERT_BODIES,
      1,
      'HTTP ceiling (POST /v1/ping)',
    );
    durations.http_ceiling_and_insert = since(phase);
    if (singles.ceiling === undefined) throw new Error('the INSERT run measured no ceiling');
    ceilings = { post: singles.ceiling, get };
    litebase = singles;

    // 2b. Batches of BATCH_STATEMENTS INSERTs per request on the same server, beside their own ceiling.
    phase = performance.now();
    const batches = await measureInserts(
      server,
      options,
      `Litebase batch of ${BATCH_STATEMENTS} INSERTs (group commit)`,
      failures,
      BATCH_BODIES,
      BATCH_STATEMENTS,
      `HTTP ceiling (POST /v1/ping, ${BATCH_STATEMENTS}-INSERT batch bodies)`,
    );
    durations.batch_http_ceiling_and_insert = since(phase);
    if (batches.ceiling === undefined) throw new Error('the batch run measured no ceiling');
    batchCeiling = batches.ceiling;
    batch = batches;
    litebaseLog = server.logSummary();
  } finally {
    await server.stop();
  }

  // 2c. With --shared-dir: the single-INSERT load again, on a server whose data dir (the log) is on
  //     the shared folder and whose local dir is on the local disk, beside the run above.
  let shared: { run: InsertRun; log: ServerLogSummary; dir: string } | undefined;
  const sharedRoot = options.sharedDirs?.[0];
  if (sharedRoot !== undefined) {
    phase = performance.now();
    progress(`starting litebase (group commit on) with its data dir under ${sharedRoot}`);
    const onShared = await BenchServer.start({ label: 'shared-dir', groupCommit: true, rootKey, sharedDir: sharedRoot });
    try {
      await createBenchTable(onShared);
      const run = await measureInserts(onShared, options, 'Litebase INSERT (group commit), data dir on --shared-dir', failures);
      shared = { run, log: onShared.logSummary(), dir: sharedRoot };
    } finally {
      await onShared.stop();
    }
    durations.shared_dir_insert = since(phase);
  }

  // 3. Litebase without group commit, in a fresh process and directory.
  phase = performance.now();
  progress('starting litebase (group commit off)');
  const plain = await BenchServer.start({ label: 'no-group-commit', groupCommit: false, rootKey });
  let noGroupCommit: InsertRun;
  let plainLog: ServerLogSummary;
  try {
    await createBenchTable(plain);
    noGroupCommit = await measureInserts(plain, options, 'Litebase INSERT (no group commit)', failures);
    plainLog = plain.logSummary();
  } finally {
    await plain.stop();
  }
  durations.no_group_commit = since(phase);

  if (noGroupCommit.commit.avg_group_size !== null && noGroupCommit.commit.avg_group_size > 1.5) {
    warnings.push(
      `the no-group-commit server still grouped ${noGroupCommit.commit.avg_group_size.toFixed(1)} transactions per segment: ` +
        '--no-group-commit seems to have had no effect',
    );
  }
  if (litebase.commit.avg_group_size !== null && litebase.commit.avg_group_size < 1.5) {
    warnings.push(
      `group commit carried only ${litebase.commit.avg_group_size.toFixed(2)} transactions per segment under ${options.connections} clients`,
    );
  }
  if (batch.commit.transactions !== null && batch.commit.transactions > 0 && batch.measured.ok > 0) {
    // One transaction per batch request: about as many commits as 200s (a few in flight at either edge).
    const perRequest = batch.commit.transactions / batch.measured.ok;
    if (perRequest > 1.1 || perRequest < 0.9) {
      warnings.push(`the batch load committed ${perRequest.toFixed(2)} transactions per request answered 200 (expected 1)`);
    }
  }
  warnings.push(
    ...cpuWarnings([
      ceilings.get,
      ceilings.post,
      litebase.measured,
      batchCeiling,
      batch.measured,
      ...(shared ? [shared.run.measured] : []),
      noGroupCommit.measured,
    ]),
  );
  if (machine.tmp_filesystem === 'tmpfs') {
    warnings.push(`${machine.tmp_dir} is tmpfs: fsync is free there, so durability costs are not measured (set LITEBASE_BENCH_TMPDIR)`);
  }

  const ratioToCeiling = ratio(litebase.measured.rps, ceilings.post.rps);
  const ratioToGetCeiling = ratio(litebase.measured.rps, ceilings.get.rps);
  const ratioToNoGroupCommit = ratio(litebase.measured.rps, noGroupCommit.measured.rps);
  const passCeiling = ratioToCeiling !== null && ratioToCeiling >= WRITE_GOALS.minRatioToCeiling;
  const passGroupCommit = ratioToNoGroupCommit !== null && ratioToNoGroupCommit >= WRITE_GOALS.minRatioToNoGroupCommit;
  const wouldPassGetCeiling = ratioToGetCeiling !== null && ratioToGetCeiling >= WRITE_GOALS.minRatioToCeiling;
  const batchRowsPerSecond = batch.measured.rps * BATCH_STATEMENTS;
  const batchRatioToSingle = ratio(batchRowsPerSecond, litebase.measured.rps);
  const passBatch = batchRatioToSingle !== null && batchRatioToSingle >= WRITE_GOALS.minBatchRatioToSingle;
  const sharedRatio = shared ? ratio(shared.run.measured.rps, litebase.measured.rps) : null;
  const passShared = sharedRatio !== null && sharedRatio >= WRITE_GOALS.minSharedDirRatioToLocal;
  durations.total = since(started);

  const report: WriteReport = {
    benchmark: 'write',
    http_ceiling_rps: round(ceilings.post.rps, 1),
    http_ceiling_route: HTTP_CEILING_ROUTE,
    http_ceiling_get_rps: round(ceilings.get.rps, 1),
    litebase_tps: round(litebase.measured.rps, 1),
    raw_sqlite_tps: round(rawNormal.tps, 1),
    no_group_commit_tps: round(noGroupCommit.measured.rps, 1),
    p50_ms: round(litebase.measured.p50, 3),
    p99_ms: round(litebase.measured.p99, 3),
    ratio_to_ceiling: ratioToCeiling,
    ratio_to_get_ceiling: ratioToGetCeiling,
    ratio_to_no_group_commit: ratioToNoGroupCommit,
    pass_ratio_to_ceiling: passCeiling,
    pass_ratio_to_no_group_commit: passGroupCommit,
    would_pass_ratio_to_get_ceiling: wouldPassGetCeiling,
    batch_statements: BATCH_STATEMENTS,
    batch_requests_per_s: round(batch.measured.rps, 1),
    batch_rows_per_s: round(batchRowsPerSecond, 1),
    batch_p50_ms: round(batch.measured.p50, 3),
    batch_p99_ms: round(batch.measured.p99, 3),
    batch_http_ceiling_rps: round(batchCeiling.rps, 1),
    batch_ratio_to_ceiling: ratio(batch.measured.rps, batchCeiling.rps),
    batch_ratio_to_single: batchRatioToSingle,
    pass_batch_ratio_to_single: passBatch,
    ...(shared
      ? {
          shared_dir: {
            dir: shared.dir,
            filesystem: mountTypeOf(shared.dir),
            litebase_tps: round(shared.run.measured.rps, 1),
            p50_ms: round(shared.run.measured.p50, 3),
            p99_ms: round(shared.run.measured.p99, 3),
            ratio_to_local: sharedRatio,
            pass_ratio_to_local: passShared,
          },
        }
      : {}),
    all_goals_pass: passCeiling && passGroupCommit && passBatch && (shared === undefined || passShared) && failures.length === 0,
    goals: {
      ratio_to_ceiling_min: WRITE_GOALS.minRatioToCeiling,
      ratio_to_no_group_commit_min: WRITE_GOALS.minRatioToNoGroupCommit,
      batch_ratio_to_single_min: WRITE_GOALS.minBatchRatioToSingle,
      shared_dir_ratio_to_local_min: WRITE_GOALS.minSharedDirRatioToLocal,
    },
    raw_sqlite_settings: {
      journal_mode: rawNormal.journal_mode,
      synchronous: rawNormal.synchronous,
      transaction: rawNormal.transaction,
    },
    raw_sqlite_full_tps: round(rawFull.tps, 1),
    details: {
      http_ceiling: summarize(ceilings.post),
      http_ceiling_get: summarize(ceilings.get),
      litebase: {
        ...summarize(litebase.measured),
        commit: roundCommit(litebase.commit),
        rows_in_table: litebase.rowsInTable,
        acknowledged_inserts: litebase.acknowledged,
      },
      no_group_commit: {
        ...summarize(noGroupCommit.measured),
        commit: roundCommit(noGroupCommit.commit),
        rows_in_table: noGroupCommit.rowsInTable,
        acknowledged_inserts: noGroupCommit.acknowledged,
      },
      batch_http_ceiling: summarize(batchCeiling),
      batch: {
        ...summarize(batch.measured),
        commit: roundCommit(batch.commit),
        rows_before: batch.rowsBefore,
        rows_in_table: batch.rowsInTable,
        acknowledged_rows: batch.acknowledged,
      },
      ...(shared
        ? {
            shared_dir: {
              ...summarize(shared.run.measured),
              commit: roundCommit(shared.run.commit),
              rows_in_table: shared.run.rowsInTable,
              acknowledged_inserts: shared.run.acknowledged,
            },
          }
        : {}),
      raw_sqlite: { ...rawNormal, tps: round(rawNormal.tps, 1), seconds: round(rawNormal.seconds, 3) },
      raw_sqlite_full: { ...rawFull, tps: round(rawFull.tps, 1), seconds: round(rawFull.seconds, 3) },
    },
    server_log_lines: {
      litebase: litebaseLog.lines,
      no_group_commit: plainLog.lines,
      ...(shared ? { shared_dir: shared.log.lines } : {}),
      samples: [...litebaseLog.samples, ...(shared?.log.samples ?? []), ...plainLog.samples].slice(0, 10),
    },
    config: {
      connections: options.connections,
      warmup_s: options.warmupSeconds,
      measure_s: options.measureSeconds,
      raw_sqlite_s: RAW_SECONDS,
      payload_bytes: PAYLOAD.length,
      prepared_requests: INSERT_BODIES.length,
      request_body_bytes: bodyBytes(INSERT_BODIES),
      batch_prepared_requests: BATCH_BODIES.length,
      batch_request_body_bytes: bodyBytes(BATCH_BODIES),
    },
    machine,
    durations_s: durations,
    warnings,
    failures,
  };
  return { report, table: writeTable(report) };
}

/** The goals of a write report, for the summary of `all`. */
export function writeGoalSummary(report: WriteReport): GoalSummary[] {
  const { goals: g } = report;
  const shared: GoalSummary[] = report.shared_dir
    ? [
        {
          benchmark: 'write',
          goal: `shared_dir.litebase_tps >= ${g.shared_dir_ratio_to_local_min} x litebase_tps (data dir on --shared-dir vs the temp root)`,
          measured: report.shared_dir.ratio_to_local,
          min: g.shared_dir_ratio_to_local_min,
          pass: report.shared_dir.pass_ratio_to_local,
        },
      ]
    : [];
  return [
    {
      benchmark: 'write',
      goal: `litebase_tps >= ${g.ratio_to_ceiling_min} x http_ceiling_rps`,
      measured: report.ratio_to_ceiling,
      min: g.ratio_to_ceiling_min,
      pass: report.pass_ratio_to_ceiling,
    },
    {
      benchmark: 'write',
      goal: `litebase_tps >= ${g.ratio_to_no_group_commit_min} x no_group_commit_tps`,
      measured: report.ratio_to_no_group_commit,
      min: g.ratio_to_no_group_commit_min,
      pass: report.pass_ratio_to_no_group_commit,
    },
    {
      benchmark: 'write',
      goal: `batch_rows_per_s >= ${g.batch_ratio_to_single_min} x litebase_tps`,
      measured: report.batch_ratio_to_single,
      min: g.batch_ratio_to_single_min,
      pass: report.pass_batch_ratio_to_single,
    },
    ...shared,
  ];
}

function roundCommit(stats: CommitStats): CommitStats {
  return {
    transactions: stats.transactions,
    segments: stats.segments,
    avg_group_size: stats.avg_group_size === null ? null : round(stats.avg_group_size, 2),
    avg_segment_write_ms: stats.avg_segment_write_ms === null ? null : round(stats.avg_segment_write_ms, 3),
  };
}

function writeTable(report: WriteReport): string {
  const { details: d, config: c, machine: m } = report;
  const ms = (value: number): string => formatNumber(value, 2);
  const loadRow = (name: string, s: LoadSummary): (string | number)[] => [
    name,
    formatNumber(s.rps, 0),
    ms(s.p50_ms),
    ms(s.p99_ms),
    ms(s.max_ms),
    s.non200,
    s.errors,
    cpuCell(s.cpu),
  ];
  const commitRow = (name: string, stats: CommitStats, rows: number, acknowledged: number): Cell[] => [
    name,
    stats.transactions,
    stats.segments,
    formatNumber(stats.avg_group_size, 2),
    formatNumber(stats.avg_segment_write_ms, 3),
    `${rows} / ${acknowledged}`,
  ];
  const main = renderTable(
    [
      { header: 'measurement' },
      { header: 'per second', align: 'right' },
      { header: 'p50 ms', align: 'right' },
      { header: 'p99 ms', align: 'right' },
      { header: 'max ms', align: 'right' },
      { header: 'non-200', align: 'right' },
      { header: 'errors', align: 'right' },
      { header: 'cpu% srv/gen/other', align: 'right' },
    ],
    [
      loadRow(POST_CEILING_LABEL, d.http_ceiling),
      loadRow(GET_CEILING_LABEL, d.http_ceiling_get),
      loadRow('Litebase INSERT, group commit', d.litebase),
      loadRow(`HTTP ceiling: POST /v1/ping, ${report.batch_statements}-INSERT batch bodies`, d.batch_http_ceiling),
      loadRow(`Litebase batch of ${report.batch_statements} INSERTs per request, group commit`, d.batch),
      ...(d.shared_dir && report.shared_dir
        ? [loadRow(`Litebase INSERT, group commit, data dir on ${report.shared_dir.filesystem} (--shared-dir)`, d.shared_dir)]
        : []),
      loadRow('Litebase INSERT, no group commit', d.no_group_commit),
      ['raw better-sqlite3 INSERT, WAL, synchronous=NORMAL', formatNumber(d.raw_sqlite.tps, 0), '-', '-', '-', '-', '-', '-'],
      ['raw better-sqlite3 INSERT, WAL, synchronous=FULL', formatNumber(d.raw_sqlite_full.tps, 0), '-', '-', '-', '-', '-', '-'],
    ],
  );
  const commit = renderTable(
    [
      { header: 'server' },
      { header: 'transactions', align: 'right' },
      { header: 'segments', align: 'right' },
      { header: 'txn/segment', align: 'right' },
      { header: 'segment write ms', align: 'right' },
      { header: 'rows / acked', align: 'right' },
    ],
    [
      commitRow('group commit', d.litebase.commit, d.litebase.rows_in_table, d.litebase.acknowledged_inserts),
      commitRow(
        `batches of ${report.batch_statements}, group commit`,
        d.batch.commit,
        d.batch.rows_in_table - d.batch.rows_before,
        d.batch.acknowledged_rows,
      ),
      ...(d.shared_dir
        ? [
            commitRow(
              'group commit, data dir on --shared-dir',
              d.shared_dir.commit,
              d.shared_dir.rows_in_table,
              d.shared_dir.acknowledged_inserts,
            ),
          ]
        : []),
      commitRow('no group commit', d.no_group_commit.commit, d.no_group_commit.rows_in_table, d.no_group_commit.acknowledged_inserts),
    ],
  );
  const goals = renderTable(
    [{ header: 'goal' }, { header: 'measured', align: 'right' }, { header: 'result' }],
    [
      [
        `litebase_tps >= ${report.goals.ratio_to_ceiling_min} x http_ceiling_rps (POST /v1/ping)`,
        formatNumber(report.ratio_to_ceiling, 3),
        report.pass_ratio_to_ceiling ? 'PASS' : 'FAIL',
      ],
      [
        `litebase_tps >= ${report.goals.ratio_to_no_group_commit_min} x no_group_commit_tps`,
        formatNumber(report.ratio_to_no_group_commit, 2),
        report.pass_ratio_to_no_group_commit ? 'PASS' : 'FAIL',
      ],
      [
        `batch_rows_per_s >= ${report.goals.batch_ratio_to_single_min} x litebase_tps (single-INSERT rows/s)`,
        formatNumber(report.batch_ratio_to_single, 2),
        report.pass_batch_ratio_to_single ? 'PASS' : 'FAIL',
      ],
      ...(report.shared_dir
        ? [
            [
              `shared_dir.litebase_tps >= ${report.goals.shared_dir_ratio_to_local_min} x litebase_tps (data dir on --shared-dir vs on ${m.tmp_filesystem})`,
              formatNumber(report.shared_dir.ratio_to_local, 3),
              report.shared_dir.pass_ratio_to_local ? 'PASS' : 'FAIL',
            ],
          ]
        : []),
      [
        `(reference only) litebase_tps >= ${report.goals.ratio_to_ceiling_min} x http_ceiling_get_rps (GET /healthz)`,
        formatNumber(report.ratio_to_get_ceiling, 3),
        report.would_pass_ratio_to_get_ceiling ? 'would PASS' : 'would FAIL',
      ],
    ],
  );
  return [
    `Litebase write benchmark: ${c.connections} connections, ${c.warmup_s} s warm-up + ${c.measure_s} s measured per HTTP figure; ` +
      `raw SQLite ${c.raw_sqlite_s} s each, one transaction per INSERT`,
    `requests: ${c.prepared_requests} prepared INSERT bodies (${c.request_body_bytes.min}-${c.request_body_bytes.max} bytes), cycled by every connection; ` +
      'the POST ceiling sends the same headers and bodies to /v1/ping',
    `machine: ${m.cpus} cpus (${m.cpu_model}), node ${m.node_version}, ${m.platform}/${m.arch}, data on ${m.tmp_filesystem} (${m.tmp_dir})` +
      (report.shared_dir
        ? `; --shared-dir run: data dir on ${report.shared_dir.filesystem} (${report.shared_dir.dir}), local dir on ${m.tmp_filesystem}`
        : ''),
    '',
    main,
    `cpu%: the server / the load generator (this process) / everything else, in % of one core (machine total ${m.cpus * 100}%)`,
    `batch: ${formatNumber(report.batch_requests_per_s, 0)} requests/s x ${report.batch_statements} INSERTs = ` +
      `${formatNumber(report.batch_rows_per_s, 0)} rows/s (single INSERTs: ${formatNumber(report.litebase_tps, 0)} rows/s); ` +
      `${formatNumber(report.batch_ratio_to_ceiling, 3)} x its own POST ceiling (reference only); ` +
      `${c.batch_prepared_requests} prepared bodies (${c.batch_request_body_bytes.min}-${c.batch_request_body_bytes.max} bytes), mode "transaction"`,
    '',
    commit,
    '',
    goals,
    ...notes(
      report.warnings,
      report.failures,
      report.server_log_lines.litebase + report.server_log_lines.no_group_commit + (report.server_log_lines.shared_dir ?? 0),
    ),
  ].join('\n');
}
