import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir, TestServer } from '../../support/server.js';
import { waitFor } from '../../support/wait.js';

/**
 * Statements that loop (docs/SECURITY.md, "Limits"): a looping read runs in a read process that is
 * killed at the statement time limit (src/engine/read-sandbox.ts); a looping write is interrupted
 * on the write connection at the same limit (src/native/statement-deadline.c). Real server
 * processes throughout.
 */
const TIMEOUT_MS = 400;
const LEASE_TTL_MS = 1000;
const ENDLESS = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c)';
const ENDLESS_COUNT = `${ENDLESS} SELECT count(*) FROM c`;
const servers: TestServer[] = [];

afterEach(async () => {
  const stopped = servers.splice(0);
  await Promise.all(stopped.map((server) => server.stop('SIGKILL')));
  for (const dir of new Set(stopped.map((server) => server.dataDir))) rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
});

async function start(options: { dataDir?: string; nodeId?: string; env?: Record<string, string> } = {}): Promise<TestServer> {
  const server = await TestServer.start({
    ...options,
    extraArgs: ['--statement-timeout-ms', String(TIMEOUT_MS)],
    env: { LITEBASE_LEASE_TTL_MS: String(LEASE_TTL_MS), LITEBASE_REPLICA_POLL_MS: '200', LITEBASE_MAX_RESULT_ROWS: '5000', ...options.env },
  });
  servers.push(server);
  return server;
}

type Statement = string | { sql: string; params?: unknown[] };

function query(server: TestServer, statements: Statement[], extra: Record<string, unknown> = {}) {
  const body = { statements: statements.map((statement) => (typeof statement === 'string' ? { sql: statement } : statement)), ...extra };
  return server.request('POST', '/v1/databases/app/query', body);
}

async function setup(server: TestServer, rows = 200): Promise<string> {
  expect((await server.request('POST', '/v1/databases', { name: 'app' })).status).toBe(201);
  expect((await query(server, ['CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)'])).status).toBe(200);
  const inserted = await query(server, [
    {
      sql: `${ENDLESS.replace('SELECT x+1 FROM c', `SELECT x+1 FROM c WHERE x < ${rows}`)} INSERT INTO t(id, v) SELECT x, 'v' || x FROM c`,
    },
  ]);
  expect(inserted.status, JSON.stringify(inserted.body)).toBe(200);
  return inserted.body.position as string;
}

async function checksum(server: TestServer): Promise<string> {
  return (await server.request('GET', '/v1/databases/app')).body.database.checksum as string;
}

/** The endless count is stopped with 408 in time, and the node then answers reads at once. */
async function expectStopped(server: TestServer, rows: number, minPosition?: string): Promise<void> {
  const before = await checksum(server);
  const started = Date.now();
  const stopped = await query(server, [ENDLESS_COUNT]);
  const tookMs = Date.now() - started;
  expect(stopped.status, JSON.stringify(stopped.body)).toBe(408);
  expect(stopped.body.error).toMatchObject({ code: 'STATEMENT_TIMEOUT', statement: 0, limit: 'time', timeoutMs: TIMEOUT_MS });
  expect(tookMs).toBeLessThan(TIMEOUT_MS + 1000);

  // A point read stays in the node; a range scan goes to a new read process.
  const fast = Date.now();
  const point = await query(server, [{ sql: 'SELECT v FROM t WHERE id = ?', params: [7] }]);
  expect(point.status).toBe(200);
  expect(point.body.results[0].rows).toEqual([['v7']]);
  expect(Date.now() - fast).toBeLessThan(200);
  const scan = await query(server, ['SELECT count(*), max(id) FROM t'], minPosition ? { minPosition } : {});
  expect(scan.status, JSON.stringify(scan.body)).toBe(200);
  expect(scan.body.results[0].rows).toEqual([[rows, rows]]);
  expect(await checksum(server)).toBe(before);
}

describe('looping reads run in a read process that is killed at the time limit', () => {
  it('stops an endless aggregate on a Primary and keeps serving fresh data', async () => {
    const server = await start({ env: { LITEBASE_WATCHDOG_MS: '0' } });
    await setup(server);
    await expectStopped(server, 200);

    // The read process sees what was committed since (the Primary's WAL), in order.
    const written = await query(server, ["INSERT INTO t(id, v) VALUES (201, 'v201')"]);
    expect(written.status).toBe(200);
    const scan = await query(
      server,
      ['SELECT count(*) FROM t WHERE v LIKE ?'].map((sql) => ({ sql, params: ['v%'] })),
    );
    expect(scan.body.results[0].rows).toEqual([[201]]);

    // Several statements: one snapshot, and the statement that ran out of time is named.
    const many = await query(server, ['SELECT count(*) FROM t', ENDLESS_COUNT]);
    expect(many.status).toBe(408);
    expect(many.body.error).toMatchObject({ code: 'STATEMENT_TIMEOUT', statement: 1 });
    const independent = await query(server, ['SELECT count(*) FROM t', ENDLESS_COUNT, 'SELECT max(id) FROM t'], { mode: 'independent' });
    expect(independent.status).toBe(200);
    expect(independent.body.results[0].rows).toEqual([[201]]);
    expect(independent.body.results[1].error).toMatchObject({ code: 'STATEMENT_TIMEOUT', statement: 1 });
    expect(independent.body.results[2].rows).toEqual([[201]]);

    // Row limits hold in the read process too.
    const huge = await query(server, [`${ENDLESS} SELECT x FROM c`]);
    expect(huge.status).toBe(422);
    expect(huge.body.error.code).toBe('TOO_MANY_ROWS');

    // Two endless statements at once: both stopped, neither blocks the node.
    const both = await Promise.all([query(server, [ENDLESS_COUNT]), query(server, [ENDLESS_COUNT])]);
    expect(both.map((response) => response.status)).toEqual([408, 408]);
    await expectStopped(server, 201);
  }, 30_000);

  it('stops an endless aggregate on a Replica, which then sees new writes', async () => {
    const dataDir = tempDir('litebase-timeout-');
    const primary = await start({ dataDir, nodeId: 'n1' });
    const replica = await start({ dataDir, nodeId: 'n2' });
    const position = await setup(primary);
    expect((await query(replica, ['SELECT count(*) FROM t'], { minPosition: position })).body.results[0].rows).toEqual([[200]]);
    await expectStopped(replica, 200);
    // Applied runs reach the read process (it drops its cached pages when the data changed).
    for (let id = 201; id <= 205; id++) {
      const written = await query(primary, [{ sql: 'INSERT INTO t(id, v) VALUES (?, ?)', params: [id, `v${id}`] }]);
      const scan = await query(replica, ['SELECT count(*), max(id) FROM t'], { minPosition: written.body.position });
      expect(scan.body.results[0].rows).toEqual([[id, id]]);
    }
    await expectStopped(replica, 205);
  }, 30_000);
});

describe('a looping write is stopped at the time limit on the write connection (src/native/statement-deadline.c)', () => {
  const LOOPS = {
    computing: `INSERT INTO t(v) ${ENDLESS_COUNT}`,
    writing: `INSERT INTO t(v) ${ENDLESS} SELECT 'x' || x FROM c`,
    trigger: 'UPDATE t SET v = v WHERE id = 1',
  };

  it('answers 408 for every kind of endless write, undoes it, and the node goes on (no watchdog kill)', async () => {
    const server = await start({ env: { LITEBASE_WATCHDOG_MS: '600' } });
    await setup(server, 50);
    // A trigger that loops: the write looks harmless, the work hides in the schema.
    expect(
      (
        await query(server, [
          `CREATE TABLE spin(n)`,
          `CREATE TRIGGER spin_on_update AFTER UPDATE ON t BEGIN INSERT INTO spin ${ENDLESS_COUNT}; END`,
        ])
      ).status,
    ).toBe(200);
    const before = await checksum(server);
    const { pid } = server.child;

    for (const [kind, sql] of Object.entries(LOOPS)) {
      const started = Date.now();
      const stopped = await query(server, [sql]);
      expect(stopped.status, `${kind}: ${JSON.stringify(stopped.body)}`).toBe(408);
      expect(stopped.body.error).toMatchObject({ code: 'STATEMENT_TIMEOUT', statement: 0, limit: 'time', timeoutMs: TIMEOUT_MS });
      expect(Date.now() - started, kind).toBeLessThan(TIMEOUT_MS + 1000);
      // Nothing of it stays, and the write lock is free again.
      expect(await checksum(server), kind).toBe(before);
    }
    const rows = await query(server, ['SELECT count(*), (SELECT count(*) FROM spin) FROM t']);
    expect(rows.body.results[0].rows).toEqual([[50, 0]]);

    // In a transaction the statement that ran out of time is named and nothing of the request stays.
    const many = await query(server, ["INSERT INTO t(id, v) VALUES (51, 'v51')", LOOPS.computing]);
    expect(many.status).toBe(408);
    expect(many.body.error).toMatchObject({ code: 'STATEMENT_TIMEOUT', statement: 1 });
    expect(await checksum(server)).toBe(before);
    // Independent statements: only the looping one fails.
    const independent = await query(
      server,
      ["INSERT INTO t(id, v) VALUES (51, 'v51')", LOOPS.writing, "INSERT INTO t(id, v) VALUES (52, 'v52')"],
      { mode: 'independent' },
    );
    expect(independent.status).toBe(200);
    expect(independent.body.results[1].error).toMatchObject({ code: 'STATEMENT_TIMEOUT', statement: 1 });
    expect((await query(server, ['SELECT count(*), max(id) FROM t'])).body.results[0].rows).toEqual([[52, 52]]);

    // Still the same process, answering at once: the watchdog (statement timeout + 600 ms) never fired.
    await new Promise((resolve) => setTimeout(resolve, TIMEOUT_MS + 800));
    expect(server.child.exitCode).toBeNull();
    expect(server.child.pid).toBe(pid);
    expect(server.output).not.toContain('EVENT_LOOP_BLOCKED');
    const fast = Date.now();
    expect((await query(server, ["INSERT INTO t(id, v) VALUES (53, 'v53')"])).status).toBe(200);
    expect(Date.now() - fast).toBeLessThan(500);
  }, 30_000);

  it('ends an interactive transaction whose write loops; a looping read in one leaves it open', async () => {
    const server = await start();
    await setup(server, 10);
    const before = await checksum(server);
    const begin = async (): Promise<string> => {
      const begun = await server.request('POST', '/v1/databases/app/transactions', { timeoutMs: 20_000 });
      expect(begun.status).toBe(201);
      return begun.body.transaction.id as string;
    };
    const inTransaction = (id: string, sql: string) =>
      server.request('POST', `/v1/databases/app/transactions/${id}/query`, { statements: [{ sql }] });

    // A looping write: SQLite rolls the whole transaction back, so it is over and the lock is free.
    const first = await begin();
    expect((await inTransaction(first, "INSERT INTO t(id, v) VALUES (11, 'v11')")).status).toBe(200);
    const stopped = await inTransaction(first, LOOPS.computing);
    expect(stopped.status, JSON.stringify(stopped.body)).toBe(408);
    expect(stopped.body.error.code).toBe('STATEMENT_TIMEOUT');
    const after = await inTransaction(first, 'SELECT 1');
    expect(after.status).toBe(409);
    expect(after.body.error.code).toBe('TRANSACTION_ENDED');
    expect(await checksum(server)).toBe(before);

    // A looping read only fails itself; the transaction keeps its work and commits.
    const second = await begin();
    expect((await inTransaction(second, "INSERT INTO t(id, v) VALUES (11, 'v11')")).status).toBe(200);
    const read = await inTransaction(second, ENDLESS_COUNT);
    expect(read.status, JSON.stringify(read.body)).toBe(408);
    expect((await inTransaction(second, 'SELECT count(*) FROM t')).body.results[0].rows).toEqual([[11]]);
    const committed = await server.request('POST', `/v1/databases/app/transactions/${second}/commit`);
    expect(committed.status).toBe(200);
    expect((await query(server, ['SELECT count(*), max(id) FROM t'])).body.results[0].rows).toEqual([[11, 11]]);
  }, 30_000);

  it('a looping write sent to a Replica is forwarded and answered 408 from the Primary', async () => {
    const dataDir = tempDir('litebase-timeout-');
    const first = await start({ dataDir, nodeId: 'n1' });
    const second = await start({ dataDir, nodeId: 'n2' });
    await setup(first, 20);
    const primary = await primaryOf([first, second]);
    const replica = primary === first ? second : first;
    const stopped = await query(replica, [LOOPS.writing]);
    expect(stopped.status, JSON.stringify(stopped.body)).toBe(408);
    expect(stopped.body.error).toMatchObject({ code: 'STATEMENT_TIMEOUT', statement: 0 });
    const written = await query(replica, ["INSERT INTO t(id, v) VALUES (21, 'v21')"]);
    expect(written.status).toBe(200);
    const rows = await query(replica, ['SELECT count(*), max(id) FROM t'], { minPosition: written.body.position });
    expect(rows.body.results[0].rows).toEqual([[21, 21]]);
  }, 30_000);
});

async function primaryOf(nodes: TestServer[]): Promise<TestServer> {
  let found: TestServer | undefined;
  await waitFor(
    async () => {
      for (const node of nodes) {
        const status = (await node.request('GET', '/v1/cluster')).body;
        const self = status?.nodes?.find((n: { nodeId: string }) => n.nodeId === status?.primary?.nodeId);
        if (self?.role === 'primary') found = nodes.find((candidate) => candidate.url === self.address);
        if (found) return true;
      }
      return false;
    },
    10_000,
    'a primary',
  );
  return found as TestServer;
}
