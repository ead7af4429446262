import { createClient, LibsqlError, type Client } from '@libsql/client';
import { connect } from '@tursodatabase/serverless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestServer } from '../../support/server.js';
import { sleep } from '../../support/wait.js';

/**
 * Hrana over HTTP on one real node (docs/HRANA.md), through real libSQL clients and raw HTTP.
 */
let server: TestServer;
let client: Client;
let base: string;
/** The node's statement time limit: long enough for a loaded machine, short enough for a test. */
const STATEMENT_TIMEOUT_MS = 1500;

beforeAll(async () => {
  server = await TestServer.start({ extraArgs: ['--statement-timeout-ms', String(STATEMENT_TIMEOUT_MS)] });
  expect((await server.request('POST', '/v1/databases', { name: 'app' })).status).toBe(201);
  base = `${server.url}/v1/databases/app/`;
  client = createClient({ url: base, authToken: server.key, intMode: 'bigint' });
  await client.execute('CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT UNIQUE, price REAL, data BLOB, n INT)');
}, 60_000);

afterAll(async () => {
  client?.close();
  await server?.stop();
});

/** A raw Hrana request: the body and headers as they came. */
async function hrana(
  path: string,
  body: unknown,
  key = server.key,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any; text: string; headers: Headers }> {
  const response = await fetch(new URL(path, base), {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: response.status, body: parsed, text, headers: response.headers };
}

const execute = (sql: string, args: unknown[] = []) => ({ type: 'execute', stmt: { sql, args } });

describe('Hrana over HTTP with @libsql/client', () => {
  it('executes statements with sqld row counts and rowids, also for RETURNING and WITH ... INSERT', async () => {
    const insert = await client.execute({ sql: 'INSERT INTO items(name, price) VALUES (?, ?)', args: ['a', 1.5] });
    expect(insert.rowsAffected).toBe(1);
    expect(insert.lastInsertRowid).toBe(1n);
    const returning = await client.execute("INSERT INTO items(name) VALUES ('b') RETURNING id, name");
    expect(returning.rows.map((row) => [row.id, row.name])).toEqual([[2n, 'b']]);
    expect(returning.rowsAffected).toBe(1);
    expect(returning.lastInsertRowid).toBe(2n);
    const withInsert = await client.execute("WITH v(x) AS (VALUES ('c'), ('d')) INSERT INTO items(name) SELECT x FROM v");
    expect(withInsert.rowsAffected).toBe(2);
    expect(withInsert.lastInsertRowid).toBe(4n);
    const update = await client.execute("UPDATE items SET n = 1 WHERE name IN ('c', 'd')");
    expect(update.rowsAffected).toBe(2);
    const read = await client.execute('SELECT id, name, price FROM items ORDER BY id');
    expect(read.columns).toEqual(['id', 'name', 'price']);
    expect(read.columnTypes).toEqual(['INTEGER', 'TEXT', 'REAL']);
    expect(read.rows.length).toBe(4);
    expect(read.rowsAffected).toBe(0);
    await client.execute('DELETE FROM items');
  });

  it('round-trips every value type exactly, integers and floats at their extremes', async () => {
    const values = [
      9223372036854775807n,
      -9223372036854775808n,
      0n,
      Number.MAX_VALUE,
      Number.MIN_VALUE,
      -0.5,
      'héllo ✓',
      new Uint8Array([0, 1, 255]),
      null,
    ];
    const placeholders = values.map(() => '?').join(', ');
    const result = await client.execute({ sql: `SELECT ${placeholders}`, args: values });
    const row = Array.from({ length: values.length }, (_, index) => result.rows[0]?.[index]);
    expect(row.slice(0, 7)).toEqual(values.slice(0, 7));
    expect(new Uint8Array(row[7] as ArrayBuffer)).toEqual(values[7]);
    expect(row[8]).toBeNull();
    // Stored and read back through a table: the column types are kept.
    await client.execute({
      sql: 'INSERT INTO items(id, name, price, data, n) VALUES (?, ?, ?, ?, ?)',
      args: [9223372036854775807n, 'x', 2.25, new Uint8Array([7]), -9223372036854775808n],
    });
    const stored = await client.execute('SELECT id, name, price, data, n, typeof(price) AS tp, typeof(n) AS tn FROM items');
    expect(stored.rows[0]?.id).toBe(9223372036854775807n);
    expect(stored.rows[0]?.n).toBe(-9223372036854775808n);
    expect(stored.rows[0]?.tp).toBe('real');
    expect(stored.rows[0]?.tn).toBe('integer');
    await client.execute('DELETE FROM items');

    // On the wire: an integral REAL is a float, an INTEGER a decimal string.
    const raw = await hrana('v2/pipeline', {
      baton: null,
      requests: [execute("SELECT 1.0, 1, 'x', x'00ff', NULL, -9223372036854775808"), { type: 'close' }],
    });
    expect(raw.status).toBe(200);
    expect(raw.headers.get('content-type')).toBe('application/json');
    expect(raw.body.results[0].response.result.rows[0]).toEqual([
      { type: 'float', value: 1 },
      { type: 'integer', value: '1' },
      { type: 'text', value: 'x' },
      { type: 'blob', base64: 'AP8=' },
      { type: 'null' },
      { type: 'integer', value: '-9223372036854775808' },
    ]);
    // A float argument binds as REAL even when it is integral.
    const float = await hrana('v2/pipeline', {
      baton: null,
      requests: [
        execute('SELECT typeof(?), typeof(?)', [
          { type: 'float', value: 3 },
          { type: 'integer', value: '3' },
        ]),
        { type: 'close' },
      ],
    });
    expect(float.body.results[0].response.result.rows[0]).toEqual([
      { type: 'text', value: 'real' },
      { type: 'text', value: 'integer' },
    ]);
  });

  it('binds ?, ?NNN with holes and mixed with ?, and names with :, @, $ or no prefix', async () => {
    const numbered = await client.execute({ sql: 'SELECT ?3 AS c, ?1 AS a', args: [1n, 2n, 3n] });
    expect([numbered.rows[0]?.c, numbered.rows[0]?.a]).toEqual([3n, 1n]);
    const mixed = await client.execute({ sql: 'SELECT ?, ?5, ?', args: [1n, 2n, 3n, 4n, 5n, 6n] });
    expect(Array.from(mixed.rows[0] ?? [])).toEqual([1n, 5n, 6n]);
    const named = await client.execute({ sql: 'SELECT :a AS a, @b AS b, $c AS c', args: { a: 1n, '@b': 'two', $c: 3.5 } });
    expect([named.rows[0]?.a, named.rows[0]?.b, named.rows[0]?.c]).toEqual([1n, 'two', 3.5]);
    const missing = await client.execute({ sql: 'SELECT :a', args: {} }).catch((error: unknown) => error);
    expect(missing).toBeInstanceOf(LibsqlError);
  });

  it('runs batches in write, read and deferred mode; a failing write batch leaves nothing behind', async () => {
    const written = await client.batch(
      ["INSERT INTO items(name) VALUES ('w1')", "INSERT INTO items(name) VALUES ('w2')", 'SELECT count(*) AS n FROM items'],
      'write',
    );
    expect(written[2]?.rows[0]?.n).toBe(2n);
    const deferred = await client.batch(["INSERT INTO items(name) VALUES ('d1')", 'SELECT count(*) AS n FROM items']);
    expect(deferred[1]?.rows[0]?.n).toBe(3n);
    const read = await client.batch(['SELECT count(*) AS n FROM items', "SELECT name FROM items WHERE name = 'w1'"], 'read');
    expect(read[0]?.rows[0]?.n).toBe(3n);
    expect(read[1]?.rows[0]?.name).toBe('w1');
    const failed = await client
      .batch(["INSERT INTO items(name) VALUES ('f1')", "INSERT INTO items(name) VALUES ('w1')"], 'write')
      .catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(LibsqlError);
    expect((failed as LibsqlError).code).toBe('SQLITE_CONSTRAINT');
    expect((await client.execute("SELECT count(*) AS n FROM items WHERE name = 'f1'")).rows[0]?.n).toBe(0n);
    const writeInRead = await client.batch(["INSERT INTO items(name) VALUES ('r1')"], 'read').catch((error: unknown) => error);
    expect((writeInRead as LibsqlError).code).toBe('SQLITE_READONLY');
    await client.execute('DELETE FROM items');
  });

  it('runs interactive transactions: commit, rollback, and a second writer waiting for the first', async () => {
    const first = await client.transaction('write');
    await first.execute("INSERT INTO items(name) VALUES ('t1')");
    expect((await first.execute('SELECT count(*) AS n FROM items')).rows[0]?.n).toBe(1n);
    // The second transaction (it begins with its first statement) waits for the write lock; the
    // node keeps answering meanwhile.
    let secondWrote = false;
    const second = client.transaction('write').then(async (transaction) => {
      await transaction.execute("INSERT INTO items(name) VALUES ('t2')");
      secondWrote = true;
      await transaction.commit();
    });
    await sleep(300);
    expect(secondWrote).toBe(false);
    expect((await server.request('GET', '/healthz')).status).toBe(200);
    await first.commit();
    await second;
    const rolledBack = await client.transaction('write');
    await rolledBack.execute("INSERT INTO items(name) VALUES ('t3')");
    await rolledBack.rollback();
    const names = (await client.execute('SELECT name FROM items ORDER BY name')).rows.map((row) => row.name);
    expect(names).toEqual(['t1', 't2']);
    const failing = await client.transaction('write');
    const error = await failing.execute("INSERT INTO items(name) VALUES ('t1')").catch((caught: unknown) => caught);
    expect((error as LibsqlError).code).toBe('SQLITE_CONSTRAINT');
    await failing.rollback();
    await client.execute('DELETE FROM items');
  });

  it('runs executeMultiple (a sequence), trigger bodies included', async () => {
    await client.executeMultiple(`
      CREATE TABLE log(msg TEXT);
      CREATE TRIGGER items_log AFTER INSERT ON items BEGIN INSERT INTO log VALUES ('added ' || new.name); END;
      INSERT INTO items(name) VALUES ('m1'); -- a comment; with a semicolon
      INSERT INTO items(name) VALUES ('m2');
    `);
    expect((await client.execute('SELECT msg FROM log ORDER BY msg')).rows.map((row) => row.msg)).toEqual(['added m1', 'added m2']);
    await client.executeMultiple('DROP TRIGGER items_log; DROP TABLE log; DELETE FROM items;');
  });

  it('answers SQL errors inside HTTP 200 with the primary SQLite code', async () => {
    const raw = await hrana('v3/pipeline', { baton: null, requests: [execute('SELECT * FROM nowhere'), { type: 'close' }] });
    expect(raw.status).toBe(200);
    expect(raw.body.results[0]).toEqual({ type: 'error', error: { code: 'SQLITE_ERROR', message: 'no such table: nowhere' } });
    expect(raw.body.results[1]).toEqual({ type: 'ok', response: { type: 'close' } });
    expect(raw.body.baton).toBeNull();
    const guarded = await client.execute("ATTACH 'x.db' AS x").catch((error: unknown) => error);
    expect((guarded as LibsqlError).code).toBe('STATEMENT_NOT_ALLOWED');
    // The /v1 statement limit counts every statement of the request (default 1000).
    const steps = Array.from({ length: 1001 }, () => ({ stmt: { sql: 'SELECT 1' } }));
    const tooMany = await hrana('v3/pipeline', { baton: null, requests: [{ type: 'batch', batch: { steps } }, { type: 'close' }] });
    expect(tooMany.status).toBe(413);
    expect(tooMany.headers.get('content-type')).toBe('application/json');
    expect(tooMany.body).toMatchObject({ code: 'TOO_MANY_STATEMENTS', error: { code: 'TOO_MANY_STATEMENTS' } });
    const malformed = await hrana('v2/pipeline', { baton: null, requests: [{ type: 'execute' }] });
    expect(malformed.status).toBe(400);
    expect(malformed.body.code).toBe('HRANA_PROTO_ERROR');
  });

  it('stops statements at the time limit, inside the answer; a write transaction SQLite ended is over', async () => {
    const endless = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)';
    const read = await hrana('v2/pipeline', { baton: null, requests: [execute(`${endless} SELECT count(*) FROM c`), { type: 'close' }] });
    expect(read.status).toBe(200);
    expect(read.body.results[0].error.code).toBe('STATEMENT_TIMEOUT');
    const write = await hrana('v2/pipeline', {
      baton: null,
      requests: [
        execute('BEGIN'),
        execute(`${endless} INSERT INTO items(name) SELECT 'n' || x FROM c`),
        { type: 'get_autocommit' },
        { type: 'close' },
      ],
    });
    expect(write.body.results[1].error.code).toBe('STATEMENT_TIMEOUT');
    expect(write.body.results[2].response.is_autocommit).toBe(true);
    expect((await client.execute('SELECT count(*) AS n FROM items')).rows[0]?.n).toBe(0n);
  }, 30_000);

  it('tells a client whose URL lacks the trailing slash to add it', async () => {
    const noSlash = createClient({ url: `${server.url}/v1/databases/app`, authToken: server.key });
    const error = await noSlash.execute('SELECT 1').catch((caught: unknown) => caught);
    expect((error as LibsqlError).code).toBe('HRANA_URL_NEEDS_SLASH');
    expect((error as LibsqlError).message).toMatch(/must end with a slash/);
    noSlash.close();
  });

  it('answers the version probes without a key and carries the position in every answer', async () => {
    for (const version of ['v2', 'v3']) expect((await fetch(new URL(version, base))).status).toBe(200);
    expect((await fetch(new URL('v3-protobuf', base))).ok).toBe(false);
    const write = await hrana('v2/pipeline', {
      baton: null,
      requests: [execute("INSERT INTO items(name) VALUES ('p')"), { type: 'close' }],
    });
    const position = BigInt(write.headers.get('x-litebase-position') ?? '-1');
    expect(position).toBeGreaterThan(0n);
    const read = await hrana('v2/pipeline', { baton: null, requests: [execute('SELECT 1'), { type: 'close' }] }, server.key, {
      'x-litebase-min-position': String(position),
    });
    expect(BigInt(read.headers.get('x-litebase-position') ?? '-1')).toBeGreaterThanOrEqual(position);
    await client.execute('DELETE FROM items');
  });
});

describe('Hrana streams and batons', () => {
  it('serves every stream request: store_sql, close_sql, describe, sequence, get_autocommit, batch conditions', async () => {
    const first = await hrana('v3/pipeline', {
      baton: null,
      requests: [
        { type: 'store_sql', sql_id: 1, sql: 'SELECT name, price AS p FROM items WHERE id = ?' },
        { type: 'describe', sql_id: 1 },
        { type: 'describe', sql: 'EXPLAIN SELECT :x, ?5' },
        { type: 'describe', sql: "INSERT INTO items(name) VALUES ('z')" },
        { type: 'sequence', sql: "INSERT INTO items(id, name) VALUES (1, 'q'); INSERT INTO items(id, name) VALUES (2, 'r')" },
        { type: 'get_autocommit' },
        execute('BEGIN'),
        { type: 'get_autocommit' },
        {
          type: 'batch',
          batch: {
            steps: [
              { stmt: { sql_id: 1, args: [{ type: 'integer', value: '1' }] } },
              { stmt: { sql: 'SELECT * FROM nowhere' } },
              { condition: { type: 'error', step: 1 }, stmt: { sql: 'UPDATE items SET price = 1 WHERE id = 1' } },
              {
                condition: {
                  type: 'and',
                  conds: [
                    { type: 'ok', step: 0 },
                    { type: 'not', cond: { type: 'is_autocommit' } },
                  ],
                },
                stmt: { sql: 'SELECT 2' },
              },
              { condition: { type: 'or', conds: [{ type: 'ok', step: 1 }, { type: 'is_autocommit' }] }, stmt: { sql: 'SELECT 3' } },
            ],
          },
        },
        { type: 'close_sql', sql_id: 1 },
        execute('COMMIT'),
        { type: 'get_autocommit' },
      ],
    });
    expect(first.status).toBe(200);
    const [
      stored,
      described,
      explained,
      insertDescribed,
      sequence,
      autocommit,
      begin,
      inTransaction,
      batch,
      closedSql,
      commit,
      afterCommit,
    ] = first.body.results.map((result: { type: string; response?: any; error?: unknown }) =>
      result.type === 'ok' ? result.response : result,
    );
    expect(stored).toEqual({ type: 'store_sql' });
    expect(described.result).toEqual({
      params: [{ name: null }],
      cols: [
        { name: 'name', decltype: 'TEXT' },
        { name: 'p', decltype: 'REAL' },
      ],
      is_explain: false,
      is_readonly: true,
    });
    expect(explained.result.is_explain).toBe(true);
    expect(explained.result.params).toEqual([{ name: ':x' }, { name: null }, { name: null }, { name: null }, { name: '?5' }]);
    expect(insertDescribed.result).toMatchObject({ cols: [], is_readonly: false });
    expect(sequence).toEqual({ type: 'sequence' });
    expect(autocommit.is_autocommit).toBe(true);
    expect(begin.type).toBe('execute');
    expect(inTransaction.is_autocommit).toBe(false);
    expect(batch.result.step_results.map((result: unknown) => result !== null)).toEqual([true, false, true, true, false]);
    expect(batch.result.step_errors.map((error: { code?: string } | null) => error?.code ?? null)).toEqual([
      null,
      'SQLITE_ERROR',
      null,
      null,
      null,
    ]);
    expect(batch.result.step_results[0].rows).toEqual([[{ type: 'text', value: 'q' }, { type: 'null' }]]);
    expect(closedSql).toEqual({ type: 'close_sql' });
    expect(commit.type).toBe('execute');
    expect(afterCommit.is_autocommit).toBe(true);
    expect(typeof first.body.baton).toBe('string');

    // The stream goes on with the new baton; its stored SQL was closed.
    const second = await hrana('v3/pipeline', {
      baton: first.body.baton,
      requests: [execute('SELECT price FROM items WHERE id = 1'), { type: 'execute', stmt: { sql_id: 1 } }, { type: 'close' }],
    });
    expect(second.body.results[0].response.result.rows).toEqual([[{ type: 'float', value: 1 }]]);
    expect(second.body.results[1].error.code).toBe('SQL_ID_NOT_FOUND');
    expect(second.body.baton).toBeNull();
    await client.execute('DELETE FROM items');
  });

  it('changes the baton on every answer and refuses a used, forged or closed one', async () => {
    const opened = await hrana('v2/pipeline', { baton: null, requests: [execute('SELECT 1')] });
    const baton: string = opened.body.baton;
    const next = await hrana('v2/pipeline', { baton, requests: [execute('SELECT 2')] });
    expect(next.status).toBe(200);
    expect(next.body.baton).not.toBe(baton);
    const reused = await hrana('v2/pipeline', { baton, requests: [execute('SELECT 3')] });
    expect(reused.status).toBe(400);
    expect(reused.headers.get('content-type')).toBe('application/json');
    expect(reused.body).toMatchObject({ code: 'BATON_INVALID', message: expect.any(String) });
    const forged = `${next.body.baton.slice(0, -2)}AA`;
    expect((await hrana('v2/pipeline', { baton: forged, requests: [execute('SELECT 4')] })).body.code).toBe('BATON_INVALID');
    const closed = await hrana('v2/pipeline', { baton: next.body.baton, requests: [{ type: 'close' }, execute('SELECT 5')] });
    expect(closed.body.results[1].error.code).toBe('STREAM_CLOSED');
    expect(closed.body.baton).toBeNull();
  });

  it('closes a stream idle for 10 s and rolls its transaction back, freeing the write lock', async () => {
    const opened = await hrana('v2/pipeline', {
      baton: null,
      requests: [execute('BEGIN IMMEDIATE'), execute("INSERT INTO items(name) VALUES ('idle')")],
    });
    expect(opened.body.results.map((result: { type: string }) => result.type)).toEqual(['ok', 'ok']);
    await sleep(11_000);
    const late = await hrana('v2/pipeline', { baton: opened.body.baton, requests: [execute('COMMIT')] });
    expect(late.status).toBe(400);
    expect(late.body.code).toBe('STREAM_EXPIRED');
    // The lock is free again and the insert was undone.
    await client.execute("INSERT INTO items(name) VALUES ('after')");
    expect((await client.execute('SELECT name FROM items')).rows.map((row) => row.name)).toEqual(['after']);
    await client.execute('DELETE FROM items');
  }, 30_000);

  it('refuses writes from a read-only key, as /v1 does, and lets it read', async () => {
    const created = await server.request('POST', '/v1/keys', { name: 'reader', databases: ['app'], actions: ['read'] });
    expect(created.status).toBe(201);
    const reader = createClient({ url: base, authToken: created.body.key.secret, intMode: 'bigint' });
    expect((await reader.execute('SELECT count(*) AS n FROM items')).rows[0]?.n).toBe(0n);
    expect((await reader.batch(['SELECT 1 AS one'], 'read'))[0]?.rows[0]?.one).toBe(1n);
    const write = await reader.execute("INSERT INTO items(name) VALUES ('no')").catch((error: unknown) => error);
    expect((write as LibsqlError).code).toBe('PERMISSION_DENIED');
    const transaction = await reader.batch(["INSERT INTO items(name) VALUES ('no')"], 'write').catch((error: unknown) => error);
    expect((transaction as LibsqlError).code).toBe('PERMISSION_DENIED');
    expect((await client.execute('SELECT count(*) AS n FROM items')).rows[0]?.n).toBe(0n);
    reader.close();
    const unknown = createClient({ url: base, authToken: 'not-a-key' });
    expect(await unknown.execute('SELECT 1').catch((error: unknown) => (error as LibsqlError).code)).toBe('SERVER_ERROR');
    unknown.close();
  });
});

describe('Hrana v3 cursors with @tursodatabase/serverless', () => {
  it('runs statements, batches and transactions', async () => {
    const connection = connect({ url: `${server.url}/v1/databases/app`, authToken: server.key });
    await connection.run('INSERT INTO items(name, price) VALUES (?, ?)', 's1', 2.5);
    expect(await connection.get('SELECT name, price FROM items')).toEqual({ name: 's1', price: 2.5 });
    await connection.batch(["INSERT INTO items(name) VALUES ('s2')", "INSERT INTO items(name) VALUES ('s3')"]);
    expect((await connection.all('SELECT name FROM items ORDER BY name')).map((row: { name: string }) => row.name)).toEqual([
      's1',
      's2',
      's3',
    ]);
    const failed = await connection.run("INSERT INTO items(name) VALUES ('s1')").catch((error: unknown) => error);
    expect(String(failed)).toMatch(/UNIQUE constraint failed/);
    await connection.exec("BEGIN; INSERT INTO items(name) VALUES ('s4'); ROLLBACK;");
    expect((await connection.get('SELECT count(*) AS n FROM items')).n).toBe(3);
    await connection.close();

    // The cursor's wire format: the baton line, then one entry per line.
    const raw = await hrana('v3/cursor', {
      baton: null,
      batch: { steps: [{ stmt: { sql: 'SELECT name FROM items ORDER BY name LIMIT 1' } }, { stmt: { sql: 'SELECT * FROM nowhere' } }] },
    });
    const lines = raw.text
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(typeof lines[0].baton).toBe('string');
    expect(lines.slice(1)).toEqual([
      { type: 'step_begin', step: 0, cols: [{ name: 'name', decltype: 'TEXT' }] },
      { type: 'row', row: [{ type: 'text', value: 's1' }] },
      { type: 'step_end', affected_row_count: 0, last_insert_rowid: null },
      { type: 'step_error', step: 1, error: { code: 'SQLITE_ERROR', message: 'no such table: nowhere' } },
    ]);
    await hrana('v3/pipeline', { baton: lines[0].baton, requests: [{ type: 'close' }] });
    await client.execute('DELETE FROM items');
  });
});
