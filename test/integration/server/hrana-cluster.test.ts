import { createClient, LibsqlError, type Client } from '@libsql/client';
import { connect } from '@tursodatabase/serverless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startClusterNode, tempDir, type TestServer } from '../../support/server.js';
import { waitFor } from '../../support/wait.js';

/**
 * Hrana through a Replica of a two-node cluster (real processes on one shared folder): reads are
 * answered there, writes and transactions are forwarded to the Primary, batons find their stream.
 */
const servers: TestServer[] = [];
let primary: TestServer;
let replica: TestServer;
let client: Client;

async function roleOf(node: TestServer): Promise<string | undefined> {
  const status = (await node.request('GET', '/v1/cluster')).body;
  return status?.nodes?.find((entry: { nodeId: string; address: string }) => entry.address === node.url)?.role;
}

beforeAll(async () => {
  const dataDir = tempDir('litebase-hrana-cluster-');
  const first = await startClusterNode(dataDir, 'n1', servers);
  await waitFor(async () => (await roleOf(first)) === 'primary', 15_000, 'n1 to be the Primary');
  primary = first;
  replica = await startClusterNode(dataDir, 'n2', servers);
  await waitFor(async () => (await roleOf(replica)) === 'replica', 15_000, 'n2 to be a replica');
  expect((await primary.request('POST', '/v1/databases', { name: 'app' })).status).toBe(201);
  await waitFor(async () => (await replica.request('GET', '/v1/databases/app')).status === 200, 10_000, 'the database on the replica');
  client = createClient({ url: `${replica.url}/v1/databases/app/`, authToken: replica.key, intMode: 'bigint' });
}, 90_000);

afterAll(async () => {
  client?.close();
  for (const server of servers.splice(0)) await server.stop('SIGKILL');
});

async function pipeline(
  node: TestServer,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const response = await fetch(`${node.url}/v1/databases/app/v2/pipeline`, {
    method: 'POST',
    headers: { authorization: `Bearer ${node.key}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json(), headers: response.headers };
}

describe('Hrana through a Replica', () => {
  it('forwards writes, answers reads after the position it is asked for, round-trips every value type', async () => {
    await client.execute('CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT UNIQUE, price REAL, data BLOB)');
    const insert = await client.execute({
      sql: 'INSERT INTO items(name, price, data) VALUES (?, ?, ?)',
      args: ['a', 1.5, new Uint8Array([1, 2])],
    });
    expect(insert.lastInsertRowid).toBe(1n);
    // Raw: the write's answer names its position; a read on the Replica waits for it.
    const write = await pipeline(replica, {
      baton: null,
      requests: [{ type: 'execute', stmt: { sql: "INSERT INTO items(name) VALUES ('b')" } }, { type: 'close' }],
    });
    const position = write.headers.get('x-litebase-position');
    expect(position).toMatch(/^\d+$/);
    const read = await pipeline(
      replica,
      { baton: null, requests: [{ type: 'execute', stmt: { sql: 'SELECT count(*) FROM items' } }, { type: 'close' }] },
      { 'x-litebase-min-position': position ?? '' },
    );
    expect(read.body.results[0].response.result.rows).toEqual([[{ type: 'integer', value: '2' }]]);
    expect(BigInt(read.headers.get('x-litebase-position') ?? '0')).toBeGreaterThanOrEqual(BigInt(position ?? '0'));

    const values = [9223372036854775807n, -9223372036854775808n, Number.MAX_VALUE, -Number.MIN_VALUE, 'ü', new Uint8Array([0, 255]), null];
    const row = (await client.execute({ sql: 'SELECT ?, ?, ?, ?, ?, ?, ?', args: values })).rows[0];
    expect(Array.from({ length: 5 }, (_, index) => row?.[index])).toEqual(values.slice(0, 5));
    expect(new Uint8Array(row?.[5] as ArrayBuffer)).toEqual(values[5]);
    expect(row?.[6]).toBeNull();
  });

  it('runs batches in every mode, interactive transactions and executeMultiple through the Replica', async () => {
    const written = await client.batch(["INSERT INTO items(name) VALUES ('w1')", 'SELECT count(*) AS n FROM items'], 'write');
    expect(written[1]?.rows[0]?.n).toBe(3n);
    await client.batch(["INSERT INTO items(name) VALUES ('d1')"], 'deferred');
    const position =
      (await primary.request('GET', '/v1/databases/app')).body.database?.position ??
      (await primary.request('GET', '/v1/databases/app')).body.position;
    await waitFor(
      async () =>
        (await replica.request('POST', '/v1/databases/app/query', { statements: [{ sql: 'SELECT 1' }], minPosition: String(position) }))
          .status === 200,
      10_000,
      'the replica to catch up',
    );
    const read = await client.batch(['SELECT count(*) AS n FROM items'], 'read');
    expect(read[0]?.rows[0]?.n).toBe(4n);

    const transaction = await client.transaction('write');
    await transaction.execute("INSERT INTO items(name) VALUES ('t1')");
    expect((await transaction.execute("SELECT count(*) AS n FROM items WHERE name = 't1'")).rows[0]?.n).toBe(1n);
    await transaction.commit();
    const rolledBack = await client.transaction('write');
    await rolledBack.execute("INSERT INTO items(name) VALUES ('t2')");
    await rolledBack.rollback();
    const failed = await client
      .batch(["INSERT INTO items(name) VALUES ('f')", "INSERT INTO items(name) VALUES ('t1')"], 'write')
      .catch((error: unknown) => error);
    expect((failed as LibsqlError).code).toBe('SQLITE_CONSTRAINT');

    await client.executeMultiple("INSERT INTO items(name) VALUES ('m1'); INSERT INTO items(name) VALUES ('m2');");
    const names = await client.batch(
      ["SELECT group_concat(name, ',') AS names FROM (SELECT name FROM items WHERE name IN ('t1', 't2', 'f', 'm1', 'm2') ORDER BY name)"],
      'write',
    );
    expect(names[0]?.rows[0]?.names).toBe('m1,m2,t1');
  });

  it('answers a deferred batch of reads on the Replica, and moves one that writes to the Primary', async () => {
    // The Primary's write lock is held: a batch that went there would wait for it.
    const primaryClient = createClient({ url: `${primary.url}/v1/databases/app/`, authToken: primary.key, intMode: 'bigint' });
    const holder = await primaryClient.transaction('write');
    await holder.execute("INSERT INTO items(name) VALUES ('held')");
    const reads = client.batch(['SELECT count(*) AS n FROM items', "SELECT count(*) AS n FROM items WHERE name = 'held'"]);
    const answered = await Promise.race([
      reads.then((results) => results[1]?.rows[0]?.n),
      new Promise((resolve) => setTimeout(() => resolve('waited'), 3000)),
    ]);
    expect(answered).toBe(0n);
    await holder.commit();
    primaryClient.close();
    const written = await client.batch([
      "INSERT INTO items(name) VALUES ('deferred-write')",
      "SELECT count(*) AS n FROM items WHERE name IN ('held', 'deferred-write')",
    ]);
    expect(written[1]?.rows[0]?.n).toBe(2n);
    // A deferred BEGIN without its COMMIT in the request is interactive: it goes to the Primary at once.
    const begun = await pipeline(replica, {
      baton: null,
      requests: [
        { type: 'execute', stmt: { sql: 'BEGIN' } },
        { type: 'execute', stmt: { sql: 'SELECT 1' } },
      ],
    });
    expect(Buffer.from(String(begun.body.baton).split('.')[0] ?? '', 'base64url').toString()).toBe('n1');
    const ended = await pipeline(replica, {
      baton: begun.body.baton,
      requests: [
        { type: 'execute', stmt: { sql: "INSERT INTO items(name) VALUES ('interactive')" } },
        { type: 'execute', stmt: { sql: 'COMMIT' } },
        { type: 'close' },
      ],
    });
    expect(ended.body.results.map((result: { type: string }) => result.type)).toEqual(['ok', 'ok', 'ok']);
  });

  it('moves a stream the Replica kept to the Primary when it starts writing, and forwards its later requests there', async () => {
    const opened = await pipeline(replica, {
      baton: null,
      requests: [
        { type: 'store_sql', sql_id: 7, sql: "INSERT INTO items(name) VALUES ('moved')" },
        { type: 'execute', stmt: { sql: 'SELECT 1' } },
      ],
    });
    expect(opened.body.results.map((result: { type: string }) => result.type)).toEqual(['ok', 'ok']);
    const moved = await pipeline(replica, {
      baton: opened.body.baton,
      requests: [
        { type: 'execute', stmt: { sql: 'BEGIN' } },
        { type: 'execute', stmt: { sql_id: 7 } },
      ],
    });
    expect(moved.body.results.map((result: { type: string }) => result.type)).toEqual(['ok', 'ok']);
    expect(moved.body.baton).not.toBe(opened.body.baton);
    const committed = await pipeline(replica, {
      baton: moved.body.baton,
      requests: [{ type: 'execute', stmt: { sql: 'COMMIT' } }, { type: 'close' }],
    });
    expect(committed.body.results.map((result: { type: string }) => result.type)).toEqual(['ok', 'ok']);
    expect(committed.body.baton).toBeNull();
    const check = await pipeline(primary, {
      baton: null,
      requests: [{ type: 'execute', stmt: { sql: "SELECT count(*) FROM items WHERE name = 'moved'" } }, { type: 'close' }],
    });
    expect(check.body.results[0].response.result.rows).toEqual([[{ type: 'integer', value: '1' }]]);
  });

  it('refuses writes from a read-only key on the Replica and lets it read there', async () => {
    const created = await primary.request('POST', '/v1/keys', { name: 'reader', databases: ['app'], actions: ['read'] });
    expect(created.status).toBe(201);
    const reader = createClient({ url: `${replica.url}/v1/databases/app/`, authToken: created.body.key.secret, intMode: 'bigint' });
    await waitFor(async () => (await reader.execute('SELECT 1 AS one')).rows[0]?.one === 1n, 10_000, 'the key on the replica');
    const write = await reader.execute("INSERT INTO items(name) VALUES ('no')").catch((error: unknown) => error);
    expect((write as LibsqlError).code).toBe('PERMISSION_DENIED');
    const transaction = await reader
      .transaction('write')
      .then((tx) => tx.execute("INSERT INTO items(name) VALUES ('no')"))
      .catch((error: unknown) => error);
    expect((transaction as LibsqlError).code).toBe('PERMISSION_DENIED');
    reader.close();
  });

  it('serves @tursodatabase/serverless through the Replica', async () => {
    const connection = connect({ url: `${replica.url}/v1/databases/app`, authToken: replica.key });
    await connection.run('INSERT INTO items(name, price) VALUES (?, ?)', 'srv', 9.75);
    expect(await connection.get("SELECT name, price FROM items WHERE name = 'srv'")).toEqual({ name: 'srv', price: 9.75 });
    await connection.batch(["UPDATE items SET price = 1 WHERE name = 'srv'", "SELECT price FROM items WHERE name = 'srv'"]);
    expect((await connection.get("SELECT price FROM items WHERE name = 'srv'")).price).toBe(1);
    await connection.close();
  });
});
