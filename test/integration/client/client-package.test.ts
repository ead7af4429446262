import { afterEach, describe, expect, it } from 'vitest';
import { LitebaseClient, LitebaseClientError, LitebaseSession } from '../../../src/client/portable/index.js';
import { freePort, startClusterNode, tempDir, TestServer } from '../../support/server.js';
import { waitFor } from '../../support/wait.js';

/**
 * The portable client (`@litebase/client`, src/client/portable) against real server processes:
 * values, execute/batch/transactions, Web Crypto signing, read-your-writes through a Replica with
 * a session, and failover through a list of nodes while the Primary dies.
 */
const servers: TestServer[] = [];

afterEach(async () => {
  // Every node stopped before any folder goes: the nodes of a cluster share one.
  const stopped = servers.splice(0);
  await Promise.all(stopped.map((server) => server.stop('SIGKILL')));
  for (const server of stopped) server.cleanup();
});

async function roleOf(server: TestServer): Promise<string | undefined> {
  const status = (await server.request('GET', '/v1/cluster').catch(() => undefined))?.body;
  return status?.nodes?.find((node: { address: string }) => node.address === server.url)?.role;
}

describe('the portable client on a real node', () => {
  it('round-trips every value type, runs execute, batch and transactions, and signs with Web Crypto', async () => {
    const server = await TestServer.start();
    servers.push(server);
    const client = new LitebaseClient({ url: server.url, key: server.key });
    await client.createDatabase('app');
    const db = client.database('app');
    await db.execute('CREATE TABLE t(i INTEGER, r REAL, s TEXT, b BLOB, n)');

    const blob = Uint8Array.from({ length: 300 }, (_, index) => index % 256);
    const values = [
      [9223372036854775807n, 1.5, 'text ✓', blob, null],
      [-9223372036854775808n, -0.25, '', new Uint8Array(), null],
      [42, 1e300, "it's", new Uint8Array([0]), null],
    ];
    const inserted = await db.batch(values.map((params) => ({ sql: 'INSERT INTO t VALUES (?, ?, ?, ?, ?)', params })));
    expect(inserted.map((result) => result.rowsAffected)).toEqual([1, 1, 1]);
    expect(inserted[2]?.lastInsertRowid).toBe(3);
    const read = await db.execute('SELECT i, r, s, b, n FROM t ORDER BY rowid');
    expect(read.columns).toEqual(['i', 'r', 's', 'b', 'n']);
    expect(read.rows).toEqual(values);
    expect(read.rows[0]?.[3]).toBeInstanceOf(Uint8Array);
    expect(await db.execute('SELECT :a + :b AS sum', { a: 1, b: 2n })).toMatchObject({ rows: [[3]] });

    // An interactive transaction that commits, and one whose work throws: rolled back.
    const count = async () => (await db.execute('SELECT count(*) FROM t')).rows[0]?.[0];
    await db.transaction(async (tx) => {
      await tx.execute('INSERT INTO t(s) VALUES (?)', ['in tx']);
      expect((await tx.execute('SELECT count(*) FROM t')).rows[0]?.[0]).toBe(4);
    });
    expect(await count()).toBe(4);
    await expect(
      db.transaction(async (tx) => {
        await tx.execute("INSERT INTO t(s) VALUES ('rolled back')");
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    expect(await count()).toBe(4);

    // SQL errors keep the server's code; batch in transaction mode applies nothing.
    const failed = await db
      .batch([{ sql: "INSERT INTO t(s) VALUES ('x')" }, { sql: 'INSERT INTO nope VALUES (1)' }])
      .catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(LitebaseClientError);
    expect((failed as LitebaseClientError).status).toBe(400);
    expect((failed as LitebaseClientError).details.statement).toBe(1);
    expect(await count()).toBe(4);

    // Signed requests, signed with Web Crypto, verified by the server's node:crypto.
    const key = await client.createKey({ name: 'reader', databases: ['app'], actions: ['read'] });
    const signing = new LitebaseClient({ url: server.url, key: key.secret ?? '', sign: true });
    expect(await signing.database('app').execute('SELECT count(*) FROM t')).toMatchObject({ rows: [[4]] });
    const denied = await signing
      .database('app')
      .execute('DELETE FROM t')
      .catch((error: unknown) => error);
    expect((denied as LitebaseClientError).status).toBe(403);
  });
});

describe('the portable client on a cluster', () => {
  it('reads its writes through a Replica with a session, and fails over while the Primary dies', async () => {
    const dataDir = tempDir('litebase-client-cluster-');
    const first = await startClusterNode(dataDir, 'n1', servers);
    await waitFor(async () => (await roleOf(first)) === 'primary', 10_000, 'n1 primary');
    const second = await startClusterNode(dataDir, 'n2', servers);
    await waitFor(async () => (await roleOf(second)) === 'replica', 10_000, 'n2 replica');
    const key = first.key;

    // Read your writes: written on the Primary, read on the Replica, one session.
    const session = new LitebaseSession();
    const onPrimary = new LitebaseClient({ url: first.url, key }).database('app', { session });
    const onReplica = new LitebaseClient({ url: second.url, key }).database('app', { session });
    await new LitebaseClient({ url: first.url, key }).createDatabase('app');
    await onPrimary.execute('CREATE TABLE t(v TEXT)');
    for (let round = 0; round < 5; round++) {
      await onPrimary.execute('INSERT INTO t VALUES (?)', [`row ${round}`]);
      const seen = await onReplica.query('SELECT count(*) FROM t');
      expect(seen.node).toBe('n2');
      expect(seen.results[0]?.rows).toEqual([[round + 1]]);
      expect(BigInt(seen.position)).toBeGreaterThanOrEqual(BigInt(session.position('app') ?? '0'));
    }

    // A list of nodes: one that is not there, the Replica, the Primary. The Primary is killed;
    // the write goes to the Replica, which answers 503 until it has taken over, then runs it.
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    const client = new LitebaseClient({ urls: [nowhere, second.url, first.url], key, retry: { attempts: 30, maxDelayMs: 1000 } });
    const db = client.database('app', { session });
    expect((await db.query('SELECT count(*) FROM t')).node).toBe('n2');
    await first.kill9();
    const written = await db.query([{ sql: 'INSERT INTO t VALUES (?)', params: ['after failover'] }]);
    expect(written.node).toBe('n2');
    expect(written.role).toBe('primary');
    expect((await db.execute('SELECT v FROM t ORDER BY rowid DESC LIMIT 1')).rows).toEqual([['after failover']]);
    expect(session.position('app')).toBe(written.position);
  });
});
