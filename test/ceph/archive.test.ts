import { readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterEach, expect, inject, it } from 'vitest';
import { openObjectStore } from '../../src/storage/open-object-store.js';
import { dumpFile, dumpRemote, integrityCheck, MANUAL_ARCHIVE_ENV, type Snapshot, Workload } from '../support/archive-workload.js';
import { describeOnCeph, prepareCeph, printServerErrors, startCephNode, waitForPrimary, type CephCluster } from '../support/ceph.js';
import { runCli } from '../support/cli.js';
import { tempDir, type TestServer } from '../support/server.js';
import { waitFor } from '../support/wait.js';

/**
 * Compaction, archive and restore with the log on CephFS (two nodes, each on its own ceph-fuse
 * mount) and RGW as the object store: a random workload with an in-process shadow SQLite, restores
 * through the API compared row for row; then the shared folder is lost and RGW alone restores the
 * database, into a fresh cluster through the API and offline with the CLI.
 */
const ceph = await prepareCeph(inject('cephStartFailure'));
const servers: TestServer[] = [];
const folders: Array<{ cluster: CephCluster; relative: string }> = [];

afterEach(async (context) => {
  if (context.task.result?.state === 'fail') printServerErrors(servers);
  for (const server of servers.splice(0)) await server.stop('SIGKILL');
  for (const { cluster, relative } of folders.splice(0)) cluster.removeFolder(relative);
  if (ceph.ready) await ceph.cluster.removeObjectStores();
});

/** Manual compaction only, small bundles, every checkpoint archived (as archive-restore.test.ts). */
const COMPACTION_ENV = MANUAL_ARCHIVE_ENV;

async function restoreJob(node: TestServer, body: Record<string, unknown>): Promise<any> {
  const answer = await node.request('POST', '/v1/databases/app/restore', { ...body, wait: true });
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return answer.body.restore;
}

async function expectState(node: TestServer, database: string, snapshot: Snapshot): Promise<void> {
  await waitFor(
    async () => (await node.request('GET', `/v1/databases/${database}`)).body?.database?.checksum === snapshot.checksum,
    30_000,
    `${database} at ${snapshot.position} on ${node.url}`,
  );
  expect(await dumpRemote(node, database)).toBe(snapshot.dump);
}

describeOnCeph('archive to RGW and restore, the log on CephFS', ceph, (cluster) => {
  it('compacts and archives to RGW, restores points exactly, and restores from RGW alone once the shared folder is lost', async () => {
    const store = cluster.objectStore('archive');
    const env = { ...COMPACTION_ENV, ...store.env };
    const args = ['--object-store', store.url];
    const folder = cluster.folder('archive');
    folders.push({ cluster, relative: folder.relative });
    const startNodes = async () => {
      const nodes = [
        await startCephNode({ nodeId: 'n1', dataDir: folder.paths[0]!, env, extraArgs: args }, servers),
        await startCephNode({ nodeId: 'n2', dataDir: folder.paths[1]!, env, extraArgs: args }, servers),
      ];
      const primary = await waitForPrimary(nodes);
      return { primary, replica: nodes.find((node) => node !== primary)! };
    };
    const { primary, replica } = await startNodes();
    expect((await primary.request('POST', '/v1/databases', { name: 'app' })).status).toBe(201);
    const databaseId = (await primary.request('GET', '/v1/databases/app')).body.database.id as string;
    const workload = new Workload(primary, 'app', 1515);
    const snapshots: Snapshot[] = [await workload.setup()];
    const compactedAt: bigint[] = [];
    for (let step = 1; step <= 50; step++) {
      snapshots.push(await workload.step());
      if (step % 25 === 0) {
        const compacted = await primary.request('POST', '/v1/databases/app/compact');
        expect(compacted.status, JSON.stringify(compacted.body)).toBe(200);
        expect(compacted.body.compaction.archived.objects.length).toBeGreaterThan(0);
        compactedAt.push(snapshots.at(-1)!.position);
      }
    }
    const last = snapshots.at(-1)!;
    // The archive is in RGW: bundles of segments, checkpoints and the index.
    const objects = openObjectStore(store.url, store.options);
    const keys: string[] = [];
    for await (const info of objects.list(`databases/app/${databaseId}/`)) keys.push(info.key);
    await objects.close();
    // Checkpoints are manifests with their range files (docs/FORMAT.md §8, §11).
    expect(keys.filter((key) => key.includes('/manifests/'))).toHaveLength(2);
    expect(keys.some((key) => key.includes('/ranges/'))).toBe(true);
    expect(keys).toContain(`databases/app/${databaseId}/index.json`);

    // Restores through the API, asked on the replica (forwarded), each compared with its snapshot.
    const points = [snapshots[3]!, snapshots[20]!, snapshots[26]!, snapshots[40]!];
    for (const [index, snapshot] of points.entries()) {
      const job = await restoreJob(replica, { position: snapshot.position.toString(), target: `p${index}` });
      expect(job.result.position).toBe(snapshot.position.toString());
      await expectState(replica, `p${index}`, snapshot);
    }
    const byTime = snapshots[33]!;
    const timed = await restoreJob(primary, { timestamp: new Date(byTime.timeMs).toISOString(), target: 'by-time' });
    expect(timed.result.position).toBe(byTime.position.toString());
    await expectState(primary, 'by-time', byTime);

    // Archive everything, then lose the shared folder.
    expect((await primary.request('POST', '/v1/databases/app/compact')).body.compaction.archivedThrough).toBe(last.position.toString());
    for (const server of servers.splice(0)) await server.stop();
    for (const entry of readdirSync(folder.paths[0]!)) rmSync(path.join(folder.paths[0]!, entry), { recursive: true, force: true });

    // Offline, from RGW alone.
    const outputs = tempDir('litebase-ceph-restored-');
    const middle = snapshots[30]!;
    for (const [name, snapshot, flags] of [
      ['latest', last, ['--timestamp', new Date(Date.now() + 60_000).toISOString()]],
      ['middle', middle, ['--position', middle.position.toString()]],
    ] as const) {
      const output = path.join(outputs, `${name}.sqlite`);
      const result = await runCli(['restore', 'app', ...flags, '--object-store', store.url, '--output', output, '--json'], store.env);
      expect(result.code, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout).checksum).toBe(snapshot.checksum);
      expect(integrityCheck(output)).toBe('ok');
      expect(dumpFile(output)).toBe(snapshot.dump);
    }
    rmSync(outputs, { recursive: true, force: true });

    // A fresh cluster on the empty folder and the same RGW bucket brings the database back under its name.
    const fresh = await startNodes();
    expect((await fresh.primary.request('GET', '/v1/databases/app')).status).toBe(404);
    const job = await restoreJob(fresh.replica, { timestamp: new Date(Date.now() + 60_000).toISOString(), target: 'app' });
    expect(job).toMatchObject({ target: 'app', source: 'archive', databaseId });
    expect(job.result.position).toBe(last.position.toString());
    for (const node of [fresh.primary, fresh.replica]) await expectState(node, 'app', last);
  });
});
