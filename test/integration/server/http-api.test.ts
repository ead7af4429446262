import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestServer } from '../../support/server.js';

/** The HTTP contract of docs/API.md, against a real server process. */
let server: TestServer;

beforeAll(async () => {
  server = await TestServer.start({ env: { LITEBASE_BODY_LIMIT_BYTES: String(256 * 1024) } });
  expect((await server.request('POST', '/v1/databases', { name: 'api' })).status).toBe(201);
  const created = await server.request('POST', '/v1/databases/api/query', {
    statements: [
      { sql: 'CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c REAL, d BLOB, e INTEGER)' },
      { sql: 'CREATE TABLE u(k TEXT UNIQUE)' },
    ],
  });
  expect(created.status, JSON.stringify(created.body)).toBe(200);
});

afterAll(async () => {
  await server?.stop();
  server?.cleanup();
});

const query = (body: unknown, db = 'api') => server.request('POST', `/v1/databases/${db}/query`, body);

describe('databases', () => {
  it('creates, lists, gets and drops', async () => {
    const created = await server.request('POST', '/v1/databases', { name: 'scratch' });
    expect(created.status).toBe(201);
    expect(created.body.database).toMatchObject({ name: 'scratch', position: '0' });
    expect((await server.request('POST', '/v1/databases', { name: 'scratch' })).body.error.code).toBe('DATABASE_EXISTS');
    const list = await server.request('GET', '/v1/databases');
    expect(list.body.databases.map((d: { name: string }) => d.name)).toEqual(expect.arrayContaining(['api', 'scratch']));
    expect((await server.request('GET', '/v1/databases/scratch')).body.database.id).toBe(created.body.database.id);
    expect((await server.request('DELETE', '/v1/databases/scratch')).status).toBe(204);
    const missing = await server.request('GET', '/v1/databases/scratch');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('DATABASE_NOT_FOUND');
  });

  it('refuses bad names with 400 and a code', async () => {
    for (const name of ['', 'UPPER', '../etc', 'a'.repeat(64), 'x/y', '.hidden']) {
      const response = await server.request('POST', '/v1/databases', { name });
      expect(response.status, name).toBe(400);
      expect(response.body.error.code).toMatch(/INVALID_DATABASE_NAME|INVALID_REQUEST/);
    }
  });
});

describe('query', () => {
  it('round-trips every value type exactly', async () => {
    const big = '9223372036854775807';
    const negative = '-9007199254740993';
    const blob = Buffer.from([0, 1, 2, 250, 255]).toString('base64');
    const insert = await query({
      statements: [
        { sql: 'INSERT INTO t(a, b, c, d, e) VALUES (?, ?, ?, ?, ?)', params: [1, 'text ✓', 1.5, { $blob: blob }, { $int: big }] },
        {
          sql: 'INSERT INTO t(a, b, c, d, e) VALUES (:a, :b, :c, :d, :e)',
          params: { a: 2, b: null, c: -0.25, d: null, e: { $int: negative } },
        },
        { sql: 'SELECT a, b, c, d, e FROM t WHERE a IN (1, 2) ORDER BY a' },
      ],
    });
    expect(insert.status, JSON.stringify(insert.body)).toBe(200);
    expect(insert.body.results[0]).toMatchObject({ rowsAffected: 1, lastInsertRowid: 1 });
    expect(insert.body.results[2].columns).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(insert.body.results[2].rows).toEqual([
      [1, 'text ✓', 1.5, { $blob: blob }, { $int: big }],
      [2, null, -0.25, null, { $int: negative }],
    ]);
    expect(insert.body.role).toBe('primary');
    expect(BigInt(insert.body.position)).toBeGreaterThan(0n);
    const types = await query({ statements: [{ sql: 'SELECT typeof(?), typeof(?), typeof(?)', params: [7, 7.5, true] }] });
    expect(types.body.results[0].rows).toEqual([['integer', 'real', 'integer']]);
  });

  it('runs a transaction all or nothing, and independent statements one by one', async () => {
    const failed = await query({
      statements: [{ sql: "INSERT INTO u(k) VALUES ('one')" }, { sql: "INSERT INTO u(k) VALUES ('one')" }],
    });
    expect(failed.status).toBe(400);
    expect(failed.body.error).toMatchObject({ code: 'SQLITE_CONSTRAINT_UNIQUE', statement: 1 });
    const count = await query({ statements: [{ sql: 'SELECT count(*) FROM u' }] });
    expect(count.body.results[0].rows).toEqual([[0]]);

    const independent = await query({
      mode: 'independent',
      statements: [{ sql: "INSERT INTO u(k) VALUES ('two')" }, { sql: "INSERT INTO u(k) VALUES ('two')" }, { sql: 'SELECT k FROM u' }],
    });
    expect(independent.status).toBe(200);
    expect(independent.body.results[0].rowsAffected).toBe(1);
    expect(independent.body.results[1].error.code).toBe('SQLITE_CONSTRAINT_UNIQUE');
    expect(independent.body.results[2].rows).toEqual([['two']]);
  });

  it('answers bad input with 4xx and a code, never a 500', async () => {
    const cases: Array<[unknown, number, RegExp]> = [
      [{ statements: [{ sql: 'SELEC 1' }] }, 400, /SQLITE_ERROR/],
      [{ statements: [] }, 400, /INVALID_REQUEST/],
      [{ statements: [{ sql: 'SELECT ?', params: [{ $int: 'x' }] }] }, 400, /INVALID_PARAMS/],
      [{ statements: [{ sql: 'SELECT ?', params: [{ nested: 1 }] }] }, 400, /INVALID_PARAMS/],
      [{ statements: [{ sql: 'SELECT ?, ?', params: [1] }] }, 400, /INVALID_PARAMS/],
      [{ statements: [{ sql: 'SELECT 1; SELECT 2' }] }, 400, /INVALID_STATEMENT/],
      [{ statements: [{ sql: 'PRAGMA journal_mode=DELETE' }] }, 400, /STATEMENT_NOT_ALLOWED/],
      [{ statements: [{ sql: "ATTACH '/etc/hostname' AS x" }] }, 400, /STATEMENT_NOT_ALLOWED/],
      [{ statements: [{ sql: "/* hidden */ VACUUM INTO '/tmp/copy.db'" }] }, 400, /STATEMENT_NOT_ALLOWED/],
      [{ statements: [{ sql: "SELECT load_extension('x')" }] }, 400, /STATEMENT_NOT_ALLOWED/],
      [{ statements: [{ sql: 'BEGIN' }] }, 400, /TRANSACTION_CONTROL_NOT_ALLOWED/],
      [{ statements: [{ sql: "INSERT INTO u(k) VALUES ('c')" }, { sql: '-- sneaky\nCOMMIT' }] }, 400, /TRANSACTION_CONTROL_NOT_ALLOWED/],
      [{ statements: [{ sql: 1 }] }, 400, /INVALID_REQUEST/],
      [{ statements: [{ sql: 'SELECT 1' }], mode: 'sometimes' }, 400, /INVALID_REQUEST/],
      [{ statements: [{ sql: 'SELECT 1' }], minPosition: 'abc' }, 400, /INVALID_REQUEST/],
      ['{"statements": [', 400, /INVALID_JSON/],
    ];
    for (const [body, status, code] of cases) {
      const response = await query(body);
      expect(response.status, JSON.stringify(body)).toBe(status);
      expect(response.body.error.code, JSON.stringify(body)).toMatch(code);
      expect(JSON.stringify(response.body)).not.toMatch(/at .*\.js:\d+/);
    }
    expect((await query({ statements: [{ sql: 'SELECT 1' }] }, 'nope')).status).toBe(404);
    // The server runs with a 256 KiB body limit (a body that size still fits the socket buffers, so
    // the client reads the 413 instead of a reset).
    const huge = await query({ statements: [{ sql: 'SELECT ?', params: ['x'.repeat(300 * 1024)] }] });
    expect(huge.status).toBe(413);
    expect(huge.body.error.code).toBe('BODY_TOO_LARGE');
  });

  it('waits for minPosition and gives up with 503 and a code', async () => {
    const write = await query({ statements: [{ sql: "INSERT INTO u(k) VALUES ('min')" }] });
    const ok = await query({ statements: [{ sql: 'SELECT 1' }], minPosition: write.body.position });
    expect(ok.status).toBe(200);
    const far = await query({ statements: [{ sql: 'SELECT 1' }], minPosition: '99999999999999999999' });
    expect(far.status).toBe(503);
    expect(far.body.error.code).toBe('POSITION_NOT_REACHED');
    expect(far.headers.get('retry-after')).not.toBeNull();
  }, 20_000);
});

describe('interactive transactions', () => {
  it('commits, reads its own writes, and rolls back', async () => {
    const begin = await server.request('POST', '/v1/databases/api/transactions', { timeoutMs: 5000 });
    expect(begin.status).toBe(201);
    const id = begin.body.transaction.id;
    expect(Date.parse(begin.body.transaction.expiresAt)).toBeGreaterThan(Date.now());
    const write = await server.request('POST', `/v1/databases/api/transactions/${id}/query`, {
      statements: [{ sql: "INSERT INTO u(k) VALUES ('tx')" }, { sql: "SELECT count(*) FROM u WHERE k = 'tx'" }],
    });
    expect(write.body.results[1].rows).toEqual([[1]]);
    // Not visible outside before commit.
    expect((await query({ statements: [{ sql: "SELECT count(*) FROM u WHERE k = 'tx'" }] })).body.results[0].rows).toEqual([[0]]);
    const commit = await server.request('POST', `/v1/databases/api/transactions/${id}/commit`);
    expect(commit.status).toBe(200);
    expect(BigInt(commit.body.position)).toBeGreaterThan(0n);
    expect((await query({ statements: [{ sql: "SELECT count(*) FROM u WHERE k = 'tx'" }] })).body.results[0].rows).toEqual([[1]]);
    expect((await server.request('POST', `/v1/databases/api/transactions/${id}/commit`)).status).toBe(409);

    const second = (await server.request('POST', '/v1/databases/api/transactions', {})).body.transaction.id;
    await server.request('POST', `/v1/databases/api/transactions/${second}/query`, {
      statements: [{ sql: "INSERT INTO u(k) VALUES ('gone')" }],
    });
    expect((await server.request('POST', `/v1/databases/api/transactions/${second}/rollback`)).status).toBe(200);
    expect((await query({ statements: [{ sql: "SELECT count(*) FROM u WHERE k = 'gone'" }] })).body.results[0].rows).toEqual([[0]]);
  });

  it('serves read-only statements while a transaction holds the write lock (reads never take the write path)', async () => {
    const id = (await server.request('POST', '/v1/databases/api/transactions', { timeoutMs: 10_000 })).body.transaction.id;
    const reads = await Promise.all([
      query({ statements: [{ sql: 'SELECT count(*) FROM u' }] }),
      query({ statements: [{ sql: 'WITH x(n) AS (SELECT 1) SELECT n FROM x' }, { sql: 'PRAGMA table_info(u)' }] }),
      query({ mode: 'independent', statements: [{ sql: 'SELECT 1' }] }),
    ]);
    for (const read of reads) expect(read.status, JSON.stringify(read.body)).toBe(200);
    expect((await server.request('POST', `/v1/databases/api/transactions/${id}/rollback`)).status).toBe(200);
  });

  it('rolls back on its own when it times out, and frees the write lock', async () => {
    const id = (await server.request('POST', '/v1/databases/api/transactions', { timeoutMs: 300 })).body.transaction.id;
    await server.request('POST', `/v1/databases/api/transactions/${id}/query`, {
      statements: [{ sql: "INSERT INTO u(k) VALUES ('late')" }],
    });
    await new Promise((resolve) => setTimeout(resolve, 600));
    const late = await server.request('POST', `/v1/databases/api/transactions/${id}/commit`);
    expect(late.status).toBe(409);
    expect(late.body.error.code).toBe('TRANSACTION_ENDED');
    const write = await query({ statements: [{ sql: "INSERT INTO u(k) VALUES ('after')" }] });
    expect(write.status).toBe(200);
    expect((await query({ statements: [{ sql: "SELECT count(*) FROM u WHERE k = 'late'" }] })).body.results[0].rows).toEqual([[0]]);
    const unknown = await server.request('POST', '/v1/databases/api/transactions/00000000-0000-0000-0000-000000000000/commit');
    expect(unknown.status).toBe(404);
  });
});

describe('auth and operations', () => {
  it('requires a key everywhere but /healthz', async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    for (const [method, path] of [
      ['GET', '/v1/databases'],
      ['POST', '/v1/databases/api/query'],
      ['GET', '/metrics'],
      ['GET', '/readyz'],
    ] as const) {
      expect((await fetch(server.url + path, { method })).status, path).toBe(401);
      const wrong = await fetch(server.url + path, { method, headers: { authorization: 'Bearer nope' } });
      expect(wrong.status, path).toBe(401);
      expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe('INVALID_KEY');
    }
  });

  it('serves readiness and Prometheus metrics', async () => {
    expect((await server.request('GET', '/readyz')).status).toBe(200);
    const metrics = await server.request('GET', '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/litebase_segments_written_total\{database="api"\} \d+/);
    expect(metrics.body).toMatch(/litebase_commit_group_size_bucket/);
    // Node's own figures, under the same prefix once (not litebase_process_process_...).
    expect(metrics.body).toMatch(/^litebase_process_resident_memory_bytes \d+/m);
    expect(metrics.body).toMatch(/^litebase_nodejs_gc_duration_seconds_sum\{kind="minor"\} /m);
    expect(metrics.body).not.toMatch(/litebase_process_process_/);
  });
});
