/**
 * Point reads served by a Replica (issue 18, item 3), a part of the read benchmark: a Primary and
 * one Replica as `litebase serve` processes on one shared folder (each with its own local dir), the
 * 10,000-row table loaded through the Primary, the Replica caught up, then the read benchmark's
 * very point-SELECT load sent to the Replica beside the POST /v1/ping ceiling of the Replica
 * itself. Every 200 must say `"role":"replica"`: a read answered elsewhere would measure something else.
 */
import { randomBytes } from 'node:crypto';
import { postCeilingSpec, type LoadShape } from './support/ceiling.js';
import { BenchCluster, positionOf, waitForPosition, type ClusterNode } from './support/cluster.js';
import { errorRateProblem, type LoadResult } from './support/load.js';
import { measureSideBySide } from './support/side-by-side.js';
import { checkPointReads, prepopulate, ROWS, SELECT_BODIES, type SendQuery } from './support/point-reads.js';
import { progress, since, type BenchOptions } from './support/report.js';

const DB = 'bench';
const QUERY = `/v1/databases/${DB}/query`;
/** What every answer of the Replica carries (docs/API.md: `node` and `role`: who answered). */
const REPLICA_ROLE = '"role":"replica"';

export interface ReplicaReads {
  /** `POST /v1/ping` on the Replica with the SELECT load's headers and bodies. */
  ceiling: LoadResult;
  reads: LoadResult;
  /** The Primary's position of `bench` after the prepopulation, and the Replica's when the load started. */
  primaryPosition: string;
  replicaPosition: string;
  rowsOnReplica: number;
  /** Lines the two nodes printed after they were ready (at --log-level warn: warnings and errors). */
  log: { lines: number; samples: string[] };
  durations: Record<string, number>;
}

function sender(node: ClusterNode): SendQuery {
  return async (step, statements, minPosition) => {
    const answer = await node.client.request('POST', QUERY, { statements, ...(minPosition === undefined ? {} : { minPosition }) });
    if (answer.status !== 200)
      throw new Error(`${step} on node ${node.id}: POST ${QUERY} answered ${answer.status}: ${answer.text.slice(0, 300)}`);
    return answer.body;
  };
}

function roleOf(body: unknown): unknown {
  return typeof body === 'object' && body !== null ? (body as Record<string, unknown>).role : undefined;
}

export async function measureReplicaReads(options: BenchOptions, failures: string[]): Promise<ReplicaReads> {
  const durations: Record<string, number> = {};
  // Default configuration apart from what BenchCluster sets (ports, folders, --log-level warn).
  const cluster = new BenchCluster(randomBytes(24).toString('hex'), {});
  try {
    let phase = performance.now();
    progress('replica reads: starting a Primary and a Replica on one shared folder');
    const first = await cluster.start('n1');
    const primary = await cluster.primary(first);
    const replica = await cluster.start('n2');
    durations.replica_cluster_start = since(phase);

    phase = performance.now();
    progress(`replica reads: creating table t with ${ROWS} rows through the Primary`);
    const created = await primary.client.request('POST', '/v1/databases', { name: DB });
    if (created.status !== 201) throw new Error(`create database: ${created.status} ${created.text.slice(0, 300)}`);
    const toPrimary = sender(primary);
    await toPrimary('create table', [{ sql: 'CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT)' }]);
    await prepopulate(toPrimary);
    const head = await positionOf(primary, DB);
    if (head === undefined) throw new Error(`the Primary did not report the position of ${DB}`);
    await waitForPosition(replica, DB, head, 60_000, 20);
    const replicaHead = await positionOf(replica, DB);
    // The checks ask for the Primary's position too: a Replica that claimed it without its rows would fail them.
    const toReplica = sender(replica);
    await checkPointReads(toReplica, head.toString(), (body) => {
      if (roleOf(body) !== 'replica') throw new Error(`a point read on node ${replica.id} was answered by role ${String(roleOf(body))}`);
    });
    const count = await toReplica('count rows on the Replica', [{ sql: 'SELECT count(*) FROM t' }]);
    const rowsOnReplica = (count as { results?: { rows?: unknown[][] }[] }).results?.[0]?.rows?.[0]?.[0];
    if (rowsOnReplica !== ROWS) throw new Error(`the Replica holds ${String(rowsOnReplica)} rows, the Primary wrote ${ROWS}`);
    durations.replica_prepopulate = since(phase);

    const load: LoadShape = {
      url: replica.url,
      method: 'POST',
      path: QUERY,
      headers: { authorization: `Bearer ${replica.key}` },
      bodies: SELECT_BODIES,
      connections: options.connections,
      ...(replica.pid === undefined ? {} : { serverPid: replica.pid }),
      accept: (body) => body.includes(REPLICA_ROLE),
    };

    // The Replica's POST ceiling and its SELECTs in alternating windows, as on the single server.
    phase = performance.now();
    const specs = [postCeilingSpec(load, 'Replica HTTP ceiling (POST /v1/ping)'), { ...load, title: 'Litebase point SELECT on a Replica' }];
    const { warmups, measured } = await measureSideBySide(specs, options.warmupSeconds, options.measureSeconds);
    const [ceiling, reads] = measured as [LoadResult, LoadResult];
    replica.assertRunning();
    primary.assertRunning();
    durations.replica_http_ceiling_and_select = since(phase);
    for (const run of [...warmups, ...measured]) {
      const problem = errorRateProblem(run);
      if (problem) failures.push(problem);
    }
    for (const run of [warmups[1], reads]) {
      if (run && run.rejected > 0) failures.push(`${run.title}: ${run.rejected} answers with status 200 did not say ${REPLICA_ROLE}`);
    }

    const logs = [primary.logSummary(), replica.logSummary()];
    return {
      ceiling,
      reads,
      primaryPosition: head.toString(),
      replicaPosition: replicaHead?.toString() ?? 'unknown',
      rowsOnReplica,
      log: { lines: logs.reduce((sum, log) => sum + log.lines, 0), samples: logs.flatMap((log) => log.samples).slice(0, 10) },
      durations,
    };
  } finally {
    await cluster.stopAll();
  }
}
