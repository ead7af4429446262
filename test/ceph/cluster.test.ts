import path from 'node:path';
import { afterEach, expect, inject, it } from 'vitest';
import {
  CEPH_LEASE_TTL_MS,
  checkLogChain,
  clusterView,
  createApp,
  describeOnCeph,
  insertUntilAcknowledged,
  insertValue,
  prepareCeph,
  primaryOf,
  printServerErrors,
  sameEverywhere,
  startCephNode,
  valuesOn,
  waitForPrimary,
  Writers,
  type CephCluster,
} from '../support/ceph.js';
import type { TestServer } from '../support/server.js';
import { sleep, waitFor } from '../support/wait.js';

/**
 * A Litebase cluster on real CephFS (infra/ceph): three `litebase serve` processes, each on its
 * own ceph-fuse mount (a separate CephFS client with its own cache and capabilities, as a separate
 * machine would have), its local folder on the local disk, watching off: inotify does not see
 * other clients' changes on CephFS, so replicas learn of new segments by polling and by the
 * Primary's nudges alone.
 */
const ceph = await prepareCeph(inject('cephStartFailure'));
const servers: TestServer[] = [];
const folders: Array<{ cluster: CephCluster; relative: string }> = [];

afterEach(async (context) => {
  if (context.task.result?.state === 'fail') printServerErrors(servers);
  for (const server of servers.splice(0)) {
    if (server.child.signalCode === 'SIGSTOP') server.child.kill('SIGCONT');
    await server.stop('SIGKILL');
  }
  for (const { cluster, relative } of folders.splice(0)) cluster.removeFolder(relative);
});

async function startCluster(cluster: CephCluster, count: number, env: Record<string, string> = {}) {
  const folder = cluster.folder('cluster');
  folders.push({ cluster, relative: folder.relative });
  const nodes: TestServer[] = [];
  for (let i = 0; i < count; i++) nodes.push(await startCephNode({ nodeId: `n${i + 1}`, dataDir: folder.paths[i]!, env }, servers));
  const primary = await waitForPrimary(nodes);
  return { folder, nodes, primary, logDir: (index: number) => path.join(folder.paths[index]!, 'databases', 'app', 'log') };
}

describeOnCeph('cluster on CephFS, one ceph-fuse mount per node', ceph, (cluster) => {
  it('elects one Primary; writes through any node; every node reads the same data', async () => {
    const { nodes } = await startCluster(cluster, 3);
    const views = await Promise.all(nodes.map(clusterView));
    expect(new Set(views.map((view) => view.term)).size).toBe(1);
    expect(new Set(views.map((view) => view.primary.nodeId)).size).toBe(1);
    for (const view of views) expect(view.nodes.filter((node: { role: string }) => node.role === 'primary')).toHaveLength(1);
    await createApp(nodes[1]!);
    let position = '0';
    for (const [index, node] of nodes.entries()) {
      const answer = await insertUntilAcknowledged(node, `from-${index}`);
      expect(answer?.status, JSON.stringify(answer?.body)).toBe(200);
      position = answer!.body.position;
    }
    for (const node of nodes) expect(await valuesOn(node, position)).toEqual(['from-0', 'from-1', 'from-2']);
    await sameEverywhere(nodes, position);
  });

  it("replicas see new writes without inotify: by polling, and by the Primary's nudge alone", async () => {
    // Polling every 200 ms: a read without minPosition shows each write soon.
    const polled = await startCluster(cluster, 3);
    await createApp(polled.primary);
    const replicas = polled.nodes.filter((node) => node !== polled.primary);
    for (let i = 0; i < 5; i++) {
      expect((await insertUntilAcknowledged(polled.primary, `polled-${i}`))?.status).toBe(200);
      for (const replica of replicas)
        await waitFor(async () => (await valuesOn(replica)).includes(`polled-${i}`), 10_000, `polled-${i} on ${replica.url}`);
    }
    for (const server of servers.splice(0)) await server.stop('SIGKILL');

    // No polling to speak of (every 10 minutes), no watching: only the Primary's nudge tells.
    const nudged = await startCluster(cluster, 2, { LITEBASE_REPLICA_POLL_MS: '600000' });
    const replica = nudged.nodes.find((node) => node !== nudged.primary)!;
    await createApp(nudged.primary);
    // The Primary nudges the nodes whose heartbeat it has read (once a second).
    await waitFor(async () => (await clusterView(nudged.primary))?.nodes?.length === 2, 15_000, 'both heartbeats');
    await sleep(1500);
    for (let i = 0; i < 5; i++) {
      expect((await insertUntilAcknowledged(nudged.primary, `nudged-${i}`))?.status).toBe(200);
      await waitFor(async () => (await valuesOn(replica)).includes(`nudged-${i}`), 10_000, `nudged-${i} on the replica`);
    }
  });

  it('kill -9 of the Primary under load: another node takes over, no acknowledged write is lost', async () => {
    const { nodes, primary, logDir } = await startCluster(cluster, 3);
    await createApp(primary);
    const survivors = nodes.filter((node) => node !== primary);
    const writers = new Writers(() => nodes, 6);
    await waitFor(() => writers.acknowledged.length >= 30, 30_000, '30 acknowledged writes');
    const killedAt = Date.now();
    await primary.kill9();
    const next = await waitForPrimary(survivors, CEPH_LEASE_TTL_MS + 20_000);
    await waitFor(async () => (await insertValue(next, `probe-${Date.now()}`))?.status === 200, 20_000, 'a write on the new Primary');
    const servingAfterMs = Date.now() - killedAt;
    await sleep(1000);
    await writers.stop();
    console.log(
      `[ceph] kill -9: writes served again after ${servingAfterMs} ms; ${writers.acknowledged.length} acknowledged; refused ${JSON.stringify(Object.fromEntries(writers.refusals))}`,
    );
    expect(writers.acknowledged.length).toBeGreaterThan(20);
    const last = checkLogChain(logDir(nodes.indexOf(next)));
    for (const node of survivors) {
      const values = new Set(await valuesOn(node, last.toString()));
      for (const { value } of writers.acknowledged) expect(values.has(value), `acknowledged ${value} on ${node.url}`).toBe(true);
    }
    await sameEverywhere(survivors, last.toString());
    // The killed node comes back on the same folders and follows.
    const index = nodes.indexOf(primary);
    const back = await startCephNode({ nodeId: `n${index + 1}`, dataDir: primary.dataDir, localDir: primary.localDir }, servers);
    await sameEverywhere([...survivors, back], last.toString());
    expect(await primaryOf([back])).toBeUndefined();
  });
});
