import { readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { decodeManifest } from '../../../src/format/checkpoint-manifest.js';
import { rangeKey } from '../../../src/archive/archive-keys.js';
import { openObjectStore } from '../../../src/storage/open-object-store.js';
import { tempDir, TestServer } from '../../support/server.js';
import { runCli, waitFor } from '../../support/archive-workload.js';

/**
 * Compaction with more than one node, automatic triggers and retention. Real servers on one shared
 * folder and a folder object store.
 */
const servers: TestServer[] = [];
const cleanup: string[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) {
    if (server.child.signalCode === 'SIGSTOP') server.child.kill('SIGCONT');
    await server.stop('SIGKILL');
  }
  for (const dir of cleanup.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const CLUSTER_ENV = {
  LITEBASE_LEASE_TTL_MS: '1000',
  LITEBASE_REPLICA_POLL_MS: '100',
  LITEBASE_WAIT_TIMEOUT_MS: '10000',
  LITEBASE_COMPACTION_LOG_BYTES: '0',
  LITEBASE_COMPACTION_LOG_SEGMENTS: '0',
  LITEBASE_ARCHIVE_INTERVAL_MS: '0',
  // The checkpoint loads are logged at info.
  LITEBASE_LOG_LEVEL: 'info',
};

async function start(dataDir: string, nodeId: string, store: string, env: Record<string, string> = {}): Promise<TestServer> {
  const server = await TestServer.start({ dataDir, nodeId, extraArgs: ['--object-store', store], env: { ...CLUSTER_ENV, ...env } });
  servers.push(server);
  return server;
}

async function role(server: TestServer): Promise<string | undefined> {
  const status = (await server.request('GET', '/v1/cluster')).body;
  return status.nodes?.find((node: { address: string }) => node.address === server.url)?.role;
}

async function insert(server: TestServer, count: number, tag: string): Promise<string> {
  let position = '0';
  for (let i = 0; i < count; i++) {
    const answer = await server.request('POST', '/v1/databases/app/query', {
      statements: [{ sql: 'INSERT INTO t(v, pad) VALUES (?, ?)', params: [`${tag}-${i}`, 'x'.repeat(500 + ((i * 97) % 3000))] }],
    });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    position = answer.body.position;
  }
  return position;
}

async function state(server: TestServer, minPosition: string): Promise<{ rows: unknown; checksum: string; position: string }> {
  const answer = await server.request('POST', '/v1/databases/app/query', {
    statements: [{ sql: 'SELECT id, v, length(pad) FROM t ORDER BY id' }],
    minPosition,
  });
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  const info = (await server.request('GET', '/v1/databases/app')).body.database;
  return { rows: answer.body.results[0].rows, checksum: info.checksum, position: info.position };
}

function logPositions(dataDir: string): bigint[] {
  return readdirSync(path.join(dataDir, 'databases', 'app', 'log'))
    .filter((name) => name.endsWith('.seg'))
    .map((name) => BigInt(name.slice(0, 20)))
    .sort((a, b) => (a < b ? -1 : 1));
}

describe('compaction with replicas', () => {
  it('a replica stopped before a compaction, and one paused through it, catch up from the checkpoint', async () => {
    const dataDir = tempDir('litebase-compact-cluster-');
    const storeDir = tempDir('litebase-compact-store-');
    cleanup.push(dataDir, storeDir);
    const store = pathToFileURL(storeDir).href;
    const primary = await start(dataDir, 'n1', store);
    await waitFor(async () => (await role(primary)) === 'primary', 10_000, 'n1 to be primary');
    let replica = await start(dataDir, 'n2', store);
    expect((await primary.request('POST', '/v1/databases', { name: 'app' })).status).toBe(201);
    await primary.request('POST', '/v1/databases/app/query', {
      statements: [{ sql: 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, pad TEXT)' }],
    });
    let position = await insert(primary, 20, 'a');
    await state(replica, position);

    // 1. The replica stops; the Primary writes on, compacts (the log is trimmed), writes again.
    await replica.stop();
    servers.splice(servers.indexOf(replica), 1);
    await insert(primary, 20, 'b');
    const compacted = await primary.request('POST', '/v1/databases/app/compact');
    expect(compacted.status).toBe(200);
    const checkpointAt = BigInt(compacted.body.compaction.checkpoint.position);
    expect(logPositions(dataDir).filter((p) => p <= checkpointAt)).toEqual([]);
    position = await insert(primary, 10, 'c');
    expect(logPositions(dataDir)[0]).toBe(checkpointAt + 1n);

    // It starts again: its local copy is older than the log's start, so it loads the checkpoint.
    replica = await start(dataDir, 'n2', store);
    const expected = await state(primary, position);
    expect(await state(replica, position)).toEqual(expected);
    expect(replica.output).toContain('loading the newest checkpoint');

    // 2. A running replica is paused (SIGSTOP) while the log is compacted past it.
    replica.child.kill('SIGSTOP');
    await insert(primary, 15, 'd');
    const again = await primary.request('POST', '/v1/databases/app/compact');
    expect(again.body.compaction.deleted.segments).toBeGreaterThan(0);
    position = await insert(primary, 5, 'e');
    replica.child.kill('SIGCONT');
    const after = await state(primary, position);
    await waitFor(async () => (await state(replica, position)).position === position, 15_000, 'the replica to catch up');
    expect(await state(replica, position)).toEqual(after);
    expect(replica.output).toContain('compacted past this replica');

    // 3. Restore points are answered by the replica itself; a restore sent to it runs on the
    // Primary, and the new database is a replicated one: the replica serves it too.
    const points = await replica.request('GET', '/v1/databases/app/restore-points');
    expect(points.status).toBe(200);
    expect(points.body.latest.position).toBe(position);
    expect(points.body.earliest.position).toBe('1');
    const restored = await replica.request('POST', '/v1/databases/app/restore', {
      position: String(checkpointAt),
      target: 'copy',
      wait: true,
    });
    expect(restored.status, JSON.stringify(restored.body)).toBe(200);
    const copy = restored.body.restore.result;
    expect(copy.position).toBe(String(checkpointAt));
    await waitFor(
      async () => (await replica.request('GET', '/v1/databases/copy')).body?.database?.checksum === copy.checksum,
      15_000,
      'the copy on the replica',
    );
    const copyRows = await replica.request('POST', '/v1/databases/copy/query', {
      statements: [{ sql: "SELECT count(*) FROM t WHERE v LIKE 'c-%'" }],
    });
    expect(copyRows.body.results[0].rows).toEqual([[0]]);

    // 4. compact through a replica is forwarded to the Primary; the CLI prints what was archived.
    await insert(primary, 3, 'f');
    const viaCli = await runCli(['compact', 'app', '--url', replica.url, '--key', replica.key]);
    expect(viaCli.code, viaCli.stderr).toBe(0);
    expect(viaCli.stdout).toMatch(/compacted app at position \d+/);
    // The 5 writes after the last compaction and these 3.
    expect(viaCli.stdout).toMatch(/archived segments \d+\.\.\d+ \(8 segments/);
    expect(viaCli.stdout).toMatch(/deleted 8 segments/);
  }, 120_000);
});

describe('compaction triggers and retention', () => {
  it('compacts on its own past the segment threshold', async () => {
    const dataDir = tempDir('litebase-compact-auto-');
    const storeDir = tempDir('litebase-compact-auto-store-');
    const outputs = tempDir('litebase-compact-auto-out-');
    cleanup.push(dataDir, storeDir, outputs);
    const server = await start(dataDir, 'n1', pathToFileURL(storeDir).href, { LITEBASE_COMPACTION_LOG_SEGMENTS: '25' });
    await server.request('POST', '/v1/databases', { name: 'app' });
    await server.request('POST', '/v1/databases/app/query', {
      statements: [{ sql: 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, pad TEXT)' }],
    });
    await insert(server, 40, 'a');
    const checkpoints = path.join(dataDir, 'databases', 'app', 'checkpoints');
    await waitFor(() => readdirSync(checkpoints).length > 0, 15_000, 'an automatic checkpoint');
    await waitFor(() => !logPositions(dataDir).includes(1n), 15_000, 'the log to be trimmed');
    const answer = await server.request('GET', '/v1/databases/app/restore-points');
    expect(
      answer.status,
      `${JSON.stringify(answer.body)}\n${server.output
        .split('\n')
        .filter((line) => line.includes('"level":50'))
        .join('\n')}`,
    ).toBe(200);
    const points = answer.body;
    expect(points.checkpoints.length).toBeGreaterThan(0);
    // The default policy archives a checkpoint only when the archive needs it (archive-policy.ts);
    // either way the object store alone restores everything archived, from position 1 on.
    expect(points.checkpoints[0]).toMatchObject({ shared: true });
    expect(points.earliest.position).toBe('1');
    const archived = points.archive.archivedThrough as string;
    const restored = await runCli([
      'restore',
      'app',
      '--position',
      archived,
      '--output',
      path.join(outputs, 'auto.sqlite'),
      '--object-store',
      pathToFileURL(storeDir).href,
      '--json',
    ]);
    expect(restored.code, restored.stderr).toBe(0);
    expect(JSON.parse(restored.stdout).position).toBe(archived);
  }, 60_000);

  it('archives new segments on a timer, without a checkpoint and without trimming the log', async () => {
    const dataDir = tempDir('litebase-compact-interval-');
    const storeDir = tempDir('litebase-compact-interval-store-');
    const outputs = tempDir('litebase-compact-interval-out-');
    cleanup.push(dataDir, storeDir, outputs);
    const store = pathToFileURL(storeDir).href;
    const server = await start(dataDir, 'n1', store, { LITEBASE_ARCHIVE_INTERVAL_MS: '300' });
    await server.request('POST', '/v1/databases', { name: 'app' });
    await server.request('POST', '/v1/databases/app/query', {
      statements: [{ sql: 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, pad TEXT)' }],
    });
    const position = await insert(server, 12, 'a');
    const points = async () => (await server.request('GET', '/v1/databases/app/restore-points')).body;
    await waitFor(async () => (await points()).archive.archivedThrough === position, 15_000, 'the timer to archive the log');
    expect((await points()).checkpoints).toEqual([]);
    expect(logPositions(dataDir)[0]).toBe(1n);
    const restored = await runCli([
      'restore',
      'app',
      '--position',
      position,
      '--output',
      path.join(outputs, 'a.sqlite'),
      '--object-store',
      store,
      '--json',
    ]);
    expect(restored.code, restored.stderr).toBe(0);
    expect(JSON.parse(restored.stdout).position).toBe(position);
  }, 60_000);

  it('prunes history older than the retention window, keeping what restores inside it need', async () => {
    const dataDir = tempDir('litebase-compact-retention-');
    const storeDir = tempDir('litebase-compact-retention-store-');
    cleanup.push(dataDir, storeDir);
    // Every checkpoint archived (LITEBASE_ARCHIVE_CHECKPOINT_PERCENT=0): each compaction adds a base.
    const server = await start(dataDir, 'n1', pathToFileURL(storeDir).href, {
      LITEBASE_RETENTION_MS: '1500',
      // Replaced checkpoints leave the shared folder at once (no grace period): restore points are the archive's.
      LITEBASE_CHECKPOINT_GRACE_MS: '0',
      LITEBASE_ARCHIVE_CHECKPOINT_PERCENT: '0',
    });
    await server.request('POST', '/v1/databases', { name: 'app' });
    await server.request('POST', '/v1/databases/app/query', {
      statements: [{ sql: 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, pad TEXT)' }],
    });
    const id = (await server.request('GET', '/v1/databases/app')).body.database.id as string;
    const compact = async () => (await server.request('POST', '/v1/databases/app/compact')).body.compaction;
    await insert(server, 5, 'a');
    const first = await compact();
    await new Promise((resolve) => setTimeout(resolve, 1700));
    await insert(server, 5, 'b');
    const second = await compact();
    // The first checkpoint is now older than the window, but it is the base of the window: kept;
    // the segments before it are not needed by any restore inside the window.
    expect(second.pruned.objects).toEqual(first.archived.objects);
    await new Promise((resolve) => setTimeout(resolve, 1700));
    await insert(server, 5, 'c');
    const third = await compact();
    // Now the second checkpoint is the base: the first, and the bundles it covers, go (with the
    // range files only the first lists, when checkpoints are range checkpoints).
    const prunedObjects = third.pruned.objects as string[];
    expect(prunedObjects.filter((key) => !key.includes('/ranges/')).sort()).toEqual(
      [first.checkpoint.key, ...second.archived.objects].sort(),
    );
    const store = openObjectStore(pathToFileURL(storeDir).href);
    const keys: string[] = [];
    for await (const info of store.list(`databases/app/${id}/`)) keys.push(info.key);
    // Every range file a kept manifest lists is still there.
    for (const key of keys.filter((name) => name.includes('/manifests/'))) {
      for (const range of decodeManifest(await store.get(key), key, id).ranges) expect(keys).toContain(rangeKey('app', id, range.file));
    }
    await store.close();
    expect(keys).not.toContain(first.checkpoint.key);
    expect(keys).toContain(second.checkpoint.key);
    expect(keys).toContain(third.checkpoint.key);
    const points = (await server.request('GET', '/v1/databases/app/restore-points')).body;
    expect(points.earliest.position).toBe(second.checkpoint.position);
    const tooOld = await server.request('POST', '/v1/databases/app/restore', { position: first.checkpoint.position });
    expect(tooOld.status).toBe(400);
    expect(tooOld.body.error.code).toBe('RESTORE_OUT_OF_RANGE');
    const kept = await server.request('POST', '/v1/databases/app/restore', { position: second.checkpoint.position, wait: true });
    expect(kept.status, JSON.stringify(kept.body)).toBe(200);
  }, 60_000);
});

describe('restoring a dropped database offline', () => {
  it('finds every archived id under a name, takes the newest, and restores an older one by --database-id', async () => {
    const dataDir = tempDir('litebase-compact-ids-');
    const storeDir = tempDir('litebase-compact-ids-store-');
    const outputs = tempDir('litebase-compact-ids-out-');
    cleanup.push(dataDir, storeDir, outputs);
    const store = pathToFileURL(storeDir).href;
    const server = await start(dataDir, 'n1', store);
    const generation = async (rows: number): Promise<string> => {
      await server.request('POST', '/v1/databases', { name: 'app' });
      await server.request('POST', '/v1/databases/app/query', {
        statements: [{ sql: 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, pad TEXT)' }],
      });
      await insert(server, rows, 'g');
      expect((await server.request('POST', '/v1/databases/app/compact')).status).toBe(200);
      return (await server.request('GET', '/v1/databases/app')).body.database.id as string;
    };
    const oldId = await generation(3);
    expect((await server.request('DELETE', '/v1/databases/app')).status).toBe(204);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const newId = await generation(7);
    await server.stop();

    const newest = await runCli([
      'restore',
      'app',
      '--position',
      '2',
      '--output',
      path.join(outputs, 'newest.sqlite'),
      '--object-store',
      store,
      '--json',
    ]);
    expect(newest.code, newest.stderr).toBe(0);
    expect(JSON.parse(newest.stdout).databaseId).toBe(newId);
    expect(newest.stderr).toContain(oldId);
    const older = await runCli([
      'restore',
      'app',
      '--position',
      '4',
      '--output',
      path.join(outputs, 'older.sqlite'),
      '--object-store',
      store,
      '--database-id',
      oldId,
      '--json',
    ]);
    expect(older.code, older.stderr).toBe(0);
    expect(JSON.parse(older.stdout)).toMatchObject({ databaseId: oldId, position: '4' });
    // The old database had 3 rows at position 4 (table at 1, rows at 2..4).
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(path.join(outputs, 'older.sqlite'), { readonly: true });
    expect(db.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 3 });
    db.close();

    // Usage errors exit 2; a name with no archive exits 1 with RESTORE_NO_HISTORY.
    expect((await runCli(['restore', 'app', '--output', 'x.sqlite', '--object-store', store])).code).toBe(2);
    expect((await runCli(['restore', 'app', '--position', '1', '--object-store', store])).code).toBe(2);
    expect((await runCli(['restore', 'app', '--position', '1', '--timestamp', '2026-01-01T00:00:00Z', '--output', 'x.sqlite'])).code).toBe(
      2,
    );
    const missing = await runCli([
      'restore',
      'nothing',
      '--position',
      '1',
      '--output',
      path.join(outputs, 'n.sqlite'),
      '--object-store',
      store,
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('RESTORE_NO_HISTORY');
  }, 60_000);
});
