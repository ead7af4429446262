import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { track } from './support/cleanup.js';
import {
  GET_CEILING_LABEL,
  HTTP_CEILING_ROUTE,
  measureCeilings,
  POST_CEILING_LABEL,
  type Ceilings,
  type LoadShape,
} from './support/ceiling.js';
import { bodyBytes, errorRateProblem, prepareBodies, runLoad, type LoadResult } from './support/load.js';
import { machineInfo, type MachineInfo } from './support/machine.js';
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
  type LoadSummary,
} from './support/report.js';
import { BenchServer, benchTmpRoot, makeTempDir, type ServerLogSummary } from './support/server.js';
import { countRows, createBenchTable } from './support/sql.js';
import { formatNumber, renderTable } from './support/table.js';

/** Goals from the issue. */
export const WRITE_GOALS = { minRatioToCeiling: 0.35, minRatioToNoGroupCommit: 5 } as const;

/** ~100 bytes of TEXT per row: a small but not empty row, the same for HTTP and raw SQLite. */
const PAYLOAD = 'litebase-bench-payload-'.padEnd(100, 'x');
const RAW_SECONDS = 3;

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
  all_goals_pass: boolean;
  goals: { ratio_to_ceiling_min: number; ratio_to_no_group_commit_min: number };
  raw_sqlite_settings: Omit<RawSqliteResult, 'tps' | 'inserts' | 'seconds'>;
  /** The same raw loop with synchronous=FULL (an fsync per commit), for comparison. */
  raw_sqlite_full_tps: number;
  details: {
    http_ceiling: LoadSummary;
    http_ceiling_get: LoadSummary;
    litebase: LoadSummary & { commit: CommitStats; rows_in_table: number; acknowledged_inserts: number };
    no_group_commit: LoadSummary & { commit: CommitStats; rows_in_table: number; acknowledged_inserts: number };
    raw_sqlite: RawSqliteResult;
    raw_sqlite_full: RawSqliteResult;
  };
  /** Lines the servers printed at --log-level warn (warnings and errors) during the run. */
  server_log_lines: { litebase: number; no_group_commit: number; samples: string[] };
  config: {
    connections: number;
    warmup_s: number;
    measure_s: number;
    raw_sqlite_s: number;
    payload_bytes: number;
    /** Distinct prepared request bodies each connection cycles through (the same for the ceiling). */
    prepared_requests: number;
    request_body_bytes: { min: number; max: number };
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

/** The INSERT load against `server`; the POST ceiling is this with the path changed. */
function insertLoad(server: BenchServer, options: BenchOptions): LoadShape {
  return {
    url: server.url,
    method: 'POST',
    path: '/v1/databases/bench/query',
    headers: { authorization: `Bearer ${server.key}` },
    bodies: INSERT_BODIES,
    connections: options.connections,
    ...(server.pid === undefined ? {} : { serverPid: server.pid }),
  };
}

interface InsertRun {
  measured: LoadResult;
  commit: CommitStats;
  rowsInTable: number;
  acknowledged: number;
}

/**
 * Warm-up, then the measured INSERT window bracketed by two /metrics scrapes (so commit statistics
 * cover the measured window only), then a row count: every acknowledged INSERT must be in the table.
 */
async function measureInserts(server: BenchServer, options: BenchOptions, title: string, failures: string[]): Promise<InsertRun> {
  progress(`${title}: warm-up ${options.warmupSeconds} s`);
  const warmup = await runLoad({ ...insertLoad(server, options), title: `${title} (warm-up)`, seconds: options.warmupSeconds });
  server.assertRunning();
  const before = await scrapeMetrics(server);
  progress(`${title}: measuring ${options.measureSeconds} s`);
  const measured = await runLoad({ ...insertLoad(server, options), title, seconds: options.measureSeconds });
  server.assertRunning();
  const after = await scrapeMetrics(server);
  for (const result of [warmup, measured]) {
    const problem = errorRateProblem(result);
    if (problem) failures.push(problem);
  }
  const rowsInTable = await countRows(server, 'bench', 't');
  const acknowledged = warmup.ok + measured.ok;
  // More rows than acknowledgements is expected (requests in flight when the load stopped);
  // fewer means an INSERT answered 200 and was lost.
  if (rowsInTable < acknowledged) {
    failures.push(`${title}: ${acknowledged} INSERTs answered 200 but the table holds ${rowsInTable} rows`);
  }
  return { measured, commit: commitStats(before, after), rowsInTable, acknowledged };
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
  let litebaseLog: ServerLogSummary;
  try {
    durations.litebase_start = since(phase);
    await createBenchTable(server);

    phase = performance.now();
    ceilings = await measureCeilings(server, insertLoad(server, options), options, failures);
    durations.http_ceilings = since(phase);

    phase = performance.now();
    litebase = await measureInserts(server, options, 'Litebase INSERT (group commit)', failures);
    durations.litebase_insert = since(phase);
    litebaseLog = server.logSummary();
  } finally {
    await server.stop();
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
  warnings.push(...cpuWarnings([ceilings.get, ceilings.post, litebase.measured, noGroupCommit.measured]));
  if (machine.tmp_filesystem === 'tmpfs') {
    warnings.push(`${machine.tmp_dir} is tmpfs: fsync is free there, so durability costs are not measured (set LITEBASE_BENCH_TMPDIR)`);
  }

  const ratioToCeiling = ratio(litebase.measured.rps, ceilings.post.rps);
  const ratioToGetCeiling = ratio(litebase.measured.rps, ceilings.get.rps);
  const ratioToNoGroupCommit = ratio(litebase.measured.rps, noGroupCommit.measured.rps);
  const passCeiling = ratioToCeiling !== null && ratioToCeiling >= WRITE_GOALS.minRatioToCeiling;
  const passGroupCommit = ratioToNoGroupCommit !== null && ratioToNoGroupCommit >= WRITE_GOALS.minRatioToNoGroupCommit;
  const wouldPassGetCeiling = ratioToGetCeiling !== null && ratioToGetCeiling >= WRITE_GOALS.minRatioToCeiling;
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
    all_goals_pass: passCeiling && passGroupCommit && failures.length === 0,
    goals: { ratio_to_ceiling_min: WRITE_GOALS.minRatioToCeiling, ratio_to_no_group_commit_min: WRITE_GOALS.minRatioToNoGroupCommit },
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
      raw_sqlite: { ...rawNormal, tps: round(rawNormal.tps, 1), seconds: round(rawNormal.seconds, 3) },
      raw_sqlite_full: { ...rawFull, tps: round(rawFull.tps, 1), seconds: round(rawFull.seconds, 3) },
    },
    server_log_lines: {
      litebase: litebaseLog.lines,
      no_group_commit: plainLog.lines,
      samples: [...litebaseLog.samples, ...plainLog.samples].slice(0, 10),
    },
    config: {
      connections: options.connections,
      warmup_s: options.warmupSeconds,
      measure_s: options.measureSeconds,
      raw_sqlite_s: RAW_SECONDS,
      payload_bytes: PAYLOAD.length,
      prepared_requests: INSERT_BODIES.length,
      request_body_bytes: bodyBytes(INSERT_BODIES),
    },
    machine,
    durations_s: durations,
    warnings,
    failures,
  };
  return { report, table: writeTable(report) };
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
    [d.litebase, d.no_group_commit].map((s, index) => [
      index === 0 ? 'group commit' : 'no group commit',
      s.commit.transactions,
      s.commit.segments,
      formatNumber(s.commit.avg_group_size, 2),
      formatNumber(s.commit.avg_segment_write_ms, 3),
      `${s.rows_in_table} / ${s.acknowledged_inserts}`,
    ]),
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
    `machine: ${m.cpus} cpus (${m.cpu_model}), node ${m.node_version}, ${m.platform}/${m.arch}, data on ${m.tmp_filesystem} (${m.tmp_dir})`,
    '',
    main,
    `cpu%: the server / the load generator (this process) / everything else, in % of one core (machine total ${m.cpus * 100}%)`,
    '',
    commit,
    '',
    goals,
    ...notes(report.warnings, report.failures, report.server_log_lines.litebase + report.server_log_lines.no_group_commit),
  ].join('\n');
}
