import path from 'node:path';
import { afterAll, afterEach, expect, inject, it } from 'vitest';
import {
  CEPH_LEASE_TTL_MS,
  checkLogChain,
  clusterView,
  createApp,
  describeOnCeph,
  insertValue,
  prepareCeph,
  printServerErrors,
  sameEverywhere,
  segmentTerm,
  startCephNode,
  valuesOn,
  waitForPrimary,
  Writers,
  type CephCluster,
} from '../support/ceph.js';
import type { TestServer } from '../support/server.js';
import { sleep, waitFor } from '../support/wait.js';

/**
 * Faults of the storage itself, on the one-host Ceph cluster (infra/ceph): a node's CephFS client
 * dies, the metadata server restarts, the object store (RGW) is down during compactions, the file
 * system is full (a pool quota). Each test puts the cluster back as it found it (CephCluster.heal).
 */
const ceph = await prepareCeph(inject('cephStartFailure'));
const servers: TestServer[] = [];
const folders: Array<{ cluster: CephCluster; relative: string }> = [];

afterEach(async (context) => {
  if (context.task.result?.state === 'fail') printServerErrors(servers);
  for (const server of servers.splice(0)) await server.stop('SIGKILL');
  if (ceph.ready) await ceph.cluster.heal();
  for (const { cluster, relative } of folders.splice(0)) cluster.removeFolder(relative);
});

afterAll(async () => {
  if (ceph.ready) await ceph.cluster.heal();
});

async function startCluster(cluster: CephCluster, count: number, env: Record<string, string> = {}) {
  const folder = cluster.folder('faults');
  folders.push({ cluster, relative: folder.relative });
  const nodes: TestServer[] = [];
  for (let i = 0; i < count; i++) nodes.push(await startCephNode({ nodeId: `n${i + 1}`, dataDir: folder.paths[i]!, env }, servers));
  const primary = await waitForPrimary(nodes);
  return { folder, nodes, primary, logDir: (index: number) => path.join(folder.paths[index]!, 'databases', 'app', 'log') };
}

/** Every acknowledged value is on every node, and they agree; answers the log's last position. */
async function nothingLost(nodes: TestServer[], logDir: string, writers: Writers): Promise<bigint> {
  const last = checkLogChain(logDir);
  for (const node of nodes) {
    const values = new Set(await valuesOn(node, last.toString()));
    const missing = writers.acknowledged.filter(({ value }) => !values.has(value)).map(({ value }) => value);
    expect(missing, `acknowledged but missing on ${node.url}`).toEqual([]);
  }
  await sameEverywhere(nodes, last.toString());
  return last;
}

describeOnCeph('storage faults on CephFS and RGW', ceph, (cluster) => {
  it("the Primary's mount dies: it stops acknowledging within the lease TTL, another node takes over, nothing acknowledged is lost, and it rejoins once remounted", async () => {
    const { nodes, primary, logDir } = await startCluster(cluster, 3);
    await createApp(primary);
    const index = nodes.indexOf(primary);
    const oldTerm = BigInt((await primary.request('GET', '/v1/cluster')).body.term);
    const others = nodes.filter((node) => node !== primary);
    const writers = new Writers(() => nodes, 6);
    await waitFor(() => writers.acknowledged.length >= 30, 30_000, '30 acknowledged writes');
    const killedAt = Date.now();
    await cluster.killMount(index);
    const next = await waitForPrimary(others, 60_000);
    const electedAt = Date.now();
    await waitFor(async () => (await insertValue(next, `probe-${Date.now()}`))?.status === 200, 30_000, 'a write on the new Primary');
    const servingAt = Date.now();
    // No write sent after the old Primary's lease ran out was acknowledged in its term: every
    // such answer names a segment of a newer term.
    const newLogDir = logDir(nodes.indexOf(next));
    const late = writers.acknowledged.filter(({ sentAt, position }) => sentAt > killedAt + CEPH_LEASE_TTL_MS && segmentTerm(newLogDir, position) <= oldTerm);
    expect(late.map(({ value, node, sentAt, at }) => `${value} via ${node.url} sent at +${sentAt - killedAt} ms, answered at +${at - killedAt} ms`)).toEqual([]);
    const oldTermAnswers = writers.acknowledged.filter(({ position }) => segmentTerm(newLogDir, position) <= oldTerm);
    const lastOldTermAnswer = Math.max(...oldTermAnswers.map(({ at }) => at)) - killedAt;
    // The old Primary no longer says it is one.
    const oldView = await clusterView(primary);
    expect(oldView?.nodes?.find((entry: { address: string }) => entry.address === primary.url)?.role).not.toBe('primary');

    await cluster.remount(index);
    const remountedAt = Date.now();
    await waitFor(async () => {
      const view = await clusterView(primary);
      return view?.primary?.nodeId === (await clusterView(next))?.primary?.nodeId && (await insertValue(primary, `rejoined-${Date.now()}`))?.status === 200;
    }, 60_000, 'the old Primary to follow the new one and take writes again');
    const rejoinedAt = Date.now();
    await sleep(1000);
    await writers.stop();
    console.log(
      `[ceph] mount killed: new Primary after ${electedAt - killedAt} ms, serving after ${servingAt - killedAt} ms; ` +
        `last answer of the old term at +${lastOldTermAnswer} ms; old Primary rejoined ${rejoinedAt - remountedAt} ms after the remount; ${writers.acknowledged.length} acknowledged; refused ${JSON.stringify(Object.fromEntries(writers.refusals))}`,
    );
    await nothingLost(nodes, newLogDir, writers);
  });
});
