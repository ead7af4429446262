import path from 'node:path';
import { logHeaders } from '../support/log-files.js';
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
import { runCli } from '../support/cli.js';
import { tempDir, type TestServer } from '../support/server.js';
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
  if (ceph.ready) await ceph.cluster.removeObjectStores();
});

afterAll(async () => {
  if (ceph.ready) await ceph.cluster.heal();
});

async function startCluster(cluster: CephCluster, count: number, env: Record<string, string> = {}, extraArgs: string[] = []) {
  const folder = cluster.folder('faults');
  folders.push({ cluster, relative: folder.relative });
  const nodes: TestServer[] = [];
  for (let i = 0; i < count; i++)
    nodes.push(await startCephNode({ nodeId: `n${i + 1}`, dataDir: folder.paths[i]!, env, extraArgs }, servers));
  const primary = await waitForPrimary(nodes);
  return { folder, nodes, primary, logDir: (index: number) => path.join(folder.paths[index]!, 'databases', 'app', 'log') };
}

const segmentPositions = (logDir: string): bigint[] => logHeaders(logDir).map((header) => header.position);

const errorLines = (node: TestServer, message: string): number => node.output.split('\n').filter((line) => line.includes(message)).length;

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
    const late = writers.acknowledged.filter(
      ({ sentAt, position }) => sentAt > killedAt + CEPH_LEASE_TTL_MS && segmentTerm(newLogDir, position) <= oldTerm,
    );
    expect(
      late.map(
        ({ value, node, sentAt, at }) => `${value} via ${node.url} sent at +${sentAt - killedAt} ms, answered at +${at - killedAt} ms`,
      ),
    ).toEqual([]);
    const oldTermAnswers = writers.acknowledged.filter(({ position }) => segmentTerm(newLogDir, position) <= oldTerm);
    const lastOldTermAnswer = Math.max(...oldTermAnswers.map(({ at }) => at)) - killedAt;
    // The old Primary no longer says it is one.
    const oldView = await clusterView(primary);
    expect(oldView?.nodes?.find((entry: { address: string }) => entry.address === primary.url)?.role).not.toBe('primary');

    await cluster.remount(index);
    const remountedAt = Date.now();
    await waitFor(
      async () => {
        const view = await clusterView(primary);
        return (
          view?.primary?.nodeId === (await clusterView(next))?.primary?.nodeId &&
          (await insertValue(primary, `rejoined-${Date.now()}`))?.status === 200
        );
      },
      60_000,
      'the old Primary to follow the new one and take writes again',
    );
    const rejoinedAt = Date.now();
    await sleep(1000);
    await writers.stop();
    console.log(
      `[ceph] mount killed: new Primary after ${electedAt - killedAt} ms, serving after ${servingAt - killedAt} ms; ` +
        `last answer of the old term at +${lastOldTermAnswer} ms; old Primary rejoined ${rejoinedAt - remountedAt} ms after the remount; ${writers.acknowledged.length} acknowledged; refused ${JSON.stringify(Object.fromEntries(writers.refusals))}`,
    );
    await nothingLost(nodes, newLogDir, writers);
  });

  it('the metadata server restarts under load: writes pause, then go on; nothing acknowledged is lost', async () => {
    const { nodes, primary, logDir } = await startCluster(cluster, 3);
    await createApp(primary);
    const writers = new Writers(() => nodes, 6);
    await waitFor(() => writers.acknowledged.length >= 30, 30_000, '30 acknowledged writes');
    const before = writers.acknowledged.length;
    const restartedAt = Date.now();
    await cluster.ctl('restart', 'mds');
    const activeAt = Date.now();
    await waitFor(() => writers.acknowledged.length >= before + 30, 90_000, '30 more acknowledged writes after the restart');
    const resumedAt = writers.acknowledged[before + 29]!.at;
    await writers.stop();
    console.log(
      `[ceph] MDS restart: active again after ${activeAt - restartedAt} ms, 30 more writes by +${resumedAt - restartedAt} ms; ` +
        `${writers.acknowledged.length} acknowledged; refused ${JSON.stringify(Object.fromEntries(writers.refusals))}`,
    );
    const primaryAfter = await waitForPrimary(nodes);
    await nothingLost(nodes, logDir(nodes.indexOf(primaryAfter)), writers);
  });

  it('the object store is down during compactions: they fail and are retried, the log is not trimmed until the archive holds it', async () => {
    const store = cluster.objectStore('faults-rgw');
    const env = {
      ...store.env,
      LITEBASE_COMPACTION_LOG_SEGMENTS: '40',
      LITEBASE_COMPACTION_LOG_BYTES: '0',
      LITEBASE_ARCHIVE_INTERVAL_MS: '0',
      LITEBASE_ARCHIVE_CHECKPOINT_PERCENT: '0',
    };
    const { nodes, primary, logDir } = await startCluster(cluster, 1, env, ['--object-store', store.url]);
    await createApp(primary);
    await cluster.stop('rgw');
    // Asked for, a compaction says why it failed.
    const asked = await primary.request('POST', '/v1/databases/app/compact');
    expect(asked.status, JSON.stringify(asked.body)).toBe(503);
    expect(asked.body.error.code).toBe('OBJECT_STORE_UNAVAILABLE');
    // Past the threshold the compactor tries on its own, and again after a growing pause.
    const writers = new Writers(() => nodes, 2);
    await waitFor(() => errorLines(primary, 'compaction failed') >= 3, 90_000, 'three failed compactions');
    expect(segmentPositions(logDir(0))[0]).toBe(1n);
    const failures = errorLines(primary, 'compaction failed');
    await cluster.start('rgw');
    const rgwBackAt = Date.now();
    await waitFor(() => (segmentPositions(logDir(0))[0] ?? 0n) > 1n, 120_000, 'the log trimmed after an archive');
    const trimmedAfterMs = Date.now() - rgwBackAt;
    await writers.stop();
    console.log(
      `[ceph] RGW down: ${failures} compactions failed, the log was trimmed ${trimmedAfterMs} ms after RGW came back; ${writers.acknowledged.length} acknowledged`,
    );
    // Everything the archive holds restores from RGW alone, offline, exactly.
    const output = path.join(tempDir('litebase-ceph-restore-'), 'app.sqlite');
    const restored = await runCli(
      [
        'restore',
        'app',
        '--object-store',
        store.url,
        '--timestamp',
        new Date(Date.now() + 60_000).toISOString(),
        '--output',
        output,
        '--json',
      ],
      store.env,
    );
    expect(restored.code, restored.stderr).toBe(0);
    const position = BigInt(JSON.parse(restored.stdout).position as string);
    expect(position).toBeGreaterThanOrEqual((segmentPositions(logDir(0))[0] ?? 0n) - 1n);
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(output, { readonly: true });
    const values = new Set(db.prepare('SELECT v FROM t').pluck().all() as string[]);
    db.close();
    const expected = writers.acknowledged.filter((ack) => ack.position <= position).map(({ value }) => value);
    expect(expected.length).toBeGreaterThan(0);
    expect(expected.filter((value) => !values.has(value))).toEqual([]);
    expect(values.size).toBe(expected.length);
  });

  it('the file system is full (pool quota): 503 LOG_UNAVAILABLE, and only what was acknowledged is there', async () => {
    await cluster.start('mgr');
    const { primary, logDir } = await startCluster(cluster, 1);
    await createApp(primary);
    await primary.request('POST', '/v1/databases/app/query', {
      statements: [{ sql: 'CREATE TABLE big(id INTEGER PRIMARY KEY, payload BLOB)' }],
    });
    const pools = JSON.parse(await cluster.ceph('df', '-f', 'json')) as { pools: Array<{ name: string; stats: { stored: number } }> };
    const stored = pools.pools.find((pool) => pool.name === 'cephfs_data')!.stats.stored;
    const quota = stored + 16 * 1024 * 1024;
    await cluster.ceph('osd', 'pool', 'set-quota', 'cephfs_data', 'max_bytes', String(quota));
    const acknowledged: number[] = [];
    let refused: { id: number; status: number; code: string } | undefined;
    for (let id = 1; id <= 2000 && !refused; id++) {
      const answer = await primary.request('POST', '/v1/databases/app/query', {
        statements: [{ sql: 'INSERT INTO big(id, payload) VALUES (?, randomblob(65536))', params: [id] }],
      });
      if (answer.status === 200) acknowledged.push(id);
      else refused = { id, status: answer.status, code: answer.body?.error?.code };
    }
    console.log(`[ceph] pool quota ${quota} bytes: ${acknowledged.length} rows of 64 KiB acknowledged, then ${JSON.stringify(refused)}`);
    expect(refused).toMatchObject({ status: 503, code: 'LOG_UNAVAILABLE' });
    await cluster.ceph('osd', 'pool', 'set-quota', 'cephfs_data', 'max_bytes', '0');
    // Room again: the node takes writes, and holds exactly the acknowledged rows.
    await waitFor(
      async () =>
        (
          await primary.request('POST', '/v1/databases/app/query', {
            statements: [{ sql: "INSERT INTO big(id, payload) VALUES (?, x'00')", params: [100_000] }],
          })
        ).status === 200,
      60_000,
      'a write once the quota is lifted',
    );
    const rows = await primary.request('POST', '/v1/databases/app/query', {
      statements: [{ sql: 'SELECT id FROM big WHERE id < 100000 ORDER BY id' }],
    });
    expect(rows.body.results[0].rows.map((row: number[]) => row[0])).toEqual(acknowledged);
    checkLogChain(logDir(0));
  });
});
