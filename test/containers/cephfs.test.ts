import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { openObjectStore } from '../../src/storage/open-object-store.js';
import { checksumAsWritten } from '../support/archive-workload.js';
import { CEPH_NODE_ENV, cephRequired, checkLogChain, prepareCeph, type CephCluster } from '../support/ceph.js';
import {
  HostNetworkCluster,
  prepareDocker,
  runNodeImage,
  SHARED_DIR_IN_CONTAINER,
  type ContainerNode,
  type DockerReadiness,
} from '../support/containers.js';
import { sleep, waitFor } from '../support/wait.js';

/**
 * Litebase in containers on real shared storage: three node containers, each with its own host
 * `ceph-fuse` mount of one CephFS folder bind-mounted as its shared folder (one CephFS client per
 * node, as separate machines have) and its local folder inside the container, and RGW in place of
 * s3rver. RGW of infra/ceph listens on the host's loopback only, so the containers share the host's
 * network (HostNetworkCluster). Writes through every node, the Primary's container killed and a
 * failover, a compaction that archives to RGW, and an offline restore from RGW alone once the
 * shared log is gone: every acknowledged write is there.
 *
 * Needs Docker and the one-host Ceph cluster of infra/ceph (`bash infra/ceph/start.sh`; .ci/run
 * starts it before `npm test`, and when the `ceph` project's global setup started one, it runs
 * until every project is done). Without either it is skipped with the reason; with CI set it fails.
 */
const ceph = await prepareCeph();
// Building the images costs CPU: only when there is a cluster to run them on.
const docker: DockerReadiness = ceph.ready ? await prepareDocker() : { ready: false, reason: 'not checked without Ceph' };
const reason = !ceph.ready ? `no Ceph: ${ceph.reason}` : !docker.ready ? `no Docker: ${docker.reason}` : '';
if (reason) console.log(`[containers] CephFS scenario ${cephRequired ? 'failing, CI needs Docker and Ceph' : 'skipped'}: ${reason}`);

const SCENARIO_TIMEOUT_MS = 400_000;

/** Manual compaction only (the test asks for it), every checkpoint archived. */
const COMPACTION_ENV = {
  LITEBASE_COMPACTION_LOG_BYTES: '0',
  LITEBASE_COMPACTION_LOG_SEGMENTS: '0',
  LITEBASE_ARCHIVE_INTERVAL_MS: '0',
  LITEBASE_ARCHIVE_CHECKPOINT_PERCENT: '0',
};

const clusters: HostNetworkCluster[] = [];
const folders: Array<{ cluster: CephCluster; relative: string }> = [];

/** A request, retried while the node answers 503 (a lease renewal on CephFS may be late) or not at all. */
async function retrying(node: ContainerNode, what: string, body: unknown, route: string, ok: number[]): Promise<any> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const answer = await node.request('POST', route, body, 15_000);
    if (ok.includes(answer.status)) return answer.body;
    if (![0, 503].includes(answer.status) || Date.now() > deadline)
      throw new Error(`${what}: ${answer.status} ${JSON.stringify(answer.body)}`);
    await sleep(250);
  }
}

/** One INSERT; its position when acknowledged, else undefined (an error, a timeout, an unreachable node). */
async function insert(node: ContainerNode, value: string, timeoutMs = 5000): Promise<string | undefined> {
  const answer = await node.request(
    'POST',
    '/v1/databases/app/query',
    { statements: [{ sql: 'INSERT INTO t(v) VALUES (?)', params: [value] }] },
    timeoutMs,
  );
  return answer.status === 200 ? (answer.body.position as string) : undefined;
}

/** Every v in t, once the node has applied `minPosition`. */
async function valuesOn(node: ContainerNode, minPosition: bigint): Promise<string[]> {
  const answer = await node.request(
    'POST',
    '/v1/databases/app/query',
    { statements: [{ sql: 'SELECT v FROM t ORDER BY v' }], minPosition: minPosition.toString() },
    30_000,
  );
  expect(answer.status, `${node.id}: ${JSON.stringify(answer.body)}`).toBe(200);
  return answer.body.results[0].rows.map((row: string[]) => row[0]);
}

async function checksumOn(node: ContainerNode): Promise<string> {
  const { status, body } = await node.request('GET', '/v1/databases/app');
  expect(status, JSON.stringify(body)).toBe(200);
  return body.database.checksum as string;
}

/** Writes unique values through one node until stopped, keeping what was acknowledged. */
function writeLoop(node: ContainerNode, acknowledged: Set<string>): { stop: () => Promise<void> } {
  let running = true;
  const done = (async () => {
    for (let sequence = 0; running; sequence++) {
      const value = `${node.id}-${sequence}`;
      if ((await insert(node, value)) !== undefined) acknowledged.add(value);
      else await sleep(100);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
    },
  };
}

describe.skipIf(reason !== '' && !cephRequired)(`Litebase in containers on CephFS and RGW${reason ? ` (${reason})` : ''}`, () => {
  if (reason !== '' || !ceph.ready) {
    it('has Docker and a Ceph cluster, which CI requires', () => {
      throw new Error(`the CephFS container scenario needs Docker and a running Ceph cluster when CI is set: ${reason}`);
    });
    return;
  }
  const cephCluster = ceph.cluster;

  afterEach(async (context) => {
    const failed = context.task.result?.state === 'fail';
    for (const cluster of clusters.splice(0)) {
      if (failed) console.error(`[containers] what the nodes printed last:\n${cluster.report()}`);
      await cluster.stop();
    }
    for (const { cluster, relative } of folders.splice(0)) cluster.removeFolder(relative);
    await cephCluster.removeObjectStores();
  }, 120_000);

  it(
    'three containers, each on its own ceph-fuse mount, RGW as the object store: writes, the Primary killed, compaction to RGW, a restore from RGW alone has every acknowledged write',
    async () => {
      const started = performance.now();
      const seconds = (): string => ((performance.now() - started) / 1000).toFixed(1);
      const folder = cephCluster.folder('containers');
      folders.push({ cluster: cephCluster, relative: folder.relative });
      const store = cephCluster.objectStore('containers');
      const storeEnv = { ...store.env, LITEBASE_OBJECT_STORE: store.url };
      const cluster = await HostNetworkCluster.start({
        name: 'cephfs',
        sharedDirs: folder.paths,
        env: { ...CEPH_NODE_ENV, ...COMPACTION_ENV, ...storeEnv },
      });
      clusters.push(cluster);
      const primary = await cluster.waitForPrimary(60_000);
      console.log(`[containers] cephfs: three nodes ready, ${primary.id} Primary after ${seconds()} s`);
      await retrying(primary, 'create app', { name: 'app' }, '/v1/databases', [201, 409]);
      await retrying(
        primary,
        'create table',
        { statements: [{ sql: 'CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT UNIQUE NOT NULL)' }] },
        '/v1/databases/app/query',
        [200],
      );
      const termBefore = BigInt((await primary.request('GET', '/v1/cluster')).body.term);

      // A write workload through all three nodes (the Replicas forward to the Primary).
      const acknowledged = new Set<string>();
      const writers = cluster.nodes.map((node) => writeLoop(node, acknowledged));
      await waitFor(() => acknowledged.size >= 30, 120_000, '30 acknowledged writes', 100);

      // The Primary's container killed (docker kill: no graceful stop, the lease is not handed over).
      const beforeKill = acknowledged.size;
      await cluster.kill(primary);
      const killedAt = performance.now();
      const survivors = cluster.nodes.filter((node) => node !== primary);
      const next = await cluster.waitForPrimary(60_000, survivors);
      const { body: view } = await next.request('GET', '/v1/cluster');
      expect(BigInt(view.term)).toBeGreaterThan(termBefore);
      console.log(
        `[containers] cephfs: ${beforeKill} writes acknowledged before the kill; ${next.id} Primary in term ${view.term} ${((performance.now() - killedAt) / 1000).toFixed(1)} s after it`,
      );
      await waitFor(() => acknowledged.size >= beforeKill + 30, 120_000, '30 writes acknowledged after the failover', 100);
      await Promise.all(writers.map((writer) => writer.stop()));

      // A write whose client gave up may still commit after: compare once the log stopped growing.
      const logDir = path.join(folder.paths[0]!, 'databases', 'app', 'log');
      let lastSeen = checkLogChain(logDir);
      await waitFor(
        async () => {
          await sleep(1000);
          const now = checkLogChain(logDir);
          const settled = now === lastSeen;
          lastSeen = now;
          return settled;
        },
        30_000,
        'the log to stop growing',
      );
      // One chain (positions, rolling checksum, terms), read through the first mount.
      const last = checkLogChain(logDir);
      const rows = await Promise.all(survivors.map((node) => valuesOn(node, last)));
      expect(rows[1]).toEqual(rows[0]);
      const present = new Set(rows[0]);
      for (const value of acknowledged) expect(present.has(value), `acknowledged ${value}`).toBe(true);
      const checksums = await Promise.all(survivors.map(checksumOn));
      expect(checksums[1]).toBe(checksums[0]);

      // Compaction, asked of the Replica (it runs on the Primary), archives the log to RGW.
      const replica = survivors.find((node) => node !== next)!;
      const compacted = await retrying(replica, 'compact', undefined, '/v1/databases/app/compact', [200]);
      expect(compacted.compaction.archivedThrough).toBe(last.toString());
      const archive = openObjectStore(store.url, store.options);
      const keys: string[] = [];
      try {
        for await (const info of archive.list('')) keys.push(info.key);
      } finally {
        await archive.close();
      }
      expect(
        keys.some((key) => key.includes('/segments/')),
        keys.join(', '),
      ).toBe(true);
      expect(keys.some((key) => key.includes('/manifests/')) && keys.some((key) => key.includes('/ranges/')), keys.join(', ')).toBe(true);
      console.log(`[containers] cephfs: compacted through ${last}, ${keys.length} objects in RGW after ${seconds()} s`);

      // The shared file system is lost: the cluster goes, and the databases with their logs.
      await cluster.stop();
      rmSync(path.join(folder.paths[0]!, 'databases'), { recursive: true, force: true });
      expect(existsSync(path.join(folder.paths[1]!, 'databases', 'app', 'log'))).toBe(false);

      // Offline, with the CLI in a container, from RGW alone, into a file on CephFS through the third mount.
      const restore = await runNodeImage(
        ['restore', 'app', '--timestamp', new Date().toISOString(), '--output', `${SHARED_DIR_IN_CONTAINER}/restored.sqlite`],
        { env: storeEnv, binds: [{ source: folder.paths[2]!, target: SHARED_DIR_IN_CONTAINER }] },
      );
      expect(restore.code, restore.output).toBe(0);
      // Read back through the first mount.
      const restoredFile = path.join(folder.paths[0]!, 'restored.sqlite');
      const db = new Database(restoredFile, { readonly: true });
      let restored: string[];
      try {
        expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
        restored = db.prepare('SELECT v FROM t ORDER BY v').pluck().all() as string[];
      } finally {
        db.close();
      }
      expect(restored).toEqual(rows[0]);
      const restoredSet = new Set(restored);
      for (const value of acknowledged) expect(restoredSet.has(value), `acknowledged ${value} in the restore`).toBe(true);
      // Page for page the database the cluster had at its last position.
      expect(await checksumAsWritten(restoredFile)).toBe(checksums[0]);
      console.log(
        `[containers] cephfs: ${acknowledged.size} acknowledged writes, all in the restore from RGW (${restored.length} rows); ${seconds()} s in all`,
      );
    },
    SCENARIO_TIMEOUT_MS,
  );
});
