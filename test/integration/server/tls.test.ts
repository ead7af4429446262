import { rmSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LitebaseClient, LitebaseClientError } from '../../../src/client/client.js';
import { runCli } from '../../support/cli.js';
import { tempDir, TestServer } from '../../support/server.js';
import { makeTestCertificates, type TestCertificates } from '../../support/tls.js';
import { waitFor } from '../../support/wait.js';

/**
 * HTTPS (--tls-cert, --tls-key) for clients and between nodes (--tls-ca), with a CA and a node
 * certificate for 127.0.0.1 made by openssl for this run (test/support/tls.ts).
 */
let certs: TestCertificates;
const servers: TestServer[] = [];

beforeAll(() => {
  certs = makeTestCertificates();
});

afterAll(async () => {
  // Every server stopped before any folder is removed: the cluster's nodes share one data dir, and a
  // node still running writes into it while it goes (ENOTEMPTY, and the rest never stopped).
  const stopped = servers.splice(0);
  await Promise.all(stopped.map((server) => server.stop('SIGKILL')));
  for (const server of stopped) server.cleanup();
  rmSync(certs.dir, { recursive: true, force: true });
});

async function start(options: Parameters<typeof TestServer.start>[0] = {}): Promise<TestServer> {
  const server = await TestServer.start({ tls: certs, ...options });
  servers.push(server);
  return server;
}

describe('TLS', () => {
  it('serves HTTPS to a client and the CLI that trust the CA, and nothing over plain HTTP', async () => {
    const server = await start();
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);

    const client = new LitebaseClient({ url: server.url, key: server.key, ca: certs.ca });
    await client.createDatabase('app');
    await client.query('app', 'CREATE TABLE t(a)');
    const written = await client.query('app', [{ sql: 'INSERT INTO t VALUES (?)', params: ['over tls'] }, { sql: 'SELECT a FROM t' }]);
    expect(written.results[1]?.rows).toEqual([['over tls']]);
    // Signing works over TLS as well.
    const signing = new LitebaseClient({ url: server.url, key: server.key, ca: certs.ca, sign: true });
    expect((await signing.getDatabase('app')).name).toBe('app');

    // Without the CA, the self-signed chain is refused by the client.
    const untrusting = new LitebaseClient({ url: server.url, key: server.key });
    const refused = await untrusting.listDatabases().catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(LitebaseClientError);
    expect((refused as LitebaseClientError).code).toBe('CONNECTION_FAILED');

    // Plain HTTP to the TLS port gets no answer at all: the TLS handshake fails and the node
    // closes the connection.
    const plain = await fetch(`http://127.0.0.1:${server.port}/healthz`).then(
      (response) => `HTTP ${response.status}`,
      () => 'connection closed',
    );
    expect(plain).toBe('connection closed');

    const flag = await runCli(['db', 'list', '--json', '--url', server.url, '--key', server.key, '--ca', certs.caFile]);
    expect(flag.code, flag.stderr).toBe(0);
    expect(JSON.parse(flag.stdout).databases.map((database: { name: string }) => database.name)).toEqual(['app']);
    const env = await runCli(['query', 'app', 'SELECT count(*) FROM t', '--json'], {
      LITEBASE_URL: server.url,
      LITEBASE_KEY: server.key,
      LITEBASE_CA: certs.caFile,
    });
    expect(env.code, env.stderr).toBe(0);
    expect(JSON.parse(env.stdout).results[0].rows).toEqual([[1]]);
    const noCa = await runCli(['db', 'list', '--url', server.url, '--key', server.key]);
    expect(noCa.code).toBe(1);
    expect(noCa.stderr).toContain('CONNECTION_FAILED');

    // Backups stream over the CA-trusting fetch too (its body is not read whole first).
    const output = path.join(certs.dir, 'app-backup.sqlite');
    const backup = await runCli([
      'db',
      'backup',
      'app',
      '--output',
      output,
      '--json',
      '--url',
      server.url,
      '--key',
      server.key,
      '--ca',
      certs.caFile,
    ]);
    expect(backup.code, backup.stderr).toBe(0);
    expect(JSON.parse(backup.stdout)).toMatchObject({ database: 'app', position: written.position });
    const copy = new Database(output, { readonly: true, fileMustExist: true });
    expect(copy.prepare('SELECT a FROM t').pluck().all()).toEqual(['over tls']);
    copy.close();
    const streamed = await client.backup('app');
    expect(streamed.position).toBe(written.position);
    expect((await new Response(streamed.body).arrayBuffer()).byteLength).toBe(streamed.bytes);
    const missing = await client.backup('nope').catch((error: unknown) => error);
    expect(missing).toBeInstanceOf(LitebaseClientError);
    expect((missing as LitebaseClientError).code).toBe('DATABASE_NOT_FOUND');
    expect((missing as LitebaseClientError).status).toBe(404);
  });

  it('two nodes talk over https: a write sent to the replica is forwarded and readable with minPosition', async () => {
    const dataDir = tempDir('litebase-tls-cluster-');
    const env = { LITEBASE_LEASE_TTL_MS: '1000', LITEBASE_REPLICA_POLL_MS: '100' };
    await start({ dataDir, nodeId: 't1', env });
    const second = await start({ dataDir, nodeId: 't2', env });
    const clientOf = (node: TestServer) => new LitebaseClient({ url: node.url, key: node.key, ca: certs.ca });

    let status: any;
    await waitFor(
      async () => {
        status = await clientOf(second).cluster();
        return status.primary?.nodeId === 't1' && status.nodes?.length === 2;
      },
      10_000,
      'both nodes in the cluster, t1 Primary',
    );
    for (const node of status.nodes as Array<{ address: string }>) expect(node.address).toMatch(/^https:\/\//);

    const replica = clientOf(second);
    await replica.createDatabase('app');
    await replica.query('app', 'CREATE TABLE t(a)');
    const written = await replica.query('app', [{ sql: 'INSERT INTO t VALUES (?)', params: ['forwarded over https'] }]);
    expect(written.node).toBe('t1');
    expect(written.role).toBe('primary');
    const read = await replica.query('app', 'SELECT a FROM t', { minPosition: written.position });
    expect(read.node).toBe('t2');
    expect(read.results[0]?.rows).toEqual([['forwarded over https']]);

    // A node that does not trust the CA (system CAs only) cannot forward: the Primary's
    // certificate is verified, not just encrypted to.
    const untrusting = await start({ dataDir, nodeId: 't3', env, tls: { ...certs, caFile: undefined } });
    const refused = await clientOf(untrusting)
      .query('app', [{ sql: 'INSERT INTO t VALUES (?)', params: ['never'] }])
      .catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(LitebaseClientError);
    expect((refused as LitebaseClientError).code).toBe('PRIMARY_UNAVAILABLE');
    expect((refused as LitebaseClientError).message).toMatch(/certificate/i);
  });
});
