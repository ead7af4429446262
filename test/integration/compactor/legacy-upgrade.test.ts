import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { formatChecksum } from '../../../src/format/rolling-checksum.js';
import { readSegmentFileHeader } from '../../../src/log/segment-stream.js';
import { CheckpointDirectory, writeLegacyCheckpointFromFile } from '../../../src/replay/checkpoints.js';
import { formatPosition } from '../../../src/storage/layout.js';
import { waitFor } from '../../support/archive-workload.js';
import { tempDir, TestServer } from '../../support/server.js';

/**
 * A shared folder written before range checkpoints (its newest checkpoint a whole database in one
 * `.ckpt` file, the log before it trimmed) is upgraded in place when a new node starts
 * (docs/FORMAT.md §8.4): the node loads the legacy checkpoint, its compactor cuts it into range
 * files under a manifest at the same position, and once the grace period has passed the legacy
 * file goes. Real servers on one shared folder.
 */
const servers: TestServer[] = [];
const cleanup: string[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) await server.stop('SIGKILL');
  for (const dir of cleanup.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const ENV = {
  LITEBASE_LEASE_TTL_MS: '1000',
  LITEBASE_COMPACTION_LOG_BYTES: '0',
  LITEBASE_COMPACTION_LOG_SEGMENTS: '0',
  LITEBASE_ARCHIVE_INTERVAL_MS: '0',
  LITEBASE_CHECKPOINT_RANGE_BYTES: String(8 * 4096),
  LITEBASE_CHECKPOINT_GRACE_MS: '0',
  LITEBASE_LOG_LEVEL: 'info',
};

async function rows(server: TestServer): Promise<unknown> {
  const answer = await server.request('POST', '/v1/databases/app/query', { statements: [{ sql: 'SELECT id, v FROM t ORDER BY id' }] });
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  return answer.body.results[0].rows;
}

describe('upgrading legacy checkpoints', () => {
  it('a new node loads a legacy checkpoint and its compactor replaces it with range files', async () => {
    const dataDir = tempDir('litebase-upgrade-data-');
    const storeDir = tempDir('litebase-upgrade-store-');
    cleanup.push(dataDir, storeDir);
    const store = pathToFileURL(storeDir).href;
    const old = await TestServer.start({ dataDir, nodeId: 'n1', extraArgs: ['--object-store', store], env: ENV });
    servers.push(old);
    expect((await old.request('POST', '/v1/databases', { name: 'app' })).status).toBe(201);
    await old.request('POST', '/v1/databases/app/query', { statements: [{ sql: 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)' }] });
    for (let i = 0; i < 30; i++) {
      await old.request('POST', '/v1/databases/app/query', {
        statements: [{ sql: 'INSERT INTO t(v) VALUES (?)', params: [`row-${i}-${'x'.repeat(900)}`] }],
      });
    }
    const before = await rows(old);
    const info = (await old.request('GET', '/v1/databases/app')).body.database;
    await old.stop();
    servers.splice(servers.indexOf(old), 1);

    // Make the shared folder what an older node left: a legacy checkpoint at the newest position,
    // written from the stopped node's local copy, and no segment at or before it.
    const databaseDir = path.join(dataDir, 'databases', 'app');
    const state = JSON.parse(readFileSync(path.join(old.localDir, 'databases', 'app', 'state.json'), 'utf8')) as {
      position: string;
      checksum: string;
    };
    expect(state).toMatchObject({ position: info.position, checksum: info.checksum });
    const position = BigInt(state.position);
    const logDir = path.join(databaseDir, 'log');
    const header = await readSegmentFileHeader(path.join(logDir, `${formatPosition(position)}.seg`));
    const checkpoints = new CheckpointDirectory(path.join(databaseDir, 'checkpoints'));
    rmSync(checkpoints.manifestsDir, { recursive: true, force: true });
    rmSync(checkpoints.rangesDir, { recursive: true, force: true });
    await checkpoints.publish(position, (temp) =>
      writeLegacyCheckpointFromFile(temp, path.join(old.localDir, 'databases', 'app', 'db.sqlite'), {
        databaseId: header.databaseId,
        term: header.term,
        position,
        commitTimeMs: header.commitTimeMs,
        pageSize: header.pageSize,
        databaseSizePages: header.databaseSizePages,
        checksum: header.postChecksum,
      }),
    );
    expect(formatChecksum(header.postChecksum)).toBe(info.checksum);
    for (const name of readdirSync(logDir)) if (name.endsWith('.seg')) rmSync(path.join(logDir, name));

    // A new node on a fresh local folder: it loads the legacy checkpoint and upgrades it.
    const fresh = await TestServer.start({ dataDir, nodeId: 'n2', extraArgs: ['--object-store', store], env: ENV });
    servers.push(fresh);
    expect(await rows(fresh)).toEqual(before);
    expect(fresh.output).toContain('loading the newest checkpoint');
    await waitFor(() => existsSync(checkpoints.manifestPath(position)), 15_000, 'the upgrade to publish a manifest');
    expect(fresh.output).toContain('upgrading a legacy checkpoint to range files');
    const manifest = await checkpoints.readManifest(position, header.databaseId);
    expect(manifest.checksum).toBe(header.postChecksum);
    expect(manifest.ranges.length).toBe(Math.ceil(header.databaseSizePages / 8));

    // The next compaction folds new writes onto the upgraded ranges and collects the legacy file.
    await fresh.request('POST', '/v1/databases/app/query', { statements: [{ sql: "INSERT INTO t(v) VALUES ('after')" }] });
    const compacted = await fresh.request('POST', '/v1/databases/app/compact');
    expect(compacted.status, JSON.stringify(compacted.body)).toBe(200);
    expect(existsSync(checkpoints.checkpointPath(position))).toBe(false);
    expect(await checkpoints.legacyPositions()).toEqual([]);
    const newest = await checkpoints.readManifest(BigInt(compacted.body.compaction.checkpoint.position), header.databaseId);
    const reused = newest.ranges.filter((range, index) => range.file === manifest.ranges[index]?.file).length;
    expect(reused).toBeGreaterThan(0);

    // A third node bootstraps from the upgraded checkpoint alone.
    const third = await TestServer.start({ dataDir, nodeId: 'n3', extraArgs: ['--object-store', store], env: ENV });
    servers.push(third);
    await waitFor(
      async () => JSON.stringify(await rows(third)) === JSON.stringify(await rows(fresh)),
      15_000,
      'the third node to catch up',
    );
  });
});
