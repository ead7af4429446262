import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir, TestServer } from '../../support/server.js';
import { waitFor } from '../../support/wait.js';

/**
 * Instant restart (docs/CLUSTER.md): a node restarted after a crash takes over the lease its dead
 * process left, without waiting it out, only when it can prove that process gone (its local
 * folder's lock). The lease is long (60 s) so that a restart that waited could not pass.
 */
const LEASE_TTL_MS = 60_000;
const servers: TestServer[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) await server.stop('SIGKILL');
});

async function start(dataDir: string, nodeId: string, localDir?: string): Promise<TestServer> {
  const server = await TestServer.start({
    dataDir,
    nodeId,
    ...(localDir ? { localDir } : {}),
    env: { LITEBASE_LEASE_TTL_MS: String(LEASE_TTL_MS), LITEBASE_REPLICA_POLL_MS: '200' },
  });
  servers.push(server);
  return server;
}

interface LeaseFile {
  term: string;
  nodeId: string;
  expiresAt: number;
  holder?: { life: string; pid: number; instance: string };
}

const readLease = (dataDir: string): LeaseFile =>
  JSON.parse(readFileSync(path.join(dataDir, 'cluster', 'lease.json'), 'utf8')) as LeaseFile;
const readTerm = (dataDir: string, term: string): { nodeId: string; createdAt: number } =>
  JSON.parse(readFileSync(path.join(dataDir, 'cluster', 'terms', term), 'utf8')) as { nodeId: string; createdAt: number };

async function insert(server: TestServer, value: string): Promise<{ status: number; body: any }> {
  return server.request('POST', '/v1/databases/app/query', { statements: [{ sql: 'INSERT INTO t (v) VALUES (?)', params: [value] }] });
}

describe('instant restart', () => {
  it('after kill -9 the restarted node wins the next term before the dead life’s lease runs out, and keeps every write', async () => {
    const dataDir = tempDir('litebase-restart-');
    const first = await start(dataDir, 'n1');
    expect((await first.request('POST', '/v1/databases', { name: 'app' })).status).toBe(201);
    await first.request('POST', '/v1/databases/app/query', { statements: [{ sql: 'CREATE TABLE t (v TEXT)' }] });
    expect((await insert(first, 'before')).status).toBe(200);
    const before = readLease(dataDir);
    expect(before.holder?.pid).toBe(first.child.pid);

    await first.kill9();
    const second = await start(dataDir, 'n1');
    await waitFor(async () => (await insert(second, 'after')).status === 200, 20_000, 'a write on the restarted node');

    const after = readLease(dataDir);
    expect(BigInt(after.term)).toBe(BigInt(before.term) + 1n);
    expect(after.holder?.pid).toBe(second.child.pid);
    expect(after.holder?.instance).toBe(before.holder?.instance);
    // The proof it did not wait: the new term was claimed while the old lease still held.
    expect(readTerm(dataDir, after.term).createdAt).toBeLessThan(before.expiresAt);
    const rows = await second.request('POST', '/v1/databases/app/query', { statements: [{ sql: 'SELECT v FROM t ORDER BY rowid' }] });
    expect(rows.body.results[0].rows).toEqual([['before'], ['after']]);
  });

  it('a second live process with the same node id but its own local folder waits: the first keeps the lease and keeps writing', async () => {
    const dataDir = tempDir('litebase-restart-');
    const first = await start(dataDir, 'n1');
    expect((await first.request('POST', '/v1/databases', { name: 'app' })).status).toBe(201);
    await first.request('POST', '/v1/databases/app/query', { statements: [{ sql: 'CREATE TABLE t (v TEXT)' }] });
    const held = readLease(dataDir);

    const twin = await start(dataDir, 'n1', path.join(dataDir, 'local-twin'));
    // The twin reads the cluster state on its first step; give it several polls to do something wrong.
    for (let i = 0; i < 10; i++) {
      expect((await insert(first, `w${i}`)).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const now = readLease(dataDir);
    expect(now.term).toBe(held.term);
    expect(now.holder?.life).toBe(held.holder?.life);
    const status = await twin.request('GET', '/v1/cluster');
    expect(status.body.term).toBe(held.term);
    expect(status.body.primary.address).toBe(first.url);
    expect(readTerm(dataDir, held.term).nodeId).toBe('n1');
    expect(() => readTerm(dataDir, String(BigInt(held.term) + 1n))).toThrow(/ENOENT/);
  });

  it('a second process on the same local folder stops at start with LOCAL_DIR_IN_USE', async () => {
    const dataDir = tempDir('litebase-restart-');
    const first = await start(dataDir, 'n1');
    const failed = await start(dataDir, 'n1').then(
      () => undefined,
      (error: unknown) => String(error),
    );
    expect(failed).toMatch(/LOCAL_DIR_IN_USE/);
    expect(failed).toContain(`pid ${first.child.pid}`);
    expect((await first.request('GET', '/readyz')).status).toBe(200);
  });
});
