import { randomBytes } from 'node:crypto';
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
import { BenchServer, benchTmpRoot, type ServerLogSummary } from './support/server.js';
import { countRows, createBenchTable, firstRows, query } from './support/sql.js';
import { formatNumber, renderTable } from './support/table.js';

export const READ_GOALS = { minRatioToCeiling: 0.6 } as const;

const ROWS = 10_000;
/** Rows per prepopulation request: well under the server's default 1000-statement limit. */
const BATCH = 500;
const SELECT_SQL = 'SELECT id, a, b FROM t WHERE id = ?';

export interface ReadReport {
  benchmark: 'read';
  /** `POST /v1/ping` with the SELECT load's headers and bodies: the ceiling the goal uses. */
  http_ceiling_rps: number;
  http_ceiling_route: typeof HTTP_CEILING_ROUTE;
  /** `GET /healthz`, for reference only. */
  http_ceiling_get_rps: number;
  litebase_rps: number;
  p50_ms: number;
  p99_ms: number;
  ratio_to_ceiling: number | null;
  /** litebase_rps / http_ceiling_get_rps, for reference only. */
  ratio_to_get_ceiling: number | null;
  pass_ratio_to_ceiling: boolean;
  /** Whether the goal would pass against the GET ceiling; not part of all_goals_pass. */
  would_pass_ratio_to_get_ceiling: boolean;
  all_goals_pass: boolean;
  goals: { ratio_to_ceiling_min: number };
  query: string;
  rows_in_table: number;
  details: { http_ceiling: LoadSummary; http_ceiling_get: LoadSummary; litebase: LoadSummary };
  server_log_lines: { litebase: number; samples: string[] };
  config: {
    connections: number;
    warmup_s: number;
    measure_s: number;
    /** Distinct prepared request bodies each connection cycles through (the same for the ceiling). */
    prepared_requests: number;
    request_body_bytes: { min: number; max: number };
  };
  machine: MachineInfo;
  durations_s: Record<string, number>;
  warnings: string[];
  failures: string[];
}

function rowText(id: number): string {
  return `row-${id}-`.padEnd(100, 'y');
}

async function prepopulate(server: BenchServer): Promise<void> {
  for (let start = 1; start <= ROWS; start += BATCH) {
    const statements: { sql: string; params: unknown[] }[] = [];
    for (let id = start; id < start + BATCH && id <= ROWS; id++) {
      statements.push({ sql: 'INSERT INTO t(id, a, b) VALUES (?, ?, ?)', params: [id, id * 7, rowText(id)] });
    }
    await query(server, `prepopulate rows ${start}..`, 'bench', statements);
  }
}

/** A few point reads checked for content before the load, since the load itself only counts 200s. */
async function checkPointReads(server: BenchServer): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const id = 1 + Math.floor(Math.random() * ROWS);
    const rows = firstRows(await query(server, 'check point read', 'bench', [{ sql: SELECT_SQL, params: [id] }]));
    const row = rows[0];
    if (rows.length !== 1 || !row || row[0] !== id || row[1] !== id * 7 || row[2] !== rowText(id)) {
      throw new Error(`point read of id ${id} answered ${JSON.stringify(rows)}`);
    }
  }
}

/**
 * The SELECT bodies, prepared once per run: 1000 point reads of random existing ids, cycled by
 * every connection. (The 10,000-row table, about 1.5 MB, sits in SQLite's page cache either way.)
 */
const SELECT_BODIES = prepareBodies(() => {
  const id = 1 + Math.floor(Math.random() * ROWS);
  return `{"statements":[{"sql":"${SELECT_SQL}","params":[${id}]}]}`;
});

export async function runReadBenchmark(options: BenchOptions): Promise<BenchOutcome<ReadReport>> {
  const started = performance.now();
  const durations: Record<string, number> = {};
  const failures: string[] = [];
  const warnings: string[] = [];
  const machine = machineInfo(benchTmpRoot());

  let phase = performance.now();
  progress('starting litebase');
  const server = await BenchServer.start({ label: 'litebase', groupCommit: true, rootKey: randomBytes(24).toString('hex') });
  let ceilings: Ceilings;
  let reads: LoadResult;
  let rowsInTable: number;
  let log: ServerLogSummary;
  try {
    durations.litebase_start = since(phase);

    phase = performance.now();
    progress(`creating table t with ${ROWS} rows`);
    await createBenchTable(server);
    await prepopulate(server);
    rowsInTable = await countRows(server, 'bench', 't');
    if (rowsInTable !== ROWS) throw new Error(`prepopulated ${ROWS} rows but the table holds ${rowsInTable}`);
    await checkPointReads(server);
    durations.prepopulate = since(phase);

    // The SELECT load; the POST ceiling is this with the path changed to /v1/ping.
    const readLoad: LoadShape = {
      url: server.url,
      method: 'POST',
      path: '/v1/databases/bench/query',
      headers: { authorization: `Bearer ${server.key}` },
      bodies: SELECT_BODIES,
      connections: options.connections,
      ...(server.pid === undefined ? {} : { serverPid: server.pid }),
    };

    phase = performance.now();
    ceilings = await measureCeilings(server, readLoad, options, failures);
    durations.http_ceilings = since(phase);

    phase = performance.now();
    const title = 'Litebase point SELECT';
    progress(`${title}: warm-up ${options.warmupSeconds} s`);
    const warmup = await runLoad({ ...readLoad, title: `${title} (warm-up)`, seconds: options.warmupSeconds });
    progress(`${title}: measuring ${options.measureSeconds} s`);
    reads = await runLoad({ ...readLoad, title, seconds: options.measureSeconds });
    server.assertRunning();
    durations.litebase_select = since(phase);
    for (const run of [warmup, reads]) {
      const problem = errorRateProblem(run);
      if (problem) failures.push(problem);
    }
    log = server.logSummary();
  } finally {
    await server.stop();
  }
  warnings.push(...cpuWarnings([ceilings.get, ceilings.post, reads]));
  if (machine.tmp_filesystem === 'tmpfs') warnings.push(`${machine.tmp_dir} is tmpfs`);

  const ratioToCeiling = ratio(reads.rps, ceilings.post.rps);
  const ratioToGetCeiling = ratio(reads.rps, ceilings.get.rps);
  const pass = ratioToCeiling !== null && ratioToCeiling >= READ_GOALS.minRatioToCeiling;
  const wouldPassGet = ratioToGetCeiling !== null && ratioToGetCeiling >= READ_GOALS.minRatioToCeiling;
  durations.total = since(started);
  const report: ReadReport = {
    benchmark: 'read',
    http_ceiling_rps: round(ceilings.post.rps, 1),
    http_ceiling_route: HTTP_CEILING_ROUTE,
    http_ceiling_get_rps: round(ceilings.get.rps, 1),
    litebase_rps: round(reads.rps, 1),
    p50_ms: round(reads.p50, 3),
    p99_ms: round(reads.p99, 3),
    ratio_to_ceiling: ratioToCeiling,
    ratio_to_get_ceiling: ratioToGetCeiling,
    pass_ratio_to_ceiling: pass,
    would_pass_ratio_to_get_ceiling: wouldPassGet,
    all_goals_pass: pass && failures.length === 0,
    goals: { ratio_to_ceiling_min: READ_GOALS.minRatioToCeiling },
    query: SELECT_SQL,
    rows_in_table: rowsInTable,
    details: { http_ceiling: summarize(ceilings.post), http_ceiling_get: summarize(ceilings.get), litebase: summarize(reads) },
    server_log_lines: { litebase: log.lines, samples: log.samples },
    config: {
      connections: options.connections,
      warmup_s: options.warmupSeconds,
      measure_s: options.measureSeconds,
      prepared_requests: SELECT_BODIES.length,
      request_body_bytes: bodyBytes(SELECT_BODIES),
    },
    machine,
    durations_s: durations,
    warnings,
    failures,
  };
  return { report, table: readTable(report) };
}

function readTable(report: ReadReport): string {
  const { details: d, config: c, machine: m } = report;
  const ms = (value: number): string => formatNumber(value, 2);
  const row = (name: string, s: LoadSummary): (string | number)[] => [
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
      row(POST_CEILING_LABEL, d.http_ceiling),
      row(GET_CEILING_LABEL, d.http_ceiling_get),
      row(`Litebase point SELECT (${report.rows_in_table} rows)`, d.litebase),
    ],
  );
  const goals = renderTable(
    [{ header: 'goal' }, { header: 'measured', align: 'right' }, { header: 'result' }],
    [
      [
        `litebase_rps >= ${report.goals.ratio_to_ceiling_min} x http_ceiling_rps (POST /v1/ping)`,
        formatNumber(report.ratio_to_ceiling, 3),
        report.pass_ratio_to_ceiling ? 'PASS' : 'FAIL',
      ],
      [
        `(reference only) litebase_rps >= ${report.goals.ratio_to_ceiling_min} x http_ceiling_get_rps (GET /healthz)`,
        formatNumber(report.ratio_to_get_ceiling, 3),
        report.would_pass_ratio_to_get_ceiling ? 'would PASS' : 'would FAIL',
      ],
    ],
  );
  return [
    `Litebase read benchmark: ${c.connections} connections, ${c.warmup_s} s warm-up + ${c.measure_s} s measured; ${report.query} with random ids`,
    `requests: ${c.prepared_requests} prepared SELECT bodies (${c.request_body_bytes.min}-${c.request_body_bytes.max} bytes), cycled by every connection; ` +
      'the POST ceiling sends the same headers and bodies to /v1/ping',
    `machine: ${m.cpus} cpus (${m.cpu_model}), node ${m.node_version}, ${m.platform}/${m.arch}, data on ${m.tmp_filesystem} (${m.tmp_dir})`,
    '',
    main,
    `cpu%: the server / the load generator (this process) / everything else, in % of one core (machine total ${m.cpus * 100}%)`,
    '',
    goals,
    ...notes(report.warnings, report.failures, report.server_log_lines.litebase),
  ].join('\n');
}
