import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { formatChecksum } from '../../src/format/rolling-checksum.js';
import { decodeSegment } from '../../src/format/segment-codec.js';
import { checksumAsWritten } from '../support/archive-workload.js';
import {
  ComposeProject,
  ContainerCluster,
  ContainerEnvironment,
  prepareDocker,
  ROOT_KEY,
  SHARED_DIR_IN_CONTAINER,
  type ClusterOptions,
  type ContainerNode,
} from '../support/containers.js';
import { sleep, waitFor } from '../support/wait.js';

/**
 * Litebase as it is deployed: every node in its own container (infra/Dockerfile), the shared file
 * system one folder mounted into all of them, s3rver in a container as the object store, and this
 * test driving them over HTTP from outside. The scenarios run one after another in this one file
 * (vitest.config.ts runs it after every other test file, alone), on one network and one s3rver;
 * each starts its own cluster and checks data, not logs.
 *
 * Needs Docker. Without an engine that answers, or without images that can be built, the suite is
 * skipped with the reason; when CI is set it fails instead.
 */
const docker = await prepareDocker();
const required = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false';
if (!docker.ready) console.log(`[containers] ${required ? 'failing, CI needs Docker' : 'skipped'}: ${docker.reason}`);

const LEASE_TTL_MS = 2000;
const SCENARIO_TIMEOUT_MS = 180_000;

let environment: ContainerEnvironment;
const clusters: ContainerCluster[] = [];

async function startCluster(options: ClusterOptions): Promise<ContainerCluster> {
  const cluster = await ContainerCluster.start(environment, { leaseTtlMs: LEASE_TTL_MS, ...options });
  clusters.push(cluster);
  return cluster;
}

/** A scenario is one test; its time is printed whether it passes or not. */
function scenario(name: string, body: () => Promise<void>): void {
  it.skipIf(!docker.ready)(
    name,
    async () => {
      const started = performance.now();
      try {
        await body();
      } finally {
        console.log(`[containers] ${name}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
      }
    },
    SCENARIO_TIMEOUT_MS,
  );
}

async function setup(node: ContainerNode): Promise<void> {
  const created = await node.request('POST', '/v1/databases', { name: 'app' });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const table = await node.request('POST', '/v1/databases/app/query', {
    statements: [{ sql: 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT UNIQUE NOT NULL, big INTEGER, raw BLOB)' }],
  });
  expect(table.status, JSON.stringify(table.body)).toBe(200);
}

/** One acknowledged INSERT: its position, else undefined (an error, a timeout, an unreachable node). */
async function insert(node: ContainerNode, value: string, timeoutMs = 5000): Promise<string | undefined> {
  const response = await node.request(
    'POST',
    '/v1/databases/app/query',
    {
      statements: [
        {
          sql: 'INSERT INTO t(v, big, raw) VALUES (?, ?, ?)',
          params: [value, { $int: '9007199254740993' }, { $blob: Buffer.from(value).toString('base64') }],
        },
      ],
    },
    timeoutMs,
  );
  return response.status === 200 ? (response.body.position as string) : undefined;
}

/** Every row, as the TypeScript client decodes it, once the node has applied `minPosition`. */
async function rowsOn(node: ContainerNode, minPosition: string | bigint, database = 'app'): Promise<unknown[][]> {
  const answer = await node
    .client(15_000)
    .query(database, [{ sql: 'SELECT v, big, raw FROM t ORDER BY v' }], { minPosition: BigInt(minPosition) });
  return answer.results[0]!.rows as unknown[][];
}

async function valuesOn(node: ContainerNode, minPosition: string | bigint, database = 'app'): Promise<string[]> {
  return (await rowsOn(node, minPosition, database)).map((row) => row[0] as string);
}

/** The database's position and rolling checksum as a node reports them. */
async function stateOn(node: ContainerNode, database = 'app'): Promise<{ position: string; checksum: string }> {
  const { status, body } = await node.request('GET', `/v1/databases/${database}`);
  expect(status, JSON.stringify(body)).toBe(200);
  return { position: body.database.position, checksum: body.database.checksum };
}

/**
 * The log in the shared folder, read from the host: positions follow one another from the first
 * segment on, each segment starts from the checksum the previous one ended with, and terms never
 * go down. So there was one history, written by one Primary at a time.
 */
function checkLog(sharedDir: string): { last: bigint; checksum: string } {
  const dir = path.join(sharedDir, 'databases', 'app', 'log');
  const names = readdirSync(dir)
    .filter((name) => name.endsWith('.seg'))
    .sort();
  expect(names.length).toBeGreaterThan(0);
  let previous: { position: bigint; checksum: bigint; term: bigint } | undefined;
  for (const name of names) {
    const { header } = decodeSegment(readFileSync(path.join(dir, name)));
    expect(header.position, name).toBe(BigInt(name.slice(0, 20)));
    if (previous) {
      expect(header.position, `the segment after ${previous.position}`).toBe(previous.position + 1n);
      expect(header.preChecksum, `checksum chain at ${name}`).toBe(previous.checksum);
      expect(header.term, `term of ${name}`).toBeGreaterThanOrEqual(previous.term);
    }
    previous = { position: header.position, checksum: header.postChecksum, term: header.term };
  }
  return { last: previous!.position, checksum: formatChecksum(previous!.checksum) };
}

/** cluster/terms/<term> files: which node won each term. */
function termWinners(sharedDir: string): Map<string, string> {
  const dir = path.join(sharedDir, 'cluster', 'terms');
  return new Map(readdirSync(dir).map((term) => [term, JSON.parse(readFileSync(path.join(dir, term), 'utf8')).nodeId as string]));
}

/** Every node agrees on the rows and the checksum at `position`, and the checksum is the log's. */
async function expectSameEverywhere(nodes: ContainerNode[], position: bigint, logChecksum?: string): Promise<unknown[][]> {
  const rows = await Promise.all(nodes.map((node) => rowsOn(node, position)));
  for (const [index, other] of rows.entries()) expect(other, `rows on ${nodes[index]!.id}`).toEqual(rows[0]);
  const states = await Promise.all(nodes.map((node) => stateOn(node)));
  for (const [index, state] of states.entries()) {
    expect(state.position, `position on ${nodes[index]!.id}`).toBe(position.toString());
    expect(state.checksum, `checksum on ${nodes[index]!.id}`).toBe(logChecksum ?? states[0]!.checksum);
  }
  return rows[0]!;
}

/** Writes through one node in a loop until stopped, keeping what was acknowledged. */
function writeLoop(node: ContainerNode, prefix: string, acknowledged: Map<string, string>): { stop: () => Promise<void> } {
  let running = true;
  const done = (async () => {
    for (let sequence = 0; running; sequence++) {
      const value = `${prefix}-${sequence}`;
      const position = await insert(node, value, 3000);
      if (position !== undefined) acknowledged.set(value, position);
      else await sleep(100);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
    },
  };
}

describe.skipIf(!docker.ready && !required)(`Litebase in containers${docker.ready ? '' : ` (no Docker: ${docker.reason})`}`, () => {
  if (!docker.ready && required) {
    it('has Docker, which CI requires', () => {
      throw new Error(`the container tests need Docker when CI is set: ${docker.reason}`);
    });
  }

  beforeAll(async () => {
    if (!docker.ready) return;
    const started = performance.now();
    environment = await ContainerEnvironment.start();
    console.log(`[containers] network and s3rver: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }, SCENARIO_TIMEOUT_MS);

  afterEach(async (context) => {
    const failed = context.task.result?.state === 'fail';
    for (const cluster of clusters.splice(0)) {
      if (failed) console.error(`[containers] what the nodes printed last:\n${cluster.report()}`);
      await cluster.stop();
      cluster.removeFolder();
    }
  }, 60_000);

  afterAll(async () => {
    await environment?.stop();
  }, 60_000);

  scenario('three nodes and S3: writes through every node, reads with minPosition on every node agree', async () => {
    const cluster = await startCluster({ name: 'rw' });
    await setup(cluster.nodes[0]!);
    const written: string[] = [];
    let last = 0n;
    for (let round = 0; round < 4; round++) {
      for (const [index, node] of cluster.nodes.entries()) {
        const value = `${node.id}-${round}`;
        const position = await insert(node, value);
        expect(position, `write ${value} through ${node.id}`).toBeDefined();
        written.push(value);
        last = BigInt(position!);
        // Read your write on the next node at once: minPosition makes it wait for the position.
        const next = cluster.nodes[(index + 1) % cluster.nodes.length]!;
        expect(await valuesOn(next, last), `${value} on ${next.id}`).toContain(value);
      }
    }
    const log = checkLog(cluster.sharedDir);
    expect(log.last).toBe(last);
    const rows = await expectSameEverywhere(cluster.nodes, last, log.checksum);
    const sorted = [...written].sort();
    expect(rows.map((row) => row[0])).toEqual(sorted);
    // Values round-trip through the cluster: an integer beyond 2^53 and a BLOB (the client answers BLOBs as Uint8Array).
    expect(rows[0]).toEqual([sorted[0], 9007199254740993n, new Uint8Array(Buffer.from(sorted[0]!))]);
  });

  scenario(`the Primary's container is killed: a new Primary within the lease TTL + 2 s, no acknowledged write lost`, async () => {
    const cluster = await startCluster({ name: 'failover' });
    await setup(cluster.nodes[0]!);
    const primary = await cluster.waitForPrimary();
    const survivors = cluster.nodes.filter((node) => node !== primary);
    const termBefore = BigInt((await primary.request('GET', '/v1/cluster')).body.term);
    const acknowledged = new Map<string, string>();
    const writers = cluster.nodes.map((node) => writeLoop(node, `via-${node.id}`, acknowledged));
    await sleep(1500);

    const killedAt = performance.now();
    await cluster.kill(primary);
    const next = await cluster.waitForPrimary(LEASE_TTL_MS + 10_000, survivors);
    const electedAfterMs = performance.now() - killedAt;
    const { body: view } = await next.request('GET', '/v1/cluster');
    expect(BigInt(view.term)).toBeGreaterThan(termBefore);
    await waitFor(async () => (await insert(survivors[0]!, `probe-${Date.now()}`)) !== undefined, 10_000, 'a write through a survivor');
    const servingAfterMs = performance.now() - killedAt;
    console.log(
      `[containers] failover: new Primary ${next.id} (term ${view.term}) ${electedAfterMs.toFixed(0)} ms after the kill, a write acknowledged after ${servingAfterMs.toFixed(0)} ms`,
    );
    expect(electedAfterMs).toBeLessThan(LEASE_TTL_MS + 2000);

    await sleep(1000);
    await Promise.all(writers.map((writer) => writer.stop()));
    expect(acknowledged.size).toBeGreaterThan(10);
    const log = checkLog(cluster.sharedDir);
    const values = await expectSameEverywhere(survivors, log.last, log.checksum);
    const present = new Set(values.map((row) => row[0]));
    for (const value of acknowledged.keys()) expect(present.has(value), `acknowledged ${value}`).toBe(true);
  });

  scenario('the Primary is cut off the network but still sees the shared folder: one Primary at a time, one history', async () => {
    const cluster = await startCluster({ name: 'partition' });
    await setup(cluster.nodes[0]!);
    const primary = await cluster.waitForPrimary();
    const replicas = cluster.nodes.filter((node) => node !== primary);
    const acknowledged = new Map<string, string>();
    for (const node of cluster.nodes) acknowledged.set(`before-${node.id}`, (await insert(node, `before-${node.id}`))!);
    const termsBefore = termWinners(cluster.sharedDir);

    await cluster.disconnect(primary);
    // Who says it is Primary, in which term: the replicas over HTTP from here, the cut-off Primary
    // from a client inside its container (below), which also keeps writing there.
    const claims: Array<{ node: string; term: string; role: string }> = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        for (const node of replicas) {
          const { status, body } = await node.request('GET', '/v1/cluster', undefined, 2000);
          if (status !== 200) continue;
          const self = body.nodes.find((entry: { nodeId: string }) => entry.nodeId === node.id);
          claims.push({ node: node.id, term: body.term, role: self.role });
        }
        await sleep(200);
      }
    })();
    const replicaWrites = replicas.map((node) => writeLoop(node, `replica-side-${node.id}`, acknowledged));
    const inside = JSON.parse(await primary.runScript(insideWriterScript(3 * LEASE_TTL_MS))) as {
      acknowledged: Array<{ value: string; position: string }>;
      claims: Array<{ node: string; term: string; role: string }>;
    };
    await Promise.all(replicaWrites.map((writer) => writer.stop()));
    for (const { value, position } of inside.acknowledged) acknowledged.set(value, position);
    claims.push(...inside.claims);
    // The cut-off Primary kept its lease through the shared folder and kept taking writes there...
    expect(inside.acknowledged.length, 'writes acknowledged inside the cut-off Primary').toBeGreaterThan(5);
    // ...and the replicas, cut off from it, still applied them: they read the log, not the network.
    const lastInside = inside.acknowledged.at(-1)!.position;
    for (const node of replicas)
      expect(await valuesOn(node, lastInside), `${node.id} during the partition`).toContain(inside.acknowledged.at(-1)!.value);

    await cluster.reconnect(primary);
    // Writes through the replicas are forwarded to the Primary again.
    for (const node of replicas) {
      await waitFor(
        async () => {
          const value = `after-${node.id}-${Date.now()}`;
          const position = await insert(node, value, 3000);
          if (position !== undefined) acknowledged.set(value, position);
          return position !== undefined;
        },
        20_000,
        `a write through ${node.id} after the reconnect`,
      );
    }
    await waitFor(
      async () => (await primary.request('GET', '/healthz', undefined, 1000)).status === 200,
      10_000,
      'the Primary reachable again',
    );
    sampling = false;
    await sampler;

    // One Primary at a time: every node that said it was Primary won that term (cluster/terms), and
    // a term has one winner by construction (exclusive create).
    const winners = termWinners(cluster.sharedDir);
    for (const claim of claims.filter((entry) => entry.role === 'primary'))
      expect(winners.get(claim.term), `term ${claim.term}`).toBe(claim.node);
    // Election goes through the shared folder, which the Primary never lost: nobody stood.
    expect(winners, 'terms won during the partition').toEqual(termsBefore);
    const views = await Promise.all(cluster.nodes.map(async (node) => (await node.request('GET', '/v1/cluster')).body));
    for (const view of views) {
      expect(view.primary.nodeId).toBe(primary.id);
      expect(
        view.nodes.filter((entry: { role: string }) => entry.role === 'primary').map((entry: { nodeId: string }) => entry.nodeId),
      ).toEqual([primary.id]);
    }

    // A write whose client gave up (3 s, outcome unknown) may still commit after it: compare the
    // nodes once the log has stopped growing, or the Primary can show a row the others were not
    // asked to wait for.
    let lastSeen = checkLog(cluster.sharedDir).last;
    await waitFor(
      async () => {
        await sleep(1000);
        const now = checkLog(cluster.sharedDir).last;
        const settled = now === lastSeen;
        lastSeen = now;
        return settled;
      },
      20_000,
      'the log to stop growing',
    );
    // One history: the log is one chain, every node has every acknowledged write, same checksum.
    const log = checkLog(cluster.sharedDir);
    const rows = await expectSameEverywhere(cluster.nodes, log.last, log.checksum);
    const present = new Set(rows.map((row) => row[0]));
    for (const value of acknowledged.keys()) expect(present.has(value), `acknowledged ${value}`).toBe(true);
    console.log(
      `[containers] partition: ${inside.acknowledged.length} writes inside the cut-off Primary, ${acknowledged.size} acknowledged in all, ${claims.length} role samples`,
    );
  });

  scenario(
    'compaction archives to the S3 container; with the shared log deleted, a fresh cluster restores to a timestamp from S3 alone',
    async () => {
      const prefix = 'archive';
      const cluster = await startCluster({ name: 'archive', objectStorePrefix: prefix });
      await setup(cluster.nodes[0]!);
      const databaseId = (await cluster.nodes[0]!.request('GET', '/v1/databases/app')).body.database.id as string;
      const early: string[] = [];
      for (let index = 0; index < 9; index++) {
        const value = `early-${index}`;
        expect(await insert(cluster.nodes[index % 3]!, value)).toBeDefined();
        early.push(value);
      }
      // Commit times are the Primary's clock in ms; this one is after every early write's.
      await sleep(50);
      const betweenTime = new Date().toISOString();
      await sleep(50);
      const late: string[] = [];
      let last = '';
      for (let index = 0; index < 9; index++) {
        const value = `late-${index}`;
        last = (await insert(cluster.nodes[index % 3]!, value))!;
        expect(last).toBeDefined();
        late.push(value);
      }
      await valuesOn(cluster.nodes[0]!, last);
      const expected = await stateOn(cluster.nodes[0]!);

      // Asked through a Replica: compaction runs on the Primary.
      const primary = await cluster.waitForPrimary();
      const replica = cluster.nodes.find((node) => node !== primary)!;
      const compacted = await replica.request('POST', '/v1/databases/app/compact', undefined, 60_000);
      expect(compacted.status, JSON.stringify(compacted.body)).toBe(200);
      expect(compacted.body.compaction.archivedThrough).toBe(last);
      const s3 = new S3Client({
        endpoint: environment.s3Endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      });
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: 'litebase', Prefix: `${prefix}/databases/app/` }));
      s3.destroy();
      const keys = (listed.Contents ?? []).map((object) => object.Key!);
      expect(
        keys.some((key) => key.includes('/segments/')),
        keys.join(', '),
      ).toBe(true);
      expect(keys.some((key) => key.includes('/manifests/')) && keys.some((key) => key.includes('/ranges/')), keys.join(', ')).toBe(true);

      // The shared file system is lost: the old cluster goes, and its databases with their logs.
      await cluster.stop();
      rmSync(path.join(cluster.sharedDir, 'databases'), { recursive: true, force: true });
      expect(existsSync(path.join(cluster.sharedDir, 'databases', 'app', 'log'))).toBe(false);

      const fresh = await startCluster({ name: 'restored', objectStorePrefix: prefix });
      const restoreNode = fresh.nodes[0]!;
      // Offline, with the CLI in a container, straight from S3 into files.
      const restore = async (args: string[], file: string): Promise<string> => {
        const result = await restoreNode.litebase(['restore', 'app', ...args, '--output', `${SHARED_DIR_IN_CONTAINER}/${file}`]);
        expect(result.exitCode, result.stderr).toBe(0);
        return path.join(fresh.sharedDir, file);
      };
      const betweenFile = await restore(['--timestamp', betweenTime], 'between.sqlite');
      const latestFile = await restore(['--timestamp', new Date().toISOString()], 'latest.sqlite');
      const values = (file: string): string[] => {
        const db = new Database(file, { readonly: true });
        try {
          expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
          return db.prepare('SELECT v FROM t ORDER BY v').pluck().all() as string[];
        } finally {
          db.close();
        }
      };
      expect(values(betweenFile)).toEqual([...early].sort());
      expect(values(latestFile)).toEqual([...early, ...late].sort());
      // Page for page the database the old cluster had at its last position.
      expect(expected.position).toBe(last);
      expect(await checksumAsWritten(latestFile)).toBe(expected.checksum);
      // The fresh cluster knows nothing of app: only the object store has it.
      expect((await restoreNode.request('GET', '/v1/databases/app')).status).toBe(404);

      // Through the fresh cluster's HTTP API, asked of a Replica (restores run on the Primary): the
      // restore points and the restore come from S3 alone, into the database's own name.
      const freshPrimary = await fresh.waitForPrimary();
      const freshReplica = fresh.nodes.find((node) => node !== freshPrimary)!;
      const points = await freshReplica.request('GET', '/v1/databases/app/restore-points');
      expect(points.status, JSON.stringify(points.body)).toBe(200);
      expect(points.body).toMatchObject({
        database: 'app',
        databaseId,
        source: 'archive',
        earliest: { position: '1' },
        latest: { position: last },
      });
      const restored = await freshReplica.request(
        'POST',
        '/v1/databases/app/restore',
        { timestamp: betweenTime, target: 'app', wait: true },
        60_000,
      );
      expect(restored.status, JSON.stringify(restored.body)).toBe(200);
      expect(restored.body.restore).toMatchObject({ target: 'app', source: 'archive', databaseId, status: 'succeeded' });
      const restoredAt = restored.body.restore.result.database.position as string;
      // Every node serves it: the rows as of that time, the pages of the offline restore to it.
      const betweenChecksum = await checksumAsWritten(betweenFile);
      for (const node of fresh.nodes) {
        expect(await valuesOn(node, restoredAt), `rows on ${node.id}`).toEqual([...early].sort());
        expect((await stateOn(node)).checksum, `checksum on ${node.id}`).toBe(betweenChecksum);
      }
      // And it is an ordinary replicated database again: a write through a Replica, read everywhere.
      const after = await insert(freshReplica, 'after-restore');
      expect(after).toBeDefined();
      const rows = await expectSameEverywhere(fresh.nodes, BigInt(after!));
      expect(rows.map((row) => row[0])).toEqual([...early, 'after-restore'].sort());

      // The CLI through the server: the lost database's newest state, by its id (the name is taken
      // by the restored database now), into a new name.
      const cli = await restoreNode.litebase([
        'restore',
        'app',
        '--timestamp',
        new Date().toISOString(),
        '--to',
        'app-latest',
        '--database-id',
        databaseId,
        '--url',
        'http://127.0.0.1:8080',
        '--key',
        ROOT_KEY,
        '--json',
      ]);
      expect(cli.exitCode, cli.stderr).toBe(0);
      expect(JSON.parse(cli.stdout)).toMatchObject({
        target: 'app-latest',
        source: 'archive',
        databaseId,
        result: { position: last, checksum: expected.checksum },
      });
      const latestAt = JSON.parse(cli.stdout).result.database.position as string;
      for (const node of fresh.nodes) {
        expect(await valuesOn(node, latestAt, 'app-latest'), `app-latest on ${node.id}`).toEqual([...early, ...late].sort());
        expect((await stateOn(node, 'app-latest')).checksum, `app-latest checksum on ${node.id}`).toBe(expected.checksum);
      }
    },
  );

  scenario('every container restarts at once: the cluster comes back with all its data', async () => {
    const cluster = await startCluster({ name: 'restart' });
    await setup(cluster.nodes[0]!);
    const acknowledged: string[] = [];
    for (let round = 0; round < 3; round++) {
      for (const node of cluster.nodes) {
        const value = `${node.id}-${round}`;
        expect(await insert(node, value)).toBeDefined();
        acknowledged.push(value);
      }
    }
    const before = checkLog(cluster.sharedDir);
    await Promise.all(cluster.nodes.map((node) => node.restart()));
    await cluster.waitForPrimary(LEASE_TTL_MS + 15_000);
    expect(await expectSameEverywhere(cluster.nodes, before.last, before.checksum)).toHaveLength(acknowledged.length);
    // And it takes writes again, through every node.
    for (const node of cluster.nodes) {
      const value = `after-${node.id}`;
      await waitFor(async () => ((await insert(node, value, 3000)) ?? '') !== '', 15_000, `a write through ${node.id}`);
      acknowledged.push(value);
    }
    const after = checkLog(cluster.sharedDir);
    const rows = await expectSameEverywhere(cluster.nodes, after.last, after.checksum);
    expect(rows.map((row) => row[0])).toEqual([...acknowledged].sort());
  });

  scenario(
    'infra/compose.yaml: three nodes, s3rver and the load balancer come up; a write through a replica is read elsewhere, one through the load balancer too, and archived to S3',
    async () => {
      const rootKey = 'compose-test-root-key-0123456789';
      const compose = await ComposeProject.find(`litebase-compose-${process.pid}`, { LITEBASE_ROOT_KEY: rootKey });
      if (typeof compose === 'string') {
        if (required) throw new Error(`CI needs a compose command for this scenario: ${compose}`);
        console.log(`[containers] compose scenario skipped: ${compose}`);
        return;
      }
      const call = async (port: number, method: string, route: string, body?: unknown): Promise<{ status: number; body: any }> => {
        const response = await fetch(`http://127.0.0.1:${port}${route}`, {
          method,
          headers: { authorization: `Bearer ${rootKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          signal: AbortSignal.timeout(10_000),
        });
        return { status: response.status, body: await response.json().catch(() => undefined) };
      };
      try {
        await compose.run('up', '-d');
        await waitFor(
          async () => {
            const view = await call(8081, 'GET', '/v1/cluster').catch(() => undefined);
            if (view?.status !== 200 || view.body.nodes.length !== 3 || view.body.primary === null) return false;
            // A node's heartbeat comes before it listens: every node must answer as well.
            const ready = await Promise.all([8081, 8082, 8083].map((port) => call(port, 'GET', '/readyz').catch(() => ({ status: 0 }))));
            return ready.every((answer) => answer.status === 200);
          },
          60_000,
          'three nodes that answer, and a Primary',
          250,
        );
        // Through n2 whatever its role (a replica forwards), read on n3 with minPosition.
        await waitFor(
          async () => (await call(8082, 'POST', '/v1/databases', { name: 'app' }).catch(() => ({ status: 0 }))).status === 201,
          30_000,
          'app created',
          250,
        );
        const written = await call(8082, 'POST', '/v1/databases/app/query', {
          statements: [{ sql: 'CREATE TABLE t(v TEXT)' }, { sql: 'INSERT INTO t VALUES (?)', params: ['composed'] }],
        });
        expect(written.status, JSON.stringify(written.body)).toBe(200);
        const read = await call(8083, 'POST', '/v1/databases/app/query', {
          statements: [{ sql: 'SELECT v FROM t' }],
          minPosition: written.body.position,
        });
        expect(read.body.results[0].rows).toEqual([['composed']]);
        // The one address applications use: HAProxy (service lb) in front of the three nodes.
        await waitFor(
          async () => (await call(8080, 'GET', '/readyz').catch(() => ({ status: 0 }))).status === 200,
          30_000,
          'the load balancer',
          250,
        );
        const balanced = await call(8080, 'POST', '/v1/databases/app/query', {
          statements: [{ sql: 'INSERT INTO t VALUES (?)', params: ['balanced'] }],
        });
        expect(balanced.status, JSON.stringify(balanced.body)).toBe(200);
        const readBalanced = await call(8080, 'POST', '/v1/databases/app/query', {
          statements: [{ sql: 'SELECT v FROM t ORDER BY v' }],
          minPosition: balanced.body.position,
        });
        expect(readBalanced.body.results[0].rows).toEqual([['balanced'], ['composed']]);
        const compacted = await call(8083, 'POST', '/v1/databases/app/compact');
        expect(compacted.status, JSON.stringify(compacted.body)).toBe(200);
        const points = await call(8081, 'GET', '/v1/databases/app/restore-points');
        expect(points.body.latest.position).toBe(balanced.body.position);
      } finally {
        await compose.run('down', '-v').catch((error: unknown) => console.error(`[containers] compose down: ${String(error)}`));
      }
    },
  );
});

/**
 * A client inside the Primary's container (it reaches the node on 127.0.0.1 while the network is
 * gone): writes for `durationMs`, and after each write asks the node whether it is still Primary.
 * Prints { acknowledged, claims } as JSON.
 */
function insideWriterScript(durationMs: number): string {
  return `
    const headers = { authorization: 'Bearer ' + process.env.LITEBASE_ROOT_KEY, 'content-type': 'application/json' };
    const node = process.env.LITEBASE_NODE_ID;
    const acknowledged = [];
    const claims = [];
    const until = Date.now() + ${durationMs};
    for (let sequence = 0; Date.now() < until; sequence++) {
      const value = 'inside-' + sequence;
      try {
        const response = await fetch('http://127.0.0.1:8080/v1/databases/app/query', {
          method: 'POST', headers, signal: AbortSignal.timeout(3000),
          body: JSON.stringify({ statements: [{ sql: 'INSERT INTO t(v) VALUES (?)', params: [value] }] }),
        });
        const body = await response.json();
        if (response.status === 200) acknowledged.push({ value, position: body.position });
        const view = await (await fetch('http://127.0.0.1:8080/v1/cluster', { headers })).json();
        claims.push({ node, term: view.term, role: view.nodes.find((entry) => entry.nodeId === node).role });
      } catch {}
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    console.log(JSON.stringify({ acknowledged, claims }));
  `;
}
