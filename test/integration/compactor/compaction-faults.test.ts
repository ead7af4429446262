import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir, TestServer } from '../../support/server.js';
import { waitFor } from '../../support/wait.js';

/**
 * The cluster guarantees while range checkpoints are made (issue 14): writes go on through frequent
 * compactions (a checkpoint every few segments, ranges of 4 pages, no grace period, so files are
 * replaced and collected all the time); fresh nodes bootstrap from the checkpoints while that runs,
 * and the Primary is killed with SIGKILL mid-load. Every acknowledged write must be there at the
 * end, and every node must end with the Primary's rolling checksum at the same position.
 */
const servers: TestServer[] = [];
const cleanup: string[] = [];

const writers: Writer[] = [];

afterEach(async () => {
  // A failed test must not leave its writers looping (they would keep the worker alive).
  for (const writer of writers.splice(0)) await writer.stop();
  for (const server of servers.splice(0)) await server.stop('SIGKILL');
  for (const dir of cleanup.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const ENV = {
  LITEBASE_LEASE_TTL_MS: '1000',
  LITEBASE_REPLICA_POLL_MS: '100',
  LITEBASE_WAIT_TIMEOUT_MS: '15000',
  LITEBASE_COMPACTION_LOG_BYTES: '0',
  LITEBASE_COMPACTION_LOG_SEGMENTS: '8',
  LITEBASE_ARCHIVE_INTERVAL_MS: '0',
  LITEBASE_CHECKPOINT_RANGE_BYTES: String(4 * 4096),
  LITEBASE_CHECKPOINT_GRACE_MS: '0',
  LITEBASE_LOG_LEVEL: 'info',
};

interface Writer {
  acknowledged: string[];
  stop: () => Promise<void>;
}

/** One client writing rows as fast as it can, to whichever node answers as Primary. */
function startWriter(nodes: () => TestServer[], tag: string): Writer {
  const acknowledged: string[] = [];
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const value = `${tag}-${i}`;
      for (const node of nodes()) {
        if (node.child.exitCode !== null || node.child.signalCode !== null) continue;
        const answer = await node
          .request('POST', '/v1/databases/app/query', {
            statements: [{ sql: 'INSERT INTO t(v, pad) VALUES (?, randomblob(?))', params: [value, 200 + ((i * 131) % 3000)] }],
          })
          .catch(() => undefined);
        if (answer?.status === 200) {
          acknowledged.push(value);
          break;
        }
      }
      // Nobody took it (a failover): let the cluster settle instead of spinning.
      if (acknowledged.at(-1) !== value) await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  return {
    acknowledged,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

async function primaryOf(nodes: TestServer[]): Promise<TestServer> {
  for (const node of nodes) {
    if (node.child.exitCode !== null || node.child.signalCode !== null) continue;
    const status = await node.request('GET', '/v1/cluster').catch(() => undefined);
    const primary = status?.body?.primary?.address;
    const found = nodes.find((candidate) => candidate.url === primary);
    if (found && found.child.exitCode === null && found.child.signalCode === null) return found;
  }
  throw new Error('no primary');
}

async function databaseState(node: TestServer, minPosition: string): Promise<{ position: string; checksum: string; count: number }> {
  const answer = await node.request('POST', '/v1/databases/app/query', { statements: [{ sql: 'SELECT count(*) FROM t' }], minPosition });
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  const info = (await node.request('GET', '/v1/databases/app')).body.database;
  return { position: info.position, checksum: info.checksum, count: answer.body.results[0].rows[0][0] };
}

describe('range checkpoints under faults', () => {
  it(
    'keeps every acknowledged write through Primary kills and fresh bootstraps while checkpoints are made',
    { timeout: 180_000 },
    async () => {
      const dataDir = tempDir('litebase-compaction-faults-');
      const storeDir = tempDir('litebase-compaction-faults-store-');
      cleanup.push(dataDir, storeDir);
      const store = pathToFileURL(storeDir).href;
      const start = async (nodeId: string): Promise<TestServer> => {
        const server = await TestServer.start({ dataDir, nodeId, extraArgs: ['--object-store', store], env: ENV });
        servers.push(server);
        return server;
      };
      const nodes: TestServer[] = [await start('n1')];
      expect((await nodes[0]?.request('POST', '/v1/databases', { name: 'app' }))?.status).toBe(201);
      await nodes[0]?.request('POST', '/v1/databases/app/query', {
        statements: [{ sql: 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT UNIQUE, pad BLOB)' }],
      });
      nodes.push(await start('n2'));
      writers.push(
        startWriter(() => nodes, 'a'),
        startWriter(() => nodes, 'b'),
      );
      const manifests = path.join(dataDir, 'databases', 'app', 'checkpoints', 'manifests');
      const manifestNames = (): string[] => (existsSync(manifests) ? readdirSync(manifests) : []);

      for (let round = 0; round < 2; round++) {
        // Checkpoints are being made...
        await waitFor(() => manifestNames().length > 0, 20_000, 'a checkpoint');
        const seen = new Set(manifestNames());
        await waitFor(() => manifestNames().some((name) => !seen.has(name)), 20_000, 'another checkpoint');
        // ...a fresh node bootstraps from them meanwhile...
        const fresh = await start(`fresh-${round}`);
        nodes.push(fresh);
        // ...and the Primary dies mid-load.
        const primary = await primaryOf(nodes);
        await primary.kill9();
        await waitFor(async () => (await primaryOf(nodes).catch(() => undefined)) !== undefined, 20_000, 'a new primary');
        const count = writers.reduce((sum, writer) => sum + writer.acknowledged.length, 0);
        await waitFor(() => writers.reduce((sum, writer) => sum + writer.acknowledged.length, 0) > count + 20, 30_000, 'writes to go on');
      }
      for (const writer of writers) await writer.stop();
      const acknowledged = writers.flatMap((writer) => writer.acknowledged);

      const primary = await primaryOf(nodes);
      const final = (await primary.request('GET', '/v1/databases/app')).body.database;
      const rows = await primary.request('POST', '/v1/databases/app/query', { statements: [{ sql: 'SELECT v FROM t' }] });
      const present = new Set((rows.body.results[0].rows as string[][]).map((row) => row[0]));
      expect(acknowledged.length).toBeGreaterThan(100);
      expect(acknowledged.filter((value) => !present.has(value))).toEqual([]);
      for (const node of nodes) {
        if (node.child.exitCode !== null || node.child.signalCode !== null) continue;
        const state = await databaseState(node, final.position);
        expect({ node: node.url, ...state }).toEqual({
          node: node.url,
          position: final.position,
          checksum: final.checksum,
          count: present.size,
        });
      }
      for (const server of nodes) {
        if (
          server.output.includes('"level":50') &&
          /CHECKPOINT_FOLD_MISMATCH|LOCAL_REBUILD_MISMATCH|LOG_CHAIN_BROKEN/.test(server.output)
        ) {
          throw new Error(`${server.url} logged a broken checkpoint or chain`);
        }
      }
    },
  );
});
