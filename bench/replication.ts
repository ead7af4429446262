/**
 * Replication benchmark (`npm run bench -- replication`): one Primary and two Replicas as separate
 * processes on one shared folder.
 * - Visibility lag: a paced writer sends INSERTs to the Primary; right after each acknowledgement,
 *   each Replica gets a read with `minPosition` set to the acknowledged position. A Replica answers
 *   as soon as it has applied that position (it waits event-driven, it does not poll), so the time
 *   from the acknowledgement to the answer is the lag plus one local HTTP round trip, which is
 *   measured on its own and reported beside it. Run with watching on, then with polling only.
 * - Catch-up: a fresh node with an empty local dir joins while the log holds every segment; the
 *   time from its start until it has applied the last position gives positions/s and MiB/s, beside
 *   a plain sequential read of the same segment files.
 * The last line printed is one JSON object.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(REPO, 'bin', 'litebase.js');
const KEY = 'bench-replication-key';
const WRITES_PER_SECOND = 200;
const VISIBILITY_SECONDS = 8;

interface Node {
  id: string;
  port: number;
  url: string;
  localDir: string;
  child: ChildProcess;
}

const nodes: Node[] = [];
let root = '';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

async function call(node: Node, method: string, url: string, body?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(node.url + url, {
    method,
    headers: { authorization: `Bearer ${KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

async function startNode(id: string, extra: string[] = []): Promise<Node> {
  const port = await freePort();
  const localDir = path.join(root, `local-${id}`);
  const child = spawn(
    process.execPath,
    [CLI, 'serve', '--data-dir', path.join(root, 'shared'), '--local-dir', localDir, '--node-id', id, '--port', String(port),
      '--host', '127.0.0.1', '--advertise-address', `http://127.0.0.1:${port}`, '--root-key', KEY, '--log-level', 'warn', ...extra],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH ?? '' } },
  );
  const node: Node = { id, port, url: `http://127.0.0.1:${port}`, localDir, child };
  nodes.push(node);
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`node ${id} exited with ${child.exitCode}`);
    const ready = await call(node, 'GET', '/readyz').catch(() => undefined);
    if (ready?.status === 200) return node;
    if (Date.now() > deadline) throw new Error(`node ${id} not ready`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function stopNode(node: Node): Promise<void> {
  if (node.child.exitCode !== null) return;
  const exited = new Promise((resolve) => node.child.once('exit', resolve));
  node.child.kill('SIGTERM');
  await exited;
  nodes.splice(nodes.indexOf(node), 1);
}

async function primaryOf(candidates: Node[]): Promise<Node> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const view = await call(candidates[0]!, 'GET', '/v1/cluster').catch(() => undefined);
    const address = view?.body?.primary?.address;
    const found = candidates.find((node) => node.url === address);
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('no primary elected');
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;

interface Visibility {
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  samples: number;
  rtt_ms: number;
}

/** Paced writes to the Primary; after each, reads with minPosition on every Replica, timed from the ack. */
async function measureVisibility(primary: Node, replicas: Node[], seconds: number): Promise<Visibility> {
  // The floor: a read that does not wait, on the same replicas.
  const rtts: number[] = [];
  for (let i = 0; i < 200; i++) {
    const replica = replicas[i % replicas.length]!;
    const start = performance.now();
    await call(replica, 'POST', '/v1/databases/bench/query', { statements: [{ sql: 'SELECT 1' }] });
    rtts.push(performance.now() - start);
  }
  rtts.sort((a, b) => a - b);
  const lags: number[] = [];
  const interval = 1000 / WRITES_PER_SECOND;
  const end = Date.now() + seconds * 1000;
  let sequence = 0;
  while (Date.now() < end) {
    const started = performance.now();
    const write = await call(primary, 'POST', '/v1/databases/bench/query', {
      statements: [{ sql: 'INSERT INTO t(v) VALUES (?)', params: [`row-${sequence++}-${'x'.repeat(100)}`] }],
    });
    if (write.status !== 200) throw new Error(`write failed: ${JSON.stringify(write.body)}`);
    const acked = performance.now();
    const probes = await Promise.all(
      replicas.map(async (replica) => {
        const answer = await call(replica, 'POST', '/v1/databases/bench/query', {
          statements: [{ sql: 'SELECT 1' }],
          minPosition: write.body.position,
        });
        if (answer.status !== 200) throw new Error(`replica read failed: ${JSON.stringify(answer.body)}`);
        return performance.now() - acked;
      }),
    );
    lags.push(...probes);
    const wait = interval - (performance.now() - started);
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
  lags.sort((a, b) => a - b);
  return {
    p50_ms: round(percentile(lags, 50)),
    p99_ms: round(percentile(lags, 99)),
    max_ms: round(lags[lags.length - 1] ?? NaN),
    samples: lags.length,
    rtt_ms: round(percentile(rtts, 50)),
  };
}

/** Many concurrent writers for a while: a long log for the catch-up measurement. */
async function buildLog(primary: Node, seconds: number): Promise<void> {
  const end = Date.now() + seconds * 1000;
  let sequence = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (Date.now() < end) {
        await call(primary, 'POST', '/v1/databases/bench/query', {
          statements: [{ sql: 'INSERT INTO t(v) VALUES (?)', params: [`bulk-${sequence++}-${'y'.repeat(400)}`] }],
        });
      }
    }),
  );
}

export interface ReplicationReport {
  visibility: { watch: Visibility; poll_only: Visibility & { poll_ms: number } };
  catch_up: {
    positions: number;
    bytes: number;
    seconds: number;
    positions_per_s: number;
    mib_per_s: number;
    raw_read_mib_per_s: number;
    ratio_to_raw: number;
  };
  goals: { p99_lag_le_20ms: boolean; catch_up_ge_half_raw: boolean };
  machine: { cpus: number; node: string };
}

export async function runReplicationBenchmark(): Promise<ReplicationReport> {
  root = mkdtempSync(path.join(process.env.LITEBASE_BENCH_TMPDIR ?? tmpdir(), 'litebase-bench-replication-'));
  try {
    const cluster = [await startNode('n1'), await startNode('n2'), await startNode('n3')];
    const primary = await primaryOf(cluster);
    let replicas = cluster.filter((node) => node !== primary);
    await call(primary, 'POST', '/v1/databases', { name: 'bench' });
    await call(primary, 'POST', '/v1/databases/bench/query', { statements: [{ sql: 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)' }] });
    process.stderr.write('visibility lag, watching on\n');
    const watch = await measureVisibility(primary, replicas, VISIBILITY_SECONDS);

    process.stderr.write('visibility lag, polling only (--no-replica-watch, poll 1000 ms)\n');
    for (const replica of replicas) await stopNode(replica);
    replicas = [await startNode('n2', ['--no-replica-watch']), await startNode('n3', ['--no-replica-watch'])];
    const pollOnly = await measureVisibility(primary, replicas, VISIBILITY_SECONDS);

    process.stderr.write('building a long log for catch-up\n');
    await buildLog(primary, 10);
    const logDir = path.join(root, 'shared', 'databases', 'bench', 'log');
    const segments = readdirSync(logDir).filter((name) => name.endsWith('.seg')).sort();
    const last = (await call(primary, 'GET', '/v1/databases/bench')).body.database.position as string;
    const bytes = segments.reduce((sum, name) => sum + statSync(path.join(logDir, name)).size, 0);

    process.stderr.write(`catch-up of a fresh node over ${segments.length} segments\n`);
    const started = performance.now();
    const fresh = await startNode('n9');
    while (BigInt((await call(fresh, 'GET', '/v1/databases/bench')).body.database.position) < BigInt(last)) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const seconds = (performance.now() - started) / 1000;

    // The same bytes read plainly, one file after another (the page cache is warm for both).
    const readStarted = performance.now();
    let readBytes = 0;
    for (const name of segments) readBytes += readFileSync(path.join(logDir, name)).length;
    const rawSeconds = (performance.now() - readStarted) / 1000;
    const mib = bytes / 1024 / 1024;
    const rawMibPerS = readBytes / 1024 / 1024 / rawSeconds;
    const catchUp = {
      positions: segments.length,
      bytes,
      seconds: round(seconds, 3),
      positions_per_s: round(segments.length / seconds, 0),
      mib_per_s: round(mib / seconds, 1),
      raw_read_mib_per_s: round(rawMibPerS, 1),
      ratio_to_raw: round(mib / seconds / rawMibPerS, 3),
    };
    return {
      visibility: { watch, poll_only: { ...pollOnly, poll_ms: 1000 } },
      catch_up: catchUp,
      goals: { p99_lag_le_20ms: watch.p99_ms <= 20, catch_up_ge_half_raw: catchUp.ratio_to_raw >= 0.5 },
      machine: { cpus: cpus().length, node: process.version },
    };
  } finally {
    for (const node of [...nodes]) node.child.kill('SIGKILL');
    nodes.splice(0);
    rmSync(root, { recursive: true, force: true });
  }
}

export function printReplicationReport(report: ReplicationReport): void {
  const row = (label: string, v: Visibility) =>
    `${label.padEnd(34)} p50 ${String(v.p50_ms).padStart(7)} ms  p99 ${String(v.p99_ms).padStart(7)} ms  max ${String(v.max_ms).padStart(7)} ms  (${v.samples} samples; local read RTT ${v.rtt_ms} ms)`;
  console.log('visibility lag: Primary acknowledgement -> readable on a Replica');
  console.log(row('  watching + poll (default)', report.visibility.watch));
  console.log(row('  poll only (1000 ms)', report.visibility.poll_only));
  const c = report.catch_up;
  console.log(`catch-up of a fresh replica: ${c.positions} positions, ${(c.bytes / 1024 / 1024).toFixed(1)} MiB in ${c.seconds} s`);
  console.log(`  ${c.positions_per_s} positions/s, ${c.mib_per_s} MiB/s; plain read of the same files ${c.raw_read_mib_per_s} MiB/s; ratio ${c.ratio_to_raw}`);
  console.log(`goals: p99 lag <= 20 ms: ${report.goals.p99_lag_le_20ms ? 'PASS' : 'FAIL'}; catch-up >= 0.5x plain read: ${report.goals.catch_up_ge_half_raw ? 'PASS' : 'FAIL'}`);
}
