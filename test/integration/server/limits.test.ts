import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSinglePass } from '../../../src/engine/result-limits.js';
import { TestServer } from '../../support/server.js';

/**
 * Limits (issue 6, item 4; docs/SECURITY.md): each one configurable, each hit answered with its own
 * code, and none leaving the server slower or the database changed afterwards. Some limits are set
 * by flags and some by environment, so both paths are exercised.
 */
const LIMITS = {
  bodyBytes: 64 * 1024,
  statements: 20,
  rows: 1000,
  resultBytes: 64 * 1024,
  statementMs: 300,
  transactions: 2,
  maxTransactionMs: 3000,
};
const ROWS = 2000;

let server: TestServer;
let baselineMs = 0;

beforeAll(async () => {
  server = await TestServer.start({
    extraArgs: ['--max-result-rows', String(LIMITS.rows), '--statement-timeout-ms', String(LIMITS.statementMs)],
    env: {
      LITEBASE_BODY_LIMIT_BYTES: String(LIMITS.bodyBytes),
      LITEBASE_MAX_STATEMENTS_PER_REQUEST: String(LIMITS.statements),
      LITEBASE_MAX_RESULT_BYTES: String(LIMITS.resultBytes),
      LITEBASE_MAX_TRANSACTIONS_PER_DATABASE: String(LIMITS.transactions),
      LITEBASE_MAX_TRANSACTION_TIMEOUT_MS: String(LIMITS.maxTransactionMs),
      LITEBASE_WAIT_TIMEOUT_MS: '3000',
    },
  });
  expect((await server.request('POST', '/v1/databases', { name: 'lim' })).status).toBe(201);
  expect((await query(['CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)'])).status).toBe(200);
  for (let start = 1; start <= ROWS; start += LIMITS.statements) {
    const batch = Array.from({ length: LIMITS.statements }, (_, i) => ({
      sql: 'INSERT INTO t(id, v) VALUES (?, ?)',
      params: [start + i, `row ${start + i} `.padEnd(100, '.')],
    }));
    expect((await query(batch)).status).toBe(200);
  }
  baselineMs = await pointReadMs();
}, 60_000);

afterAll(async () => {
  await server?.stop();
  server?.cleanup();
});

type Statement = string | { sql: string; params?: unknown[] };

function query(statements: Statement[], extra: Record<string, unknown> = {}) {
  const body = { statements: statements.map((statement) => (typeof statement === 'string' ? { sql: statement } : statement)), ...extra };
  return server.request('POST', '/v1/databases/lim/query', body);
}

async function fingerprint(): Promise<{ position: string; checksum: string }> {
  const response = await server.request('GET', '/v1/databases/lim');
  expect(response.status).toBe(200);
  return { position: response.body.database.position, checksum: response.body.database.checksum };
}

/** Median time of a few point reads. */
async function pointReadMs(): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 15; i++) {
    const started = performance.now();
    const response = await query([{ sql: 'SELECT v FROM t WHERE id = ?', params: [1 + i] }]);
    times.push(performance.now() - started);
    expect(response.status).toBe(200);
    expect(response.body.results[0].rows).toHaveLength(1);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)] as number;
}

/**
 * After a limit was hit: the database is unchanged, the server answers reads about as fast as
 * before (generous bound: the machine is shared), and the read connection holds no stale snapshot
 * (a row written now is read back at once).
 */
async function stillHealthy(before: { position: string; checksum: string }): Promise<void> {
  expect(await fingerprint()).toEqual(before);
  const ms = await pointReadMs();
  expect(ms, `point reads took ${ms.toFixed(1)} ms (before: ${baselineMs.toFixed(1)} ms)`).toBeLessThan(Math.max(10 * baselineMs, 250));
  const marker = `fresh ${Math.random()}`;
  const write = await query([{ sql: 'INSERT INTO t(v) VALUES (?) RETURNING id', params: [marker] }]);
  expect(write.status, JSON.stringify(write.body)).toBe(200);
  const id = write.body.results[0].rows[0][0];
  const read = await query([{ sql: 'SELECT v FROM t WHERE id = ?', params: [id] }]);
  expect(read.body.results[0].rows).toEqual([[marker]]);
  expect((await query([{ sql: 'DELETE FROM t WHERE id = ?', params: [id] }])).status).toBe(200);
}

describe('request limits', () => {
  it('body size: 413 BODY_TOO_LARGE', async () => {
    const before = await fingerprint();
    const response = await query([{ sql: 'INSERT INTO t(v) VALUES (?)', params: ['x'.repeat(LIMITS.bodyBytes + 1000)] }]);
    expect(response.status).toBe(413);
    expect(response.body.error.code).toBe('BODY_TOO_LARGE');
    await stillHealthy(before);
  });

  it('statements per request: 413 TOO_MANY_STATEMENTS, also inside an interactive transaction', async () => {
    const before = await fingerprint();
    const many = Array.from({ length: LIMITS.statements + 1 }, () => "INSERT INTO t(v) VALUES ('many')");
    const response = await query(many);
    expect(response.status).toBe(413);
    expect(response.body.error).toMatchObject({ code: 'TOO_MANY_STATEMENTS', maxStatements: LIMITS.statements });
    expect((await query(many.slice(1).map(() => 'SELECT 1'))).status).toBe(200);
    // Other schema problems keep their code.
    expect((await query([])).body.error.code).toBe('INVALID_REQUEST');
    const id = (await server.request('POST', '/v1/databases/lim/transactions', {})).body.transaction.id;
    const inside = await server.request('POST', `/v1/databases/lim/transactions/${id}/query`, { statements: many.map((sql) => ({ sql })) });
    expect(inside.status).toBe(413);
    expect(inside.body.error.code).toBe('TOO_MANY_STATEMENTS');
    expect((await server.request('POST', `/v1/databases/lim/transactions/${id}/rollback`)).status).toBe(200);
    await stillHealthy(before);
  });
});

describe('response limits', () => {
  it('rows per response: 422 TOO_MANY_ROWS, counted across the statements of a request', async () => {
    const before = await fingerprint();
    const all = await query(['SELECT id FROM t']);
    expect(all.status).toBe(422);
    expect(all.body.error).toMatchObject({ code: 'TOO_MANY_ROWS', statement: 0, maxRows: LIMITS.rows });
    const exactly = await query([`SELECT id FROM t ORDER BY id LIMIT ${LIMITS.rows}`]);
    expect(exactly.status).toBe(200);
    expect(exactly.body.results[0].rows).toHaveLength(LIMITS.rows);
    const split = await query(['SELECT id FROM t WHERE id <= 600', 'SELECT id FROM t WHERE id > 600 AND id <= 1200']);
    expect(split.status).toBe(422);
    expect(split.body.error).toMatchObject({ code: 'TOO_MANY_ROWS', statement: 1 });
    // Independent statements: the one past the limit fails on its own, the others answer.
    const independent = await query(['SELECT id FROM t WHERE id <= 600', 'SELECT id FROM t WHERE id > 600', 'SELECT 1'], {
      mode: 'independent',
    });
    expect(independent.status).toBe(200);
    expect(independent.body.results[0].rows).toHaveLength(600);
    expect(independent.body.results[1].error.code).toBe('TOO_MANY_ROWS');
    expect(independent.body.results[2].rows).toEqual([[1]]);
    await stillHealthy(before);
  });

  it('an endless recursive CTE that yields rows is stopped by the row limit at once', async () => {
    const before = await fingerprint();
    const started = Date.now();
    const response = await query(['WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c']);
    expect(response.status).toBe(422);
    expect(response.body.error.code).toBe('TOO_MANY_ROWS');
    expect(Date.now() - started).toBeLessThan(2000);
    await stillHealthy(before);
  });

  it('a write whose RETURNING rows pass the limit is rolled back whole', async () => {
    const before = await fingerprint();
    const response = await query(["UPDATE t SET v = 'changed' RETURNING id"]);
    expect(response.status).toBe(422);
    expect(response.body.error.code).toBe('TOO_MANY_ROWS');
    expect((await query(["SELECT count(*) FROM t WHERE v = 'changed'"])).body.results[0].rows).toEqual([[0]]);
    // Inside an interactive transaction the statement fails; the transaction stays usable.
    const id = (await server.request('POST', '/v1/databases/lim/transactions', {})).body.transaction.id;
    const inside = await server.request('POST', `/v1/databases/lim/transactions/${id}/query`, {
      statements: [{ sql: 'SELECT id FROM t' }],
    });
    expect(inside.status).toBe(422);
    expect(inside.body.error.code).toBe('TOO_MANY_ROWS');
    const after = await server.request('POST', `/v1/databases/lim/transactions/${id}/query`, {
      statements: [{ sql: 'SELECT count(*) FROM t' }],
    });
    expect(after.body.results[0].rows).toEqual([[ROWS]]);
    expect((await server.request('POST', `/v1/databases/lim/transactions/${id}/rollback`)).status).toBe(200);
    await stillHealthy(before);
  });

  it('bytes per response: 422 RESULT_TOO_LARGE, a large BLOB refused before it is encoded', async () => {
    const before = await fingerprint();
    const wide = await query(['SELECT v, v, v, v FROM t LIMIT 900']);
    expect(wide.status).toBe(422);
    expect(wide.body.error).toMatchObject({ code: 'RESULT_TOO_LARGE', statement: 0, maxBytes: LIMITS.resultBytes });
    const blob = await query(['SELECT 1', `SELECT zeroblob(${LIMITS.resultBytes})`]);
    expect(blob.status).toBe(422);
    expect(blob.body.error).toMatchObject({ code: 'RESULT_TOO_LARGE', statement: 1 });
    const text = await query([`SELECT printf('%.*c', ${LIMITS.resultBytes * 4}, 'x')`]);
    expect(text.body.error.code).toBe('RESULT_TOO_LARGE');
    // Under the limit: fine.
    expect((await query(['SELECT v FROM t LIMIT 100', 'SELECT zeroblob(1000)'])).status).toBe(200);
    await stillHealthy(before);
  });

  it('statement run time: a recursive CTE that yields rows slowly is stopped with 408 STATEMENT_TIMEOUT', async () => {
    const before = await fingerprint();
    const started = Date.now();
    // One row for every 300,000 steps of the CTE: far under the row limit, endless in time.
    const response = await query(['WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c WHERE x % 300000 = 0']);
    const elapsed = Date.now() - started;
    expect(response.status, JSON.stringify(response.body)).toBe(408);
    expect(response.body.error).toMatchObject({ code: 'STATEMENT_TIMEOUT', statement: 0, timeoutMs: LIMITS.statementMs });
    expect(elapsed).toBeLessThan(5000);
    // Independent mode: that statement fails, the next one runs.
    const independent = await query(
      ['WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c WHERE x % 300000 = 0', 'SELECT 2'],
      { mode: 'independent' },
    );
    expect(independent.body.results[0].error.code).toBe('STATEMENT_TIMEOUT');
    expect(independent.body.results[1].rows).toEqual([[2]]);
    await stillHealthy(before);
  });
});

describe('interactive transactions', () => {
  const begin = (body: Record<string, unknown> = {}) => server.request('POST', '/v1/databases/lim/transactions', body);

  it('per database: 429 TOO_MANY_TRANSACTIONS with Retry-After once the limit is open or waiting', async () => {
    const before = await fingerprint();
    const first = await begin({ timeoutMs: 10_000 });
    expect(first.status).toBe(201);
    // The second waits for the write lock the first holds; it still counts.
    const second = begin({ timeoutMs: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const third = await begin();
    expect(third.status).toBe(429);
    expect(third.body.error).toMatchObject({ code: 'TOO_MANY_TRANSACTIONS', limit: LIMITS.transactions });
    expect(third.headers.get('retry-after')).toBe('1');
    // Reads go on meanwhile.
    expect((await query(['SELECT count(*) FROM t'])).body.results[0].rows).toEqual([[ROWS]]);
    const firstId = first.body.transaction.id;
    expect((await server.request('POST', `/v1/databases/lim/transactions/${firstId}/rollback`)).status).toBe(200);
    const secondAnswer = await second;
    expect(secondAnswer.status).toBe(201);
    expect((await server.request('POST', `/v1/databases/lim/transactions/${secondAnswer.body.transaction.id}/rollback`)).status).toBe(200);
    // Room again.
    const again = await begin();
    expect(again.status).toBe(201);
    expect((await server.request('POST', `/v1/databases/lim/transactions/${again.body.transaction.id}/rollback`)).status).toBe(200);
    await stillHealthy(before);
  });

  it('their timeout is capped and rolls them back, freeing their place', async () => {
    const before = await fingerprint();
    const capped = await begin({ timeoutMs: 3_600_000 });
    expect(capped.status).toBe(201);
    expect(Date.parse(capped.body.transaction.expiresAt) - Date.now()).toBeLessThanOrEqual(LIMITS.maxTransactionMs);
    expect((await server.request('POST', `/v1/databases/lim/transactions/${capped.body.transaction.id}/rollback`)).status).toBe(200);
    const short = await begin({ timeoutMs: 200 });
    const id = short.body.transaction.id;
    await server.request('POST', `/v1/databases/lim/transactions/${id}/query`, {
      statements: [{ sql: "INSERT INTO t(v) VALUES ('expired')" }],
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const late = await server.request('POST', `/v1/databases/lim/transactions/${id}/commit`);
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe('TRANSACTION_ENDED');
    // Both places are free again.
    const ids: string[] = [];
    for (let i = 0; i < LIMITS.transactions; i++) {
      const opened = begin({ timeoutMs: 5000 });
      if (i === 0) {
        const answer = await opened;
        expect(answer.status).toBe(201);
        ids.push(answer.body.transaction.id);
      } else {
        void opened.then(async (answer) => {
          if (answer.status === 201) await server.request('POST', `/v1/databases/lim/transactions/${answer.body.transaction.id}/rollback`);
        });
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await begin()).status).toBe(429);
    for (const open of ids) await server.request('POST', `/v1/databases/lim/transactions/${open}/rollback`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await stillHealthy(before);
  });
});

describe('reads that skip stepping', () => {
  it('are only programs without a reachable loop: point reads by rowid or unique key, constants, count(*), min/max by index', () => {
    const db = new Database(':memory:');
    db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, a, u UNIQUE); CREATE TABLE c(id INTEGER PRIMARY KEY, tid REFERENCES t(id))');
    const single: Array<[string, unknown[]]> = [
      ['SELECT id, a FROM t WHERE id = ?', [1n]],
      ['SELECT a FROM t WHERE u = ?', ['x']],
      ['SELECT 1, ?', [2n]],
      ['SELECT count(*) FROM t', []],
      ['SELECT zeroblob(10)', []],
      // SQLite's min/max optimization: one seek, its loop unreachable.
      ['SELECT max(id) FROM t', []],
      ['SELECT min(id) FROM t', []],
      ['SELECT max(u) FROM t', []],
    ];
    const stepped: Array<[string, unknown[]]> = [
      ['SELECT * FROM t', []],
      ['SELECT * FROM t WHERE a = ?', [1n]],
      ['SELECT * FROM t WHERE id IN (1, 2)', []],
      ['SELECT * FROM t WHERE id > ?', [1n]],
      ['SELECT (SELECT count(*) FROM c WHERE tid = t.id) FROM t WHERE id = ?', [1n]],
      ['WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r', []],
      ['SELECT x FROM (SELECT 1 AS x UNION ALL SELECT 2)', []],
      ['VALUES (1), (2)', []],
      ['PRAGMA table_info(t)', []],
      ['SELECT * FROM t WHERE id = ?; SELECT 2', [1n]],
      ['SELECT max(a) FROM t', []],
      ['SELECT max(id), count(a) FROM t', []],
      ['SELECT max(id) FROM t WHERE a = ?', [1n]],
      ['SELECT sum(id) FROM t', []],
    ];
    for (const [sql, args] of single) expect(isSinglePass(db, sql, args), sql).toBe(true);
    for (const [sql, args] of stepped) expect(isSinglePass(db, sql, args), sql).toBe(false);
    // Arguments that do not bind decide nothing (the next call, with good ones, does).
    expect(isSinglePass(db, 'SELECT id FROM t WHERE id = ?', [])).toBeUndefined();
    db.close();
  });
});
