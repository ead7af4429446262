import { randomBytes } from 'node:crypto';
import {
  GET_CEILING_LABEL,
  HTTP_CEILING_ROUTE,
  measureGetCeiling,
  POST_CEILING_LABEL,
  postCeilingSpec,
  type Ceilings,
  type LoadShape,
} from './support/ceiling.js';
import { bodyBytes, errorRateProblem, type LoadResult } from './support/load.js';
import { measureSideBySide } from './support/side-by-side.js';
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
  type GoalSummary,
  type LoadSummary,
} from './support/report.js';
import { checkPointReads, prepopulate, ROWS, SELECT_BODIES, SELECT_SQL, type SendQuery } from './support/point-reads.js';
import { measureReplicaReads, type ReplicaReads } from './replica-read.js';
import { BenchServer, benchTmpRoot, type ServerLogSummary } from './support/server.js';
import { countRows, createBenchTable, query } from './support/sql.js';
import { formatNumber, renderTable } from './support/table.js';

/** Goals from the issues: point reads on one server (issue 5) and on a Replica (issue 18). */
export const READ_GOALS = { minRatioToCeiling: 0.8, minReplicaRatioToCeiling: 0.8 } as const;

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
  /** `POST /v1/ping` on the Replica with the same headers and bodies: the ceiling of the replica goal. */
  replica_http_ceiling_rps: number;
  /** The same point SELECT load sent to a Replica (a Primary + one Replica on a shared folder). */
  replica_rps: number;
  replica_p50_ms: number;
  replica_p99_ms: number;
  replica_ratio_to_ceiling: number | null;
  pass_replica_ratio_to_ceiling: boolean;
  all_goals_pass: boolean;
  goals: { ratio_to_ceiling_min: number; replica_ratio_to_ceiling_min: number };
  query: string;
  rows_in_table: number;
  /** The Replica run: positions of `bench` on both nodes when the load started, rows the Replica held. */
  replica: { primary_position: string; replica_position: string; rows_in_table: number; answers_not_from_replica: number };
  details: {
    http_ceiling: LoadSummary;
    http_ceiling_get: LoadSummary;
    litebase: LoadSummary;
    replica_http_ceiling: LoadSummary;
    replica: LoadSummary;
  };
  server_log_lines: { litebase: number; replica_cluster: number; samples: string[] };
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
    const send: SendQuery = (step, statements) => query(server, step, 'bench', statements);
    await prepopulate(send);
    rowsInTable = await countRows(server, 'bench', 't');
    if (rowsInTable !== ROWS) throw new Error(`prepopulated ${ROWS} rows but the table holds ${rowsInTable}`);
    await checkPointReads(send);
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
    const get = await measureGetCeiling(server, readLoad, options, failures);
    durations.http_ceiling_get = since(phase);

    // The POST ceiling and the SELECTs it is compared with, in alternating windows after a warm-up
    // of each: other work on the machine (the ceiling needs the server's core and most of the
    // other) lands on both alike instead of on whichever ran at the wrong moment.
    phase = performance.now();
    const specs = [postCeilingSpec(readLoad), { ...readLoad, title: 'Litebase point SELECT' }];
    const { warmups, measured } = await measureSideBySide(specs, options.warmupSeconds, options.measureSeconds);
    const [post, selects] = measured;
    server.assertRunning();
    durations.http_ceiling_and_select = since(phase);
    if (post === undefined || selects === undefined) throw new Error('runInterleaved gave fewer results than loads');
    ceilings = { post, get };
    reads = selects;
    for (const run of [...warmups, post, reads]) {
      const problem = errorRateProblem(run);
      if (problem) failures.push(problem);
    }
    log = server.logSummary();
  } finally {
    await server.stop();
  }

  // The same load on a Replica, after the single server is gone: its own processes and folders.
  const replica: ReplicaReads = await measureReplicaReads(options, failures);
  Object.assign(durations, replica.durations);

  warnings.push(...cpuWarnings([ceilings.get, ceilings.post, reads, replica.ceiling, replica.reads]));
  if (machine.tmp_filesystem === 'tmpfs') warnings.push(`${machine.tmp_dir} is tmpfs`);

  const ratioToCeiling = ratio(reads.rps, ceilings.post.rps);
  const ratioToGetCeiling = ratio(reads.rps, ceilings.get.rps);
  const pass = ratioToCeiling !== null && ratioToCeiling >= READ_GOALS.minRatioToCeiling;
  const wouldPassGet = ratioToGetCeiling !== null && ratioToGetCeiling >= READ_GOALS.minRatioToCeiling;
  const replicaRatio = ratio(replica.reads.rps, replica.ceiling.rps);
  const passReplica = replicaRatio !== null && replicaRatio >= READ_GOALS.minReplicaRatioToCeiling;
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
    replica_http_ceiling_rps: round(replica.ceiling.rps, 1),
    replica_rps: round(replica.reads.rps, 1),
    replica_p50_ms: round(replica.reads.p50, 3),
    replica_p99_ms: round(replica.reads.p99, 3),
    replica_ratio_to_ceiling: replicaRatio,
    pass_replica_ratio_to_ceiling: passReplica,
    all_goals_pass: pass && passReplica && failures.length === 0,
    goals: { ratio_to_ceiling_min: READ_GOALS.minRatioToCeiling, replica_ratio_to_ceiling_min: READ_GOALS.minReplicaRatioToCeiling },
    query: SELECT_SQL,
    rows_in_table: rowsInTable,
    replica: {
      primary_position: replica.primaryPosition,
      replica_position: replica.replicaPosition,
      rows_in_table: replica.rowsOnReplica,
      answers_not_from_replica: replica.reads.rejected,
    },
    details: {
      http_ceiling: summarize(ceilings.post),
      http_ceiling_get: summarize(ceilings.get),
      litebase: summarize(reads),
      replica_http_ceiling: summarize(replica.ceiling),
      replica: summarize(replica.reads),
    },
    server_log_lines: {
      litebase: log.lines,
      replica_cluster: replica.log.lines,
      samples: [...log.samples, ...replica.log.samples].slice(0, 10),
    },
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

/** The goals of a read report, for the summary of `all`. */
export function readGoalSummary(report: ReadReport): GoalSummary[] {
  const { goals: g } = report;
  return [
    {
      benchmark: 'read',
      goal: `litebase_rps >= ${g.ratio_to_ceiling_min} x http_ceiling_rps`,
      measured: report.ratio_to_ceiling,
      min: g.ratio_to_ceiling_min,
      pass: report.pass_ratio_to_ceiling,
    },
    {
      benchmark: 'read',
      goal: `replica_rps >= ${g.replica_ratio_to_ceiling_min} x replica_http_ceiling_rps`,
      measured: report.replica_ratio_to_ceiling,
      min: g.replica_ratio_to_ceiling_min,
      pass: report.pass_replica_ratio_to_ceiling,
    },
  ];
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
      row('Replica HTTP ceiling: POST /v1/ping, same bodies', d.replica_http_ceiling),
      row(`Litebase point SELECT on a Replica (${report.replica.rows_in_table} rows)`, d.replica),
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
        `replica_rps >= ${report.goals.replica_ratio_to_ceiling_min} x replica_http_ceiling_rps (POST /v1/ping on the Replica)`,
        formatNumber(report.replica_ratio_to_ceiling, 3),
        report.pass_replica_ratio_to_ceiling ? 'PASS' : 'FAIL',
      ],
      [
        `(reference only) litebase_rps >= ${report.goals.ratio_to_ceiling_min} x http_ceiling_get_rps (GET /healthz)`,
        formatNumber(report.ratio_to_get_ceiling, 3),
        report.would_pass_ratio_to_get_ceiling ? 'would PASS' : 'would FAIL',
      ],
    ],
  );
  return [
    `Litebase read benchmark: ${c.connections} connections, ${c.warmup_s} s warm-up + ${c.measure_s} s measured; ${report.query} with random ids; ` +
      'on the single server the POST ceiling and the SELECTs in alternating 1 s windows',
    `requests: ${c.prepared_requests} prepared SELECT bodies (${c.request_body_bytes.min}-${c.request_body_bytes.max} bytes), cycled by every connection; ` +
      'the POST ceiling sends the same headers and bodies to /v1/ping',
    `machine: ${m.cpus} cpus (${m.cpu_model}), node ${m.node_version}, ${m.platform}/${m.arch}, data on ${m.tmp_filesystem} (${m.tmp_dir})`,
    '',
    main,
    `cpu%: the server (for the Replica rows: the Replica) / the load generator (this process) / everything else, in % of one core (machine total ${m.cpus * 100}%)`,
    `Replica: a Primary + one Replica on one shared folder; the Replica at position ${report.replica.replica_position} ` +
      `(the Primary's: ${report.replica.primary_position}) when the load started; ` +
      `200 answers not from role "replica": ${report.replica.answers_not_from_replica}`,
    '',
    goals,
    ...notes(report.warnings, report.failures, report.server_log_lines.litebase + report.server_log_lines.replica_cluster),
  ].join('\n');
}
