import type { StatementStatsInfo } from '../../../src/client/portable/types.js';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestServer, tempDir } from '../../support/server.js';
import { waitFor } from '../../support/wait.js';

/**
 * Statement metrics (docs/API.md "Statement metrics") on a real two-node cluster: statements run
 * through /v1 and through Hrana, on the Primary and on a Replica, forwarded writes, read processes,
 * a statement killed at its time limit; then GET /v1/databases/:db/statements on each node, its
 * permissions, its reset, and the Prometheus series.
 */
const servers: TestServer[] = [];
let dataDir: string;
let primary: TestServer;
let replica: TestServer;

type StatementRow = StatementStatsInfo;

async function start(nodeId: string, dataDir: string): Promise<TestServer> {
  const server = await TestServer.start({
    dataDir,
    nodeId,
    env: {
      LITEBASE_LEASE_TTL_MS: '1000',
      LITEBASE_REPLICA_POLL_MS: '200',
      LITEBASE_WAIT_TIMEOUT_MS: '8000',
      // Long enough for a loaded machine, short enough for the endless statement below.
      LITEBASE_STATEMENT_TIMEOUT_MS: '1500',
    },
  });
  servers.push(server);
  return server;
}

async function roleOf(node: TestServer): Promise<string | undefined> {
  const status = (await node.request('GET', '/v1/cluster')).body;
  return status?.nodes?.find((entry: { address: string }) => entry.address === node.url)?.role;
}

async function query(node: TestServer, statements: Array<{ sql: string; params?: unknown }>, mode?: string) {
  return node.request('POST', '/v1/databases/app/query', { statements, ...(mode ? { mode } : {}) });
}

async function hrana(node: TestServer, requests: unknown[]) {
  return node.request('POST', '/v1/databases/app/v2/pipeline', { baton: null, requests: [...requests, { type: 'close' }] });
}

const execute = (sql: string, args: unknown[] = []) => ({ type: 'execute', stmt: { sql, args } });
const int = (value: number) => ({ type: 'integer', value: String(value) });

interface StatementsBody {
  database: string;
  node: string;
  role: string;
  enabled: boolean;
  order: string;
  since: string;
  tracked: number;
  maxTracked: number;
  evicted: number;
  scope: 'node' | 'cluster';
  nodes?: Array<{ node: string; role?: string; ok: boolean }>;
  statements: StatementRow[];
}

async function statements(node: TestServer, query = ''): Promise<{ body: StatementsBody; byText: Map<string, StatementRow> }> {
  const response = await node.request('GET', `/v1/databases/app/statements${query}`);
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  const body = response.body as StatementsBody;
  return { body, byText: new Map(body.statements.map((row) => [row.sql, row])) };
}

beforeAll(async () => {
  dataDir = tempDir('litebase-statement-metrics-');
  primary = await start('n1', dataDir);
  await waitFor(async () => (await roleOf(primary)) === 'primary', 15_000, 'n1 to be the Primary');
  replica = await start('n2', dataDir);
  await waitFor(async () => (await roleOf(replica)) === 'replica', 15_000, 'n2 to be a replica');
  expect((await primary.request('POST', '/v1/databases', { name: 'app' })).status).toBe(201);
  await waitFor(async () => (await replica.request('GET', '/v1/databases/app')).status === 200, 10_000, 'the database on the replica');
  const created = await query(primary, [{ sql: 'CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT UNIQUE)' }]);
  expect(created.status, JSON.stringify(created.body)).toBe(200);
}, 90_000);

afterAll(async () => {
  for (const server of servers) await server.stop('SIGKILL');
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('statement metrics', () => {
  it('counts /v1 and Hrana statements once, on the node that ran them, normalized', async () => {
    // Writes sent to the Replica run on the Primary (forwarded), with literals that differ.
    for (const [id, name] of [
      [1, 'a'],
      [2, 'b'],
    ] as const) {
      const insert = await query(replica, [{ sql: `INSERT INTO t(id, name) VALUES (${id}, '${name}')` }]);
      expect(insert.status, JSON.stringify(insert.body)).toBe(200);
    }
    // The same statement through Hrana on the Primary, and one that fails (UNIQUE).
    const viaHrana = await hrana(primary, [
      execute("INSERT INTO t(id, name) VALUES (3, 'c')"),
      execute("INSERT INTO t(id, name) VALUES (4, 'a')"),
    ]);
    expect(viaHrana.status).toBe(200);
    expect(viaHrana.body.results[0].type).toBe('ok');
    expect(viaHrana.body.results[1].type).toBe('error');
    // A multi-row INSERT with parameters, in an interactive transaction.
    const begin = await primary.request('POST', '/v1/databases/app/transactions', {});
    const transaction = begin.body.transaction.id as string;
    const inTransaction = await primary.request('POST', `/v1/databases/app/transactions/${transaction}/query`, {
      statements: [{ sql: 'INSERT INTO t(id, name) VALUES (?, ?), (?, ?)', params: [5, 'e', 6, 'f'] }],
    });
    expect(inTransaction.status, JSON.stringify(inTransaction.body)).toBe(200);
    expect((await primary.request('POST', `/v1/databases/app/transactions/${transaction}/commit`)).status).toBe(200);

    // Reads: an IN list on the Primary through /v1 and Hrana (one statement), a count on the Replica.
    expect((await query(primary, [{ sql: 'SELECT id, name FROM t WHERE id IN (1, 2) ORDER BY id' }])).body.results[0].rows).toHaveLength(2);
    const read = await hrana(primary, [execute('select id, name from t where id in (?, ?, ?) order by id', [int(1), int(2), int(3)])]);
    expect(read.body.results[0].response.result.rows).toHaveLength(3);
    const position = (await query(primary, [{ sql: 'SELECT 1' }])).body.position as string;
    await waitFor(
      async () => BigInt((await replica.request('GET', '/v1/databases/app')).body.database.position) >= BigInt(position),
      10_000,
      'the replica to catch up',
    );
    for (let i = 0; i < 3; i++) expect((await query(replica, [{ sql: 'SELECT count(*) FROM t' }])).body.results[0].rows).toEqual([[5]]);
    // A statement that does not prepare: counted where it ran (a Replica sends it to the Primary).
    const broken = await query(replica, [{ sql: 'SELEC oops FROM t' }]);
    expect(broken.status).toBe(400);

    const onPrimary = await statements(primary, '?limit=100');
    expect(onPrimary.body).toMatchObject({
      database: 'app',
      node: 'n1',
      role: 'primary',
      enabled: true,
      order: 'total',
      maxTracked: 1000,
      evicted: 0,
    });
    const insert = onPrimary.byText.get('INSERT INTO t(id, name) VALUES (?, ?)');
    expect(insert).toMatchObject({ count: 4, errors: 1, rowsWritten: 3, rowsRead: 0 });
    expect(insert?.lastError?.code).toBe('SQLITE_CONSTRAINT_UNIQUE');
    expect(insert?.p50Ms).toBeGreaterThan(0);
    expect(insert!.p50Ms).toBeLessThanOrEqual(insert!.p99Ms);
    expect(insert!.minMs).toBeLessThanOrEqual(insert!.p50Ms);
    expect(insert!.p99Ms).toBeLessThanOrEqual(insert!.maxMs);
    expect(Date.parse(insert!.lastSeen)).toBeGreaterThanOrEqual(Date.parse(insert!.firstSeen));
    expect(onPrimary.byText.get('INSERT INTO t(id, name) VALUES (?, ?), ...')).toMatchObject({ count: 1, errors: 0, rowsWritten: 2 });
    expect(onPrimary.byText.get('SELECT id, name FROM t WHERE id IN (?) ORDER BY id')).toMatchObject({ count: 2, errors: 0, rowsRead: 5 });
    expect(onPrimary.byText.get('SELEC oops FROM t')).toMatchObject({ count: 1, errors: 1, lastError: { code: 'SQLITE_ERROR' } });
    // The Replica's reads are the Replica's.
    expect(onPrimary.byText.has('SELECT count(*) FROM t')).toBe(false);

    const onReplica = await statements(replica);
    expect(onReplica.body).toMatchObject({ node: 'n2', role: 'replica' });
    expect(onReplica.byText.get('SELECT count(*) FROM t')).toMatchObject({ count: 3, rowsRead: 3, errors: 0 });
    expect([...onReplica.byText.keys()].some((sql) => sql.startsWith('INSERT'))).toBe(false);
  });

  it('counts a read that runs in a read process once, and one killed at the time limit as a failure', async () => {
    const looping = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000) SELECT count(*) FROM c';
    // SELECT 1 runs in the node first, then again with the looping one in a read process: counted once.
    const answer = await query(primary, [{ sql: 'SELECT 42' }, { sql: looping }]);
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body.results[1].rows).toEqual([[5000]]);
    const endless = await query(primary, [
      { sql: 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c' },
    ]);
    expect(endless.status).toBe(408);

    const { byText } = await statements(primary, '?limit=100');
    expect(byText.get('SELECT ?')).toMatchObject({ count: 2, errors: 0 }); // once here, once from the first test's position read
    expect(byText.get('WITH RECURSIVE c(x) AS (SELECT ? UNION ALL SELECT x + ? FROM c WHERE x < ?) SELECT count(*) FROM c')).toMatchObject({
      count: 1,
      errors: 0,
      rowsRead: 1,
    });
    const killed = byText.get('WITH RECURSIVE c(x) AS (SELECT ? UNION ALL SELECT x + ? FROM c) SELECT count(*) FROM c');
    expect(killed).toMatchObject({ count: 1, errors: 1, lastError: { code: 'STATEMENT_TIMEOUT' } });
    expect(killed!.maxMs).toBeGreaterThanOrEqual(1000);
  });

  it('orders and limits, checks its parameters, and 404s a database that does not exist', async () => {
    const byCount = (await statements(primary, '?order=count&limit=2')).body;
    expect(byCount.order).toBe('count');
    expect(byCount.statements).toHaveLength(2);
    expect(byCount.statements[0]?.count).toBeGreaterThanOrEqual(byCount.statements[1]?.count ?? Infinity);
    const byTotal = (await statements(primary, '?limit=100')).body.statements as StatementRow[];
    const totals = byTotal.map((row) => row.totalMs);
    expect(totals).toEqual([...totals].sort((a, b) => b - a));
    const byP99 = (await statements(primary, '?order=p99&limit=100')).body.statements as StatementRow[];
    expect(byP99[0]?.sql).toContain('WITH RECURSIVE c(x) AS (SELECT ? UNION ALL SELECT x + ? FROM c) SELECT');
    expect((await primary.request('GET', '/v1/databases/app/statements?order=fastest')).body.error.code).toBe('INVALID_REQUEST');
    expect((await primary.request('GET', '/v1/databases/app/statements?limit=-1')).status).toBe(400);
    expect((await primary.request('GET', '/v1/databases/nothing/statements')).body.error.code).toBe('DATABASE_NOT_FOUND');
  });

  it('shows the top statements to Prometheus, the rest as "other"', async () => {
    const metrics = (await primary.request('GET', '/metrics')).body as string;
    const { byText } = await statements(primary, '?limit=100');
    const insert = byText.get('INSERT INTO t(id, name) VALUES (?, ?)');
    expect(metrics).toContain(`litebase_statement_duration_seconds_count{database="app",statement="${insert?.id}"} 4`);
    expect(metrics).toContain(`litebase_statement_errors_total{database="app",statement="${insert?.id}"} 1`);
    expect(metrics).toContain(
      `litebase_statement_info{database="app",statement="${insert?.id}",sql="INSERT INTO t(id, name) VALUES (?, ?)"} 1`,
    );
    expect(metrics).toContain('litebase_statement_duration_seconds_count{database="app",statement="other"}');
  });

  it("merges every live node's counts with scope=cluster, quantiles included", async () => {
    for (const node of [primary, replica]) {
      const { body, byText } = await statements(node, '?scope=cluster&limit=100');
      expect(body).toMatchObject({ scope: 'cluster', node: node === primary ? 'n1' : 'n2' });
      expect(body.nodes).toEqual([
        expect.objectContaining({ node: 'n1', role: 'primary', ok: true }),
        expect.objectContaining({ node: 'n2', role: 'replica', ok: true }),
      ]);
      // Writes from the Primary and reads from the Replica, in one list.
      expect(byText.get('INSERT INTO t(id, name) VALUES (?, ?)')).toMatchObject({ count: 4, errors: 1, rowsWritten: 3 });
      expect(byText.get('SELECT count(*) FROM t')).toMatchObject({ count: 3, rowsRead: 3 });
      expect(byText.get('SELECT count(*) FROM t')).not.toHaveProperty('sketch');
    }
    // The same statement run on both nodes is added up, its quantiles from the merged sketches.
    expect((await query(replica, [{ sql: 'SELECT name FROM t WHERE id = 1' }])).status).toBe(200);
    expect((await query(primary, [{ sql: 'SELECT name FROM t WHERE id = 2' }])).status).toBe(200);
    const merged = (await statements(replica, '?scope=cluster&limit=100')).byText.get('SELECT name FROM t WHERE id = ?');
    expect(merged).toMatchObject({ count: 2, rowsRead: 2 });
    expect(merged!.p50Ms).toBeGreaterThanOrEqual(merged!.minMs);
    expect(merged!.p99Ms).toBeLessThanOrEqual(merged!.maxMs);
    // What a node sends another: its sketches.
    const own = await primary.request('GET', '/v1/databases/app/statements?sketches=true&limit=1');
    expect(own.body.scope).toBe('node');
    expect(own.body.statements[0].sketch.bins.length).toBeGreaterThan(0);
  });

  it('lets a key that may read see them, and only an admin reset them', async () => {
    const key = async (actions: string[], databases = ['app']) => {
      const response = await primary.request('POST', '/v1/keys', { name: `statements ${actions.join('+')}`, databases, actions });
      expect(response.status).toBe(201);
      return response.body.key.secret as string;
    };
    const reader = await key(['read']);
    const stranger = await key(['read'], ['other-*']);
    const admin = await key(['read', 'admin']);
    const as = (secret: string, method: string) =>
      fetch(`${primary.url}/v1/databases/app/statements`, { method, headers: { authorization: `Bearer ${secret}` } });

    expect((await as(reader, 'GET')).status).toBe(200);
    const refused = await as(stranger, 'GET');
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('PERMISSION_DENIED');
    expect((await as(reader, 'DELETE')).status).toBe(403);
    expect((await as(admin, 'DELETE')).status).toBe(204);
    const after = (await statements(primary)).body;
    expect(after).toMatchObject({ tracked: 0, evicted: 0, statements: [] });
    expect(Date.parse(after.since)).toBeGreaterThan(Date.now() - 60_000);
    // The Replica's are its own: a reset of the Primary's leaves them.
    expect((await statements(replica)).body.tracked).toBeGreaterThan(0);
  });
});
