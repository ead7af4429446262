import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeSegment } from '../../../src/format/segment-codec.js';
import { tempDir, TestServer } from '../../support/server.js';
import { waitFor } from '../../support/wait.js';

/**
 * Several `litebase serve` processes on one shared folder (standing in for NFS), on 127.0.0.1.
 * Everything is checked through real HTTP and real files.
 */
const LEASE_TTL_MS = 1000;
const servers: TestServer[] = [];

afterEach(async (context) => {
  for (const server of servers.splice(0)) {
    // A failed test shows what the servers logged as errors.
    if (context.task.result?.state === 'fail') {
      const errors = server.output.split('\n').filter((line) => line.includes('"level":50'));
      if (errors.length > 0) console.error(`${server.url}:\n${errors.slice(0, 5).join('\n')}`);
    }
    if (server.child.signalCode === 'SIGSTOP') server.child.kill('SIGCONT');
    await server.stop('SIGKILL');
  }
});

async function startNode(dataDir: string, nodeId: string, port?: number): Promise<TestServer> {
  const server = await TestServer.start({
    dataDir,
    nodeId,
    ...(port ? { port } : {}),
    env: { LITEBASE_LEASE_TTL_MS: String(LEASE_TTL_MS), LITEBASE_REPLICA_POLL_MS: '200', LITEBASE_WAIT_TIMEOUT_MS: '8000' },
  });
  servers.push(server);
  return server;
}

async function startCluster(count: number): Promise<{ dataDir: string; nodes: TestServer[] }> {
  const dataDir = tempDir('litebase-cluster-');
  const nodes: TestServer[] = [];
  for (let i = 1; i <= count; i++) nodes.push(await startNode(dataDir, `n${i}`));
  await waitFor(async () => (await primaryOf(nodes)) !== undefined, 10_000, 'a primary');
  return { dataDir, nodes };
}

async function cluster(node: TestServer): Promise<any> {
  return (await node.request('GET', '/v1/cluster')).body;
}

async function primaryOf(nodes: TestServer[]): Promise<TestServer | undefined> {
  for (const node of nodes) {
    if (node.child.exitCode !== null || node.child.signalCode !== null) continue;
    const status = await cluster(node).catch(() => undefined);
    const id = status?.primary?.nodeId;
    const self = status?.nodes?.find((n: { nodeId: string }) => n.nodeId === id);
    if (id && self?.role === 'primary') return nodes.find((candidate) => candidate.url === self.address);
  }
  return undefined;
}

const insert = (node: TestServer, value: string) =>
  node.request('POST', '/v1/databases/app/query', { statements: [{ sql: 'INSERT INTO t(v) VALUES (?)', params: [value] }] });

async function setup(node: TestServer): Promise<void> {
  expect((await node.request('POST', '/v1/databases', { name: 'app' })).status).toBe(201);
  const created = await node.request('POST', '/v1/databases/app/query', {
    statements: [{ sql: 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT UNIQUE)' }],
  });
  expect(created.status, JSON.stringify(created.body)).toBe(200);
}

async function valuesOn(node: TestServer, minPosition?: string): Promise<string[]> {
  const response = await node.request('POST', '/v1/databases/app/query', {
    statements: [{ sql: 'SELECT v FROM t ORDER BY v' }],
    ...(minPosition ? { minPosition } : {}),
  });
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return response.body.results[0].rows.map((row: string[]) => row[0]);
}

/**
 * Every segment in the log: its position is its file name, each starts where the last ended, and
 * terms never go down (a deposed Primary appended nothing after a newer one took over).
 */
function checkLog(dataDir: string): { last: bigint; checksum: bigint } {
  const dir = path.join(dataDir, 'databases', 'app', 'log');
  const names = readdirSync(dir)
    .filter((name) => name.endsWith('.seg'))
    .sort();
  let expected = 0n;
  let last = 0n;
  let term = 0n;
  for (const name of names) {
    const { header } = decodeSegment(readFileSync(path.join(dir, name)));
    expect(header.term, `term of ${name}`).toBeGreaterThanOrEqual(term);
    term = header.term;
    expect(header.position).toBe(BigInt(name.slice(0, 20)));
    expect(header.position).toBe(last + 1n);
    expect(header.preChecksum).toBe(expected);
    expected = header.postChecksum;
    last = header.position;
  }
  return { last, checksum: expected };
}

async function sameEverywhere(nodes: TestServer[], position: string): Promise<void> {
  const live = nodes.filter((node) => node.child.exitCode === null && node.child.signalCode === null);
  const sums = new Set<string>();
  for (const node of live) {
    await valuesOn(node, position);
    sums.add((await node.request('GET', '/v1/databases/app')).body.database.checksum);
  }
  expect(sums.size).toBe(1);
}

describe('cluster on a shared folder', () => {
  it('elects one primary; writes through any node; reads with minPosition agree everywhere', async () => {
    const { nodes } = await startCluster(3);
    const views = await Promise.all(nodes.map(cluster));
    expect(new Set(views.map((view) => view.term)).size).toBe(1);
    expect(new Set(views.map((view) => view.primary.nodeId)).size).toBe(1);
    for (const view of views) {
      expect(view.nodes).toHaveLength(3);
      expect(view.nodes.filter((node: { role: string }) => node.role === 'primary')).toHaveLength(1);
    }
    await setup(nodes[1]!);
    let position = '0';
    for (const [index, node] of nodes.entries()) {
      const response = await insert(node, `from-${index}`);
      expect(response.status, JSON.stringify(response.body)).toBe(200);
      position = response.body.position;
    }
    for (const node of nodes) expect(await valuesOn(node, position)).toEqual(['from-0', 'from-1', 'from-2']);
    // Interactive transactions are pinned to the primary, whichever node the client talks to.
    const currentPrimary = await primaryOf(nodes);
    const replica = nodes.find((node) => node !== currentPrimary)!;
    expect((await insert(replica, 'via-replica')).body.role).toBe('primary');
    const begin = await replica.request('POST', '/v1/databases/app/transactions', { timeoutMs: 3000 });
    expect(begin.status).toBe(201);
    const id = begin.body.transaction.id;
    await replica.request('POST', `/v1/databases/app/transactions/${id}/query`, {
      statements: [{ sql: "INSERT INTO t(v) VALUES ('tx')" }],
    });
    const commit = await replica.request('POST', `/v1/databases/app/transactions/${id}/commit`);
    expect(commit.status, JSON.stringify(commit.body)).toBe(200);
    for (const node of nodes) expect(await valuesOn(node, commit.body.position)).toContain('tx');
    await waitFor(
      async () => {
        const view = await cluster(nodes[0]!);
        return view.nodes.every((node: any) => node.databases.app?.lag === 0);
      },
      // Heartbeats carry positions once a second: a few rounds on a loaded machine.
      10_000,
      'zero lag in /v1/cluster',
    );
  });

  it('fails over after kill -9 of the primary within TTL + 2 s and loses no acknowledged write', async () => {
    const { dataDir, nodes } = await startCluster(3);
    await setup(nodes[0]!);
    const primary = (await primaryOf(nodes))!;
    const survivors = nodes.filter((node) => node !== primary);
    const acknowledged: string[] = [];
    let stop = false;
    let sequence = 0;
    const writer = async (node: TestServer) => {
      while (!stop) {
        const value = `w${sequence++}`;
        try {
          const response = await insert(node, value);
          if (response.status === 200) acknowledged.push(value);
          else {
            expect(response.status, JSON.stringify(response.body)).toBe(503);
            expect(response.headers.get('retry-after')).not.toBeNull();
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 50)); // the killed node
        }
      }
    };
    const writers = [writer(survivors[0]!), writer(survivors[1]!), writer(primary)];
    await new Promise((resolve) => setTimeout(resolve, 800));
    const killedAt = Date.now();
    await primary.kill9();
    await waitFor(async () => (await primaryOf(survivors)) !== undefined, LEASE_TTL_MS + 4000, 'a new primary');
    // A new primary must be serving writes within lease TTL + 2 s.
    await waitFor(async () => (await insert(survivors[0]!, `probe-${Date.now()}`)).status === 200, 10_000, 'a write');
    const servingAfterMs = Date.now() - killedAt;
    expect(servingAfterMs).toBeLessThan(LEASE_TTL_MS + 2000 + 1500);
    await new Promise((resolve) => setTimeout(resolve, 500));
    stop = true;
    await Promise.all(writers);
    expect(acknowledged.length).toBeGreaterThan(20);
    const { last } = checkLog(dataDir);
    for (const node of survivors) {
      const values = await valuesOn(node, last.toString());
      for (const value of acknowledged) expect(values, `acknowledged ${value}`).toContain(value);
    }
    await sameEverywhere(survivors, last.toString());
  });

  it('fences a SIGSTOPped primary: after SIGCONT it steps down without appending, many times under load', async () => {
    const { dataDir, nodes } = await startCluster(3);
    await setup(nodes[0]!);
    const acknowledged: string[] = [];
    let stop = false;
    let sequence = 0;
    let paused: TestServer | undefined;
    const writer = async () => {
      while (!stop) {
        // Clients talk to the nodes that run; the paused one would just hold the request.
        for (const node of nodes.filter((candidate) => candidate !== paused)) {
          if (stop) break;
          const value = `s${sequence++}`;
          const response = await fetch(`${node.url}/v1/databases/app/query`, {
            method: 'POST',
            headers: { authorization: `Bearer ${node.key}`, 'content-type': 'application/json' },
            body: JSON.stringify({ statements: [{ sql: 'INSERT INTO t(v) VALUES (?)', params: [value] }] }),
            signal: AbortSignal.timeout(3000),
          }).catch(() => undefined);
          if (response?.status === 200) acknowledged.push(value);
          else {
            if (process.env.DEBUG_CLUSTER) console.log(node.url, response?.status, response && (await response.text()));
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
        }
      }
    };
    const writers = [writer(), writer(), writer(), writer()];
    for (let round = 0; round < 3; round++) {
      const primary = (await primaryOf(nodes))!;
      const termBefore = BigInt((await cluster(primary)).term);
      paused = primary;
      primary.child.kill('SIGSTOP');
      const others = nodes.filter((node) => node !== primary);
      await waitFor(
        async () => {
          const next = await primaryOf(others);
          return next !== undefined && BigInt((await cluster(next)).term) > termBefore;
        },
        LEASE_TTL_MS + 5000,
        'a takeover',
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      primary.child.kill('SIGCONT');
      paused = undefined;
      await waitFor(
        async () => (await cluster(primary)).nodes.find((n: any) => n.address === primary.url)?.role !== 'primary',
        5000,
        'the old primary to step down',
      );
    }
    stop = true;
    await Promise.all(writers);
    // How many get through depends on how busy the machine is; some must, for the check to mean anything.
    expect(acknowledged.length).toBeGreaterThan(4);
    const { last } = checkLog(dataDir);
    for (const node of nodes) {
      const values = await valuesOn(node, last.toString());
      for (const value of acknowledged) expect(values).toContain(value);
    }
    await sameEverywhere(nodes, last.toString());
  });

  it('lets a new node with an empty local dir join and catch up from the log', async () => {
    const { dataDir, nodes } = await startCluster(2);
    await setup(nodes[0]!);
    let position = '0';
    for (let i = 0; i < 50; i++) position = (await insert(nodes[i % 2]!, `j${i}`)).body.position;
    const joiner = await startNode(dataDir, 'n9');
    const values = await valuesOn(joiner, position);
    expect(values).toHaveLength(50);
    await sameEverywhere([...nodes, joiner], position);
  });

  /** `litebase_replica_nudged_segments_total` on a node, by outcome. */
  async function nudgedSegments(server: TestServer, outcome: 'applied' | 'unused'): Promise<number> {
    const text = (await server.request('GET', '/metrics')).body as string;
    return Number(
      new RegExp(`litebase_replica_nudged_segments_total\\{database="app",outcome="${outcome}"\\} (\\d+)`).exec(text)?.[1] ?? 0,
    );
  }

  for (const carry of [true, false]) {
    it(`a replica that neither watches nor polls soon learns of new writes from the Primary's nudge (${carry ? 'with' : 'without'} the segments)`, async () => {
      const dataDir = tempDir('litebase-cluster-');
      const env = {
        LITEBASE_LEASE_TTL_MS: String(LEASE_TTL_MS),
        LITEBASE_REPLICA_WATCH: 'false',
        LITEBASE_REPLICA_POLL_MS: '600000',
        LITEBASE_NUDGE_SEGMENTS: String(carry),
      };
      const primary = await TestServer.start({ dataDir, nodeId: 'n1', env });
      servers.push(primary);
      await waitFor(async () => (await primaryOf([primary])) !== undefined, 10_000, 'a primary');
      const replica = await TestServer.start({ dataDir, nodeId: 'n2', env });
      servers.push(replica);
      await setup(primary);
      // The Primary nudges the nodes whose heartbeat it has read (once a second).
      await waitFor(async () => (await cluster(primary)).nodes.length === 2, 10_000, 'both heartbeats');
      await new Promise((resolve) => setTimeout(resolve, 1500));
      let appliedBefore = 0;
      for (let i = 0; i < 10; i++) {
        // The first five settle the replica in (it opens the database when it reads the catalog).
        if (i === 5) appliedBefore = await nudgedSegments(replica, 'applied');
        await insert(primary, `nudged-${i}`);
        // No minPosition: nothing on the replica's side looks at the log but the nudge.
        await waitFor(async () => (await valuesOn(replica)).includes(`nudged-${i}`), 5_000, `nudged-${i} on the replica`);
      }
      // With the segments, the replica applied what the nudges carried (the last five INSERTs at
      // least); without, it read every one from the log.
      const applied = await nudgedSegments(replica, 'applied');
      if (carry) expect(applied - appliedBefore).toBeGreaterThanOrEqual(5);
      else expect(applied).toBe(0);
      expect(await nudgedSegments(replica, 'unused')).toBe(0);
    });
  }

  it('a replica serves a schema change with the new columns, though it had the old statement cached', async () => {
    const { nodes } = await startCluster(2);
    const primary = (await primaryOf(nodes)) as TestServer;
    const replica = nodes.find((node) => node !== primary) as TestServer;
    await setup(primary);
    const written = await insert(primary, 'before');
    // A point read: it runs on the replica's own reader, whose statement cache outlives applies.
    const select = (minPosition: string) =>
      replica.request('POST', '/v1/databases/app/query', {
        statements: [{ sql: 'SELECT * FROM t WHERE id = ?', params: [1] }],
        minPosition,
      });
    const first = await select(written.body.position);
    expect(first.body.results[0].columns).toEqual(['id', 'v']);
    // Rows that touch neither the schema nor page 1, then the schema change, then more rows.
    for (let i = 0; i < 5; i++) await insert(primary, `row-${i}`);
    await primary.request('POST', '/v1/databases/app/query', { statements: [{ sql: 'ALTER TABLE t ADD COLUMN extra INTEGER DEFAULT 7' }] });
    const after = await primary.request('POST', '/v1/databases/app/query', {
      statements: [{ sql: "INSERT INTO t(v, extra) VALUES ('after', 8)" }],
    });
    const second = await select(after.body.position);
    expect(second.status, JSON.stringify(second.body)).toBe(200);
    expect(second.body.results[0].columns).toEqual(['id', 'v', 'extra']);
    expect(second.body.results[0].rows).toEqual([[1, 'before', 7]]);
  });
});
