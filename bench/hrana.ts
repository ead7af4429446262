/**
 * Hrana beside /v1 (issue 16, item 7): the point-read and single-INSERT loads of `npm run bench`
 * sent through `v2/pipeline` ([execute, close], what @libsql/client sends for one execute) beside
 * the same loads on `/v1/databases/bench/query`, in one run on one server. Goal: Hrana >= 0.9x /v1
 * for both. Each pair is measured in alternating windows (/v1, Hrana, Hrana, /v1, ...) after a
 * warm-up of each, so drift during the run (other work on a shared machine, the disk's writeback
 * after the first writes) does not land on whichever protocol runs second.
 */
import { randomBytes } from 'node:crypto';
import { errorRateProblem, interleavedRounds, prepareBodies, type LoadResult } from './support/load.js';
import { measureSideBySide, WINDOW_SECONDS } from './support/side-by-side.js';
import { machineInfo, type MachineInfo } from './support/machine.js';
import {
  cpuCell,
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
import { BenchServer, benchTmpRoot } from './support/server.js';
import { countRows, createBenchTable, query } from './support/sql.js';
import { formatNumber, renderTable } from './support/table.js';

export const HRANA_GOALS = { minRatioToV1: 0.9 } as const;

const ROWS = 10_000;
const BATCH = 500;
const SELECT_SQL = 'SELECT id, a, b FROM t WHERE id = ?';
const INSERT_SQL = 'INSERT INTO t(a,b) VALUES (?,?)';
const PAYLOAD = 'litebase-bench-payload-'.padEnd(100, 'x');
const randomId = (): number => 1 + Math.floor(Math.random() * ROWS);

const V1_SELECT = prepareBodies(() => `{"statements":[{"sql":"${SELECT_SQL}","params":[${randomId()}]}]}`);
const HRANA_SELECT = prepareBodies(
  () =>
    `{"baton":null,"requests":[{"type":"execute","stmt":{"sql":"${SELECT_SQL}","args":[{"type":"integer","value":"${randomId()}"}]}},{"type":"close"}]}`,
);
const V1_INSERT = prepareBodies((index) => `{"statements":[{"sql":"${INSERT_SQL}","params":[${index + 1},"${PAYLOAD}"]}]}`);
const HRANA_INSERT = prepareBodies(
  (index) =>
    `{"baton":null,"requests":[{"type":"execute","stmt":{"sql":"${INSERT_SQL}","args":[{"type":"integer","value":"${index + 1}"},{"type":"text","value":"${PAYLOAD}"}]}},{"type":"close"}]}`,
);

export interface HranaReport {
  benchmark: 'hrana';
  v1_select_rps: number;
  hrana_select_rps: number;
  select_ratio: number | null;
  v1_insert_rps: number;
  hrana_insert_rps: number;
  insert_ratio: number | null;
  pass_select: boolean;
  pass_insert: boolean;
  all_goals_pass: boolean;
  goals: { ratio_to_v1_min: number };
  details: Record<'v1_select' | 'hrana_select' | 'v1_insert' | 'hrana_insert', LoadSummary>;
  /** measure_s per load, split into `rounds` alternating windows of window_s. */
  config: { connections: number; warmup_s: number; measure_s: number; rounds: number; window_s: number };
  machine: MachineInfo;
  durations_s: Record<string, number>;
  warnings: string[];
  failures: string[];
}

/** Hrana answers a failed statement inside an HTTP 200: check the answer's content before counting 200s. */
async function checkHrana(server: BenchServer): Promise<void> {
  const response = await fetch(`${server.url}/v1/databases/bench/v2/pipeline`, {
    method: 'POST',
    headers: { authorization: `Bearer ${server.key}`, 'content-type': 'application/json' },
    body: HRANA_SELECT[0],
  });
  const body = (await response.json()) as { results?: Array<{ type?: string; response?: { result?: { rows?: unknown[] } } }> };
  const first = body.results?.[0];
  if (response.status !== 200 || first?.type !== 'ok' || first.response?.result?.rows?.length !== 1) {
    throw new Error(`Hrana point read answered ${response.status} ${JSON.stringify(body).slice(0, 300)}`);
  }
}

export async function runHranaBenchmark(options: BenchOptions): Promise<BenchOutcome<HranaReport>> {
  const started = performance.now();
  const durations: Record<string, number> = {};
  const failures: string[] = [];
  const warnings: string[] = [];
  const machine = machineInfo(benchTmpRoot());
  progress('starting litebase');
  const server = await BenchServer.start({ label: 'litebase', groupCommit: true, rootKey: randomBytes(24).toString('hex') });
  const runs: Partial<Record<keyof HranaReport['details'], LoadResult>> = {};
  // 12 s measured (the default) are 12 rounds of 1 s windows; under 2 s, one window each.
  const rounds = interleavedRounds(options.measureSeconds, WINDOW_SECONDS);
  try {
    let phase = performance.now();
    await createBenchTable(server);
    for (let start = 1; start <= ROWS; start += BATCH) {
      const statements = Array.from({ length: Math.min(BATCH, ROWS - start + 1) }, (_, offset) => ({
        sql: 'INSERT INTO t(id, a, b) VALUES (?, ?, ?)',
        params: [start + offset, (start + offset) * 7, PAYLOAD],
      }));
      await query(server, `prepopulate rows ${start}..`, 'bench', statements);
    }
    await checkHrana(server);
    durations.prepopulate = since(phase);

    const base = {
      url: server.url,
      method: 'POST' as const,
      headers: { authorization: `Bearer ${server.key}` },
      connections: options.connections,
      ...(server.pid === undefined ? {} : { serverPid: server.pid }),
    };
    // Each pair is measured side by side (runInterleaved): /v1 and Hrana windows alternate, so a
    // change on the machine or in the server during the run cannot favour the load that ran first.
    const pairs = [
      [
        'select',
        ['v1_select', '/v1 point SELECT', '/v1/databases/bench/query', V1_SELECT],
        ['hrana_select', 'Hrana v2/pipeline point SELECT', '/v1/databases/bench/v2/pipeline', HRANA_SELECT],
      ],
      [
        'insert',
        ['v1_insert', '/v1 single INSERT', '/v1/databases/bench/query', V1_INSERT],
        ['hrana_insert', 'Hrana v2/pipeline single INSERT', '/v1/databases/bench/v2/pipeline', HRANA_INSERT],
      ],
    ] as const;
    for (const [kind, ...sides] of pairs) {
      phase = performance.now();
      const before = kind === 'insert' ? await countRows(server, 'bench', 't') : 0;
      const specs = sides.map(([, title, path, bodies]) => ({ ...base, title, path, bodies }));
      const { warmups, measured } = await measureSideBySide(specs, options.warmupSeconds, options.measureSeconds);
      server.assertRunning();
      for (const run of [...warmups, ...measured]) {
        const problem = errorRateProblem(run);
        if (problem) failures.push(problem);
      }
      if (kind === 'insert') {
        // Every acknowledged INSERT must be in the table (a Hrana error would hide inside a 200).
        const added = (await countRows(server, 'bench', 't')) - before;
        const acknowledged = [...warmups, ...measured].reduce((sum, run) => sum + run.ok, 0);
        if (added < acknowledged) failures.push(`single INSERTs: ${acknowledged} answered 200 but ${added} rows were added`);
      }
      sides.forEach(([key], index) => {
        runs[key] = measured[index];
      });
      durations[kind] = since(phase);
    }
  } finally {
    await server.stop();
  }
  const run = (key: keyof HranaReport['details']): LoadResult => {
    const result = runs[key];
    if (!result) throw new Error(`no ${key} run`);
    return result;
  };
  const selectRatio = ratio(run('hrana_select').rps, run('v1_select').rps);
  const insertRatio = ratio(run('hrana_insert').rps, run('v1_insert').rps);
  const passSelect = selectRatio !== null && selectRatio >= HRANA_GOALS.minRatioToV1;
  const passInsert = insertRatio !== null && insertRatio >= HRANA_GOALS.minRatioToV1;
  durations.total = since(started);
  const report: HranaReport = {
    benchmark: 'hrana',
    v1_select_rps: round(run('v1_select').rps, 1),
    hrana_select_rps: round(run('hrana_select').rps, 1),
    select_ratio: selectRatio,
    v1_insert_rps: round(run('v1_insert').rps, 1),
    hrana_insert_rps: round(run('hrana_insert').rps, 1),
    insert_ratio: insertRatio,
    pass_select: passSelect,
    pass_insert: passInsert,
    all_goals_pass: passSelect && passInsert && failures.length === 0,
    goals: { ratio_to_v1_min: HRANA_GOALS.minRatioToV1 },
    details: {
      v1_select: summarize(run('v1_select')),
      hrana_select: summarize(run('hrana_select')),
      v1_insert: summarize(run('v1_insert')),
      hrana_insert: summarize(run('hrana_insert')),
    },
    config: {
      connections: options.connections,
      warmup_s: options.warmupSeconds,
      measure_s: options.measureSeconds,
      rounds,
      window_s: round(options.measureSeconds / rounds, 3),
    },
    machine,
    durations_s: durations,
    warnings,
    failures,
  };
  return { report, table: hranaTable(report) };
}

function hranaTable(report: HranaReport): string {
  const { details: d, config: c, machine: m } = report;
  const ms = (value: number): string => formatNumber(value, 2);
  const row = (name: string, s: LoadSummary): (string | number)[] => [
    name,
    formatNumber(s.rps, 0),
    ms(s.p50_ms),
    ms(s.p99_ms),
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
      { header: 'non-200', align: 'right' },
      { header: 'errors', align: 'right' },
      { header: 'cpu% srv/gen/other', align: 'right' },
    ],
    [
      row('/v1 point SELECT', d.v1_select),
      row('Hrana v2/pipeline point SELECT', d.hrana_select),
      row('/v1 single INSERT', d.v1_insert),
      row('Hrana v2/pipeline single INSERT', d.hrana_insert),
    ],
  );
  const goal = (what: string, measured: number | null, pass: boolean): (string | number)[] => [
    `${what}: Hrana >= ${report.goals.ratio_to_v1_min} x /v1`,
    formatNumber(measured, 3),
    pass ? 'PASS' : 'FAIL',
  ];
  const goals = renderTable(
    [{ header: 'goal' }, { header: 'measured', align: 'right' }, { header: 'result' }],
    [goal('point SELECT', report.select_ratio, report.pass_select), goal('single INSERT', report.insert_ratio, report.pass_insert)],
  );
  return [
    `Litebase Hrana benchmark: ${c.connections} connections, ${c.warmup_s} s warm-up + ${c.measure_s} s measured per load; one server; each /v1 and Hrana pair measured in ${c.rounds} rounds of alternating ${c.window_s} s windows`,
    `machine: ${m.cpus} cpus (${m.cpu_model}), node ${m.node_version}, ${m.platform}/${m.arch}, data on ${m.tmp_filesystem} (${m.tmp_dir})`,
    '',
    main,
    '',
    goals,
    ...notes(report.warnings, report.failures, 0),
  ].join('\n');
}
