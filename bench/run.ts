/**
 * Benchmark entry point: `npm run bench -- write|read|all [options]`.
 * stdout gets a human-readable table and then, as its LAST line, one JSON object (tools read that
 * line); progress messages go to stderr. Exit 1 when a measurement is invalid (more than 1% errors,
 * lost writes, a server that would not start or died), 0 otherwise; with --strict, also 2 when a
 * goal is missed.
 */
import { releaseAll } from './support/cleanup.js';
import { DEFAULT_OPTIONS, type BenchOptions } from './support/report.js';
import { runHranaBenchmark } from './hrana.js';
import { runMemoryCommand } from './memory.js';
import { readGoalSummary, runReadBenchmark, type ReadReport } from './read.js';
import { replicationMain } from './replication.js';
import { runRestoreCommand } from './restore.js';
import { scaleMain } from './scale.js';
import { parseSharedDirs } from './support/server.js';
import { formatNumber, renderTable } from './support/table.js';
import { runStatementsBenchmark } from './statements.js';
import { runWriteBenchmark, writeGoalSummary, type WriteReport } from './write.js';

const COMMANDS = ['write', 'read', 'all'] as const;
type Command = (typeof COMMANDS)[number];

const USAGE = `usage: npm run bench -- <write|read|all|replication|restore|scale|hrana|statements|memory> [options]
       node dist/bench/run.js <write|read|all> [options]

  write   durable single-row INSERTs per second over HTTP (group commit on and off),
          beside the HTTP ceiling (POST /v1/ping with the same headers and bodies;
          GET /healthz for reference) and raw better-sqlite3 inserts; then batches of
          10 INSERTs per request (one transaction), rows/s beside the single-INSERT rows/s
  read    point SELECTs per second over HTTP beside the same two HTTP ceilings; then the
          same SELECTs on a Replica (Primary + Replica on one shared folder) beside the
          Replica's POST /v1/ping ceiling
  all     write, then read; the last line combines both reports
  hrana   point SELECTs and single INSERTs through Hrana (v2/pipeline) beside the same loads on /v1
  statements  what statement metrics cost one point SELECT (in process, no HTTP)
  replication  visibility lag Primary -> Replicas (watching, and polling only) and catch-up
          speed of a fresh replica beside a plain read of the segment files
          (its own options: npm run bench -- replication --help)
  restore  point-in-time restore against Litestream (its own options: npm run bench -- restore --help)
  scale    the same small-write load on a tiny and a 1 GiB database (10 GiB with --with-10g): tx/s,
          bytes written per transaction, compactions, a fresh node's bootstrap, peak RSS
          (its own options: npm run bench -- scale --help)
  memory  peak RSS of the nodes while loading, in one big transaction, replaying, and in backups
          (its own options: npm run bench -- memory --help)

options:
  --connections N   concurrent HTTP clients (default ${DEFAULT_OPTIONS.connections})
  --warmup S        warm-up seconds before each measured window (default ${DEFAULT_OPTIONS.warmupSeconds})
  --duration S      measured seconds per figure (default ${DEFAULT_OPTIONS.measureSeconds})
  --strict          exit 2 when a goal is missed (default: goals are reported, exit 0)
  --shared-dir DIR  write (and the write part of all): also run the single-INSERT load on a server
                    whose data dir is in a new folder under DIR (e.g. a CephFS mount) and whose
                    local dir stays under the temp root, beside the run on the temp root
                    (goal: >= 0.5x); a comma-separated list is accepted, the first DIR is used

environment:
  LITEBASE_BENCH_TMPDIR   where server data directories go (default: the OS temp dir)`;

interface Parsed {
  command: Command;
  options: BenchOptions;
  strict: boolean;
}

function parseArgs(argv: string[]): Parsed | string {
  const [command, ...rest] = argv;
  if (!COMMANDS.includes(command as Command)) return command === undefined ? 'no benchmark named' : `unknown benchmark "${command}"`;
  const options: BenchOptions = { ...DEFAULT_OPTIONS };
  let strict = false;
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i];
    if (flag === '--strict') {
      strict = true;
      continue;
    }
    if (flag === '--shared-dir') {
      if (command === 'read') return '--shared-dir applies to write and all (the write part), not to read';
      const dirs = parseSharedDirs(rest[i + 1]);
      if (typeof dirs === 'string') return dirs;
      options.sharedDirs = dirs;
      i++;
      continue;
    }
    const value = Number(rest[i + 1]);
    const positive = Number.isFinite(value) && value > 0;
    if (flag === '--connections' && positive && Number.isInteger(value)) options.connections = value;
    else if (flag === '--warmup' && positive) options.warmupSeconds = value;
    else if (flag === '--duration' && positive) options.measureSeconds = value;
    else return `bad option "${flag ?? ''}"${rest[i + 1] === undefined ? '' : ` ${rest[i + 1]}`}`;
    i++;
  }
  return { command: command as Command, options, strict };
}

async function main(): Promise<number> {
  if (process.argv[2] === 'replication') {
    // Its own options, processes, report and watchdog (bench/replication.ts): Primary + two Replicas, then a fresh node.
    return replicationMain(process.argv.slice(3));
  }
  if (process.argv[2] === 'hrana') {
    // Point reads and single INSERTs through Hrana's v2/pipeline beside the same loads on /v1 (bench/hrana.ts).
    // Parsed as read's options (no --shared-dir).
    const options = parseArgs(['read', ...process.argv.slice(3)]);
    if (typeof options === 'string') {
      console.error(`${options}\n\n${USAGE}`);
      return 2;
    }
    const outcome = await runHranaBenchmark(options.options).finally(() => releaseAll());
    console.log(outcome.table);
    const ok = outcome.report.failures.length === 0;
    console.log(JSON.stringify({ ...outcome.report, ok }));
    if (!ok) return 1;
    return options.strict && !outcome.report.all_goals_pass ? 2 : 0;
  }
  if (process.argv[2] === 'statements') {
    // In this process, no server (bench/statements.ts): one point SELECT with and without statement metrics.
    const outcome = runStatementsBenchmark();
    console.log(outcome.table);
    console.log(JSON.stringify({ ...outcome.report, ok: true }));
    return 0;
  }
  if (process.argv[2] === 'memory') {
    // Its own options, processes, report and watchdog (bench/memory.ts): RSS of a Primary, a Replica and a fresh node.
    return runMemoryCommand(process.argv.slice(3));
  }
  if (process.argv[2] === 'restore') {
    // Its own options, report and watchdog (bench/restore.ts): Litebase vs Litestream 0.3.13.
    return runRestoreCommand(process.argv.slice(3));
  }
  if (process.argv[2] === 'scale') {
    // Its own options, processes, report and watchdog (bench/scale.ts): one size after the other.
    return scaleMain(process.argv.slice(3));
  }
  const parsed = parseArgs(process.argv.slice(2));
  if (typeof parsed === 'string') {
    console.error(`${parsed}\n\n${USAGE}`);
    return 2;
  }
  const { command, options, strict } = parsed;
  armWatchdog(command, options);
  let write: WriteReport | undefined;
  let read: ReadReport | undefined;
  try {
    if (command === 'write' || command === 'all') {
      const outcome = await runWriteBenchmark(options);
      write = outcome.report;
      console.log(outcome.table);
      console.log('');
    }
    if (command === 'read' || command === 'all') {
      const outcome = await runReadBenchmark(options);
      read = outcome.report;
      console.log(outcome.table);
      console.log('');
    }
  } catch (error) {
    await releaseAll();
    const message = error instanceof Error ? error.message : String(error);
    console.error(`\nbenchmark failed: ${message}`);
    // Still end with one JSON line, so whoever parses the last line learns what happened.
    console.log(JSON.stringify({ benchmark: command, ok: false, error: message, ...(write ? { write } : {}), ...(read ? { read } : {}) }));
    return 1;
  }
  await releaseAll();

  const reports = [write, read].filter((report): report is WriteReport | ReadReport => report !== undefined);
  const failures = reports.flatMap((report) => report.failures);
  const goalsPass = reports.every((report) => report.all_goals_pass);
  const ok = failures.length === 0;
  if (command === 'all') {
    // Every goal of both reports in one place: the table closes the output, `goals` is in the JSON.
    const goals = [...(write ? writeGoalSummary(write) : []), ...(read ? readGoalSummary(read) : [])];
    console.log(
      renderTable(
        [{ header: 'all goals' }, { header: 'measured', align: 'right' }, { header: 'result' }],
        goals.map((goal) => [`${goal.benchmark}: ${goal.goal}`, formatNumber(goal.measured, 3), goal.pass ? 'PASS' : 'FAIL']),
      ),
    );
    console.log('');
    console.log(JSON.stringify({ benchmark: 'all', ok, all_goals_pass: goalsPass, goals, write, read }));
  } else {
    console.log(JSON.stringify({ ...reports[0], ok }));
  }
  if (!ok) return 1;
  return strict && !goalsPass ? 2 : 0;
}

/**
 * A hung server (a request that never answers, a readiness that never comes) must not keep a CI
 * job waiting: past the expected time plus two minutes, clean up, report, exit 1. With default
 * options that is under the 4 minutes each benchmark is allowed.
 */
function armWatchdog(command: Command, options: BenchOptions): void {
  const window = options.warmupSeconds + options.measureSeconds;
  // write: raw SQLite (2 x 3.5 s) + three ceilings + three INSERT runs (single, batch, no group
  // commit); read: three ceilings + two SELECT runs, and up to 30 s to start and load the Replica's cluster.
  // --shared-dir adds a server start and one INSERT run on the shared folder.
  const shared = options.sharedDirs ? 30 + window : 0;
  const expected = (command === 'read' ? 0 : 7 + 6 * window + shared) + (command === 'write' ? 0 : 30 + 5 * window);
  const limitSeconds = expected + 120;
  const timer = setTimeout(() => {
    const message = `benchmark did not finish within ${limitSeconds} s`;
    console.error(`\n${message}; stopping servers`);
    void releaseAll().finally(() => {
      console.log(JSON.stringify({ benchmark: command, ok: false, error: message }));
      process.exit(1);
    });
  }, limitSeconds * 1000);
  timer.unref();
}

// process.exit rather than exitCode: idle keep-alive sockets or a stray timer from a library must not
// keep a finished benchmark alive. stdout is a pipe or a file here, which Node writes synchronously.
main().then(
  (code) => process.exit(code),
  async (error: unknown) => {
    await releaseAll();
    console.error(error);
    process.exit(1);
  },
);
