import { rmSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir, TestServer } from '../../support/server.js';
import { dumpRemote, MANUAL_ARCHIVE_ENV, runCli, type Snapshot, waitFor, Workload } from '../../support/archive-workload.js';

/**
 * Disaster recovery through the server: a database whose catalog entry is gone (dropped, or the
 * whole shared folder lost) is restored by `POST /v1/databases/:db/restore` from the object store
 * alone, into its own name, and is then an ordinary replicated database. The object store is a
 * folder outside the data dir, so it survives when the data dir is deleted.
 */

const LEASE_TTL_MS = 1000;
/** Manual compaction only, small bundles, every checkpoint archived (as archive-restore.test.ts). */
const SERVER_ENV = {
  ...MANUAL_ARCHIVE_ENV,
  LITEBASE_LEASE_TTL_MS: String(LEASE_TTL_MS),
  LITEBASE_REPLICA_POLL_MS: '200',
  LITEBASE_WAIT_TIMEOUT_MS: '8000',
};

const servers: TestServer[] = [];
const dirs: string[] = [];

afterEach(async (context) => {
  for (const server of servers.splice(0)) {
    if (context.task.result?.state === 'fail') {
      const errors = server.output.split('\n').filter((line) => line.includes('"level":50'));
      if (errors.length > 0) console.error(`${server.url}:\n${errors.slice(0, 5).join('\n')}`);
    }
    await server.stop('SIGKILL');
  }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function startNode(dataDir: string, storeUrl: string, nodeId = 'n1'): Promise<TestServer> {
  const server = await TestServer.start({ dataDir, nodeId, extraArgs: ['--object-store', storeUrl], env: SERVER_ENV });
  servers.push(server);
  return server;
}

async function isPrimary(node: TestServer): Promise<boolean> {
  const view = (await node.request('GET', '/v1/cluster')).body;
  return view?.nodes?.find((entry: { nodeId: string; address: string }) => entry.address === node.url)?.role === 'primary';
}

/** Runs the restore as a job and waits for it: the job's final view. */
async function restoreJob(node: TestServer, database: string, body: Record<string, unknown>): Promise<any> {
  const started = await node.request('POST', `/v1/databases/${database}/restore`, body);
  expect(started.status, JSON.stringify(started.body)).toBe(202);
  let job = started.body.restore;
  await waitFor(
    async () => {
      job = (await node.request('GET', `/v1/databases/${database}/restores/${started.body.restore.id}`)).body.restore;
      return job.status !== 'running';
    },
    30_000,
    `the restore of ${database}`,
  );
  expect(job.status, JSON.stringify(job)).toBe('succeeded');
  return job;
}

/** The node has applied `snapshot` for `database`: same checksum, same rows. */
async function expectState(node: TestServer, database: string, snapshot: Snapshot, what: string): Promise<void> {
  await waitFor(
    async () => (await node.request('GET', `/v1/databases/${database}`)).body?.database?.checksum === snapshot.checksum,
    15_000,
    `${what} on ${node.url}`,
  );
  expect(await dumpRemote(node, database), what).toBe(snapshot.dump);
}

describe('restore from the object store alone, through the server', () => {
  it('brings a dropped database and a database whose shared folder was lost back under their own names', async () => {
    const storeDir = tempDir('litebase-lost-store-');
    const storeUrl = pathToFileURL(storeDir).href;
    const dataDir = tempDir('litebase-lost-data-');
    dirs.push(storeDir, dataDir);
    const first = await startNode(dataDir, storeUrl);

    // 1. A database that is dropped after its history was archived.
    expect((await first.request('POST', '/v1/databases', { name: 'gone' })).status).toBe(201);
    const goneId = (await first.request('GET', '/v1/databases/gone')).body.database.id as string;
    const gone = new Workload(first, 'gone', 7);
    const goneSnapshots: Snapshot[] = [await gone.setup()];
    for (let step = 0; step < 12; step++) goneSnapshots.push(await gone.step());
    expect((await first.request('POST', '/v1/databases/gone/compact')).status).toBe(200);
    expect((await first.request('DELETE', '/v1/databases/gone')).status).toBe(204);
    expect((await first.request('GET', '/v1/databases/gone')).status).toBe(404);

    const gonePoints = await first.request('GET', '/v1/databases/gone/restore-points');
    expect(gonePoints.status, JSON.stringify(gonePoints.body)).toBe(200);
    expect(gonePoints.body).toMatchObject({ database: 'gone', databaseId: goneId, source: 'archive', otherDatabaseIds: [] });
    const goneLast = goneSnapshots.at(-1) as Snapshot;
    expect(gonePoints.body.latest.position).toBe(goneLast.position.toString());
    const goneTarget = goneSnapshots[8] as Snapshot;
    const goneJob = await restoreJob(first, 'gone', { position: goneTarget.position.toString(), target: 'gone' });
    expect(goneJob).toMatchObject({ target: 'gone', source: 'archive', databaseId: goneId });
    expect(goneJob.result.position).toBe(goneTarget.position.toString());
    await expectState(first, 'gone', goneTarget, 'the dropped database restored into its own name');
    const newGoneId = (await first.request('GET', '/v1/databases/gone')).body.database.id as string;
    expect(newGoneId).not.toBe(goneId);
    // Now the name is in the catalog again: its restore points are the new database's, and the
    // earlier one is still reachable by its id.
    expect((await first.request('GET', '/v1/databases/gone/restore-points')).body).toMatchObject({
      source: 'catalog',
      databaseId: newGoneId,
    });
    const earlier = await first.request('GET', `/v1/databases/gone/restore-points?databaseId=${goneId}`);
    expect(earlier.body).toMatchObject({ source: 'archive', databaseId: goneId, latest: { position: goneLast.position.toString() } });
    // Into its own name again: taken now.
    const taken = await first.request('POST', '/v1/databases/gone/restore', { position: '2', target: 'gone', databaseId: goneId });
    expect(taken.status).toBe(409);
    expect(taken.body.error.code).toBe('DATABASE_EXISTS');

    // 2. The main database: a workload, compacted twice, then a few writes that are never archived.
    expect((await first.request('POST', '/v1/databases', { name: 'app' })).status).toBe(201);
    const appId = (await first.request('GET', '/v1/databases/app')).body.database.id as string;
    const workload = new Workload(first, 'app', 4243);
    const snapshots: Snapshot[] = [await workload.setup()];
    const compactedAt: bigint[] = [];
    for (let step = 1; step <= 60; step++) {
      snapshots.push(await workload.step());
      if (step % 30 === 0) {
        const compacted = await first.request('POST', '/v1/databases/app/compact');
        expect(compacted.status, JSON.stringify(compacted.body)).toBe(200);
        compactedAt.push((snapshots.at(-1) as Snapshot).position);
      }
    }
    const archivedLast = snapshots.at(-1) as Snapshot;
    for (let step = 0; step < 4; step++) snapshots.push(await workload.step());

    // 3. The shared folder is lost, all of it (the node's local folder is inside it too).
    await first.stop();
    rmSync(dataDir, { recursive: true, force: true });

    // 4. A fresh cluster of two nodes on an empty shared folder and the same object store.
    const n1 = await startNode(dataDir, storeUrl, 'n1');
    const n2 = await startNode(dataDir, storeUrl, 'n2');
    await waitFor(async () => (await isPrimary(n1)) || (await isPrimary(n2)), 10_000, 'a primary');
    const primary = (await isPrimary(n1)) ? n1 : n2;
    const replica = primary === n1 ? n2 : n1;
    expect((await primary.request('GET', '/v1/databases/app')).status).toBe(404);
    expect((await primary.request('GET', '/v1/databases')).body.databases).toEqual([]);

    // Restore points from the archive, on any node.
    for (const node of [primary, replica]) {
      const points = await node.request('GET', '/v1/databases/app/restore-points');
      expect(points.status, JSON.stringify(points.body)).toBe(200);
      expect(points.body).toMatchObject({
        database: 'app',
        databaseId: appId,
        source: 'archive',
        earliest: { position: '1' },
        latest: { position: archivedLast.position.toString() },
      });
      expect(points.body.checkpoints.map((c: { position: string }) => c.position)).toEqual(compactedAt.map(String));
      expect(points.body.checkpoints.every((c: { archived: boolean; shared: boolean }) => c.archived && !c.shared)).toBe(true);
    }
    // Neither the catalog nor the archive: 404 DATABASE_NOT_FOUND, as before.
    const unknownPoints = await replica.request('GET', '/v1/databases/nope/restore-points');
    expect(unknownPoints.status).toBe(404);
    expect(unknownPoints.body.error.code).toBe('DATABASE_NOT_FOUND');
    const unknownRestore = await replica.request('POST', '/v1/databases/nope/restore', { position: '1' });
    expect(unknownRestore.status).toBe(404);
    expect(unknownRestore.body.error.code).toBe('DATABASE_NOT_FOUND');
    // An id that is not archived under the name.
    const wrongId = await primary.request('POST', '/v1/databases/app/restore', { position: '1', databaseId: goneId });
    expect(wrongId.status).toBe(404);
    expect(wrongId.body.error.code).toBe('RESTORE_NO_HISTORY');
    // Past the archive: out of range (the last writes were only in the lost shared log).
    const outside = await primary.request('POST', '/v1/databases/app/restore', {
      position: String(archivedLast.position + 1n),
      target: 'app',
    });
    expect(outside.status).toBe(400);
    expect(outside.body.error.code).toBe('RESTORE_OUT_OF_RANGE');

    // 5. Restore to a time between the two compactions, into its own name, asked through the
    // Replica (forwarded to the Primary).
    const target = snapshots[45] as Snapshot;
    const job = await restoreJob(replica, 'app', { timestamp: new Date(target.timeMs).toISOString(), target: 'app' });
    expect(job).toMatchObject({ database: 'app', target: 'app', source: 'archive', databaseId: appId });
    expect(job.result.position).toBe(target.position.toString());
    expect(job.plan.checkpoint).toMatch(new RegExp(`^databases/app/${appId}/(checkpoints|manifests)/`));
    for (const node of [primary, replica]) await expectState(node, 'app', target, 'app restored to a time');

    // It serves and replicates like any other database: a write through the Replica, read on both.
    const write = await replica.request('POST', '/v1/databases/app/query', {
      statements: [{ sql: 'CREATE TABLE after_restore(x)' }, { sql: 'INSERT INTO after_restore VALUES (42)' }],
    });
    expect(write.status, JSON.stringify(write.body)).toBe(200);
    expect(write.body.position).toBe('2');
    for (const node of [primary, replica]) {
      const read = await node.request('POST', '/v1/databases/app/query', {
        statements: [{ sql: 'SELECT x FROM after_restore' }],
        minPosition: '2',
      });
      expect(read.body.results[0].rows, node.url).toEqual([[42]]);
    }
    // The archive of the lost database is still there: by its id, into the default name.
    const older = snapshots[20] as Snapshot;
    const olderAnswer = await primary.request('POST', '/v1/databases/app/restore', {
      position: older.position.toString(),
      databaseId: appId,
      wait: true,
    });
    expect(olderAnswer.status, JSON.stringify(olderAnswer.body)).toBe(200);
    expect(olderAnswer.body.restore.target).toBe(`app-restored-${older.position}`);
    await expectState(replica, `app-restored-${older.position}`, older, 'an older point of the lost database');

    // 6. The CLI through the server: the dropped database, gone again with the shared folder.
    const cli = await runCli([
      'restore',
      'gone',
      '--timestamp',
      new Date(goneLast.timeMs + 60_000).toISOString(),
      '--to',
      'gone',
      '--url',
      replica.url,
      '--key',
      replica.key,
      '--json',
    ]);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stderr).toContain('restoring from its object store alone');
    const summary = JSON.parse(cli.stdout);
    expect(summary).toMatchObject({ target: 'gone', source: 'archive', databaseId: goneId, status: 'succeeded' });
    expect(summary.result.position).toBe(goneLast.position.toString());
    for (const node of [primary, replica]) await expectState(node, 'gone', goneLast, 'gone restored by the CLI');
  }, 120_000);
});
