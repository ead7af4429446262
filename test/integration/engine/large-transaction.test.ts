import { rmSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readSegmentFileHeader } from '../../../src/log/segment-stream.js';
import { LARGE_SEGMENT_BYTES } from '../../../src/log/segment-runs.js';
import { tempDir, TestServer } from '../../support/server.js';
import { waitFor } from '../../support/wait.js';

/**
 * A transaction far larger than the Primary should hold in memory (docs/ARCHITECTURE.md §2.6, §5.2,
 * §6.2), on real server processes: it commits, its segment is written chunk by chunk (the
 * streamed-segment metric counts it, and the segment file holds all its pages), a fresh node
 * replays it from the log, a tailing replica applies one from its file, and a restarted node ends
 * with the same data and rolling checksum. Memory itself is measured by `npm run bench -- memory`.
 */
const servers: TestServer[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.stop('SIGKILL');
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Rows of 4,000 random bytes fill one 4 KiB page each: 76,800 of them are 300 MiB of pages. */
const ROWS = 76_800;
const ROW_BYTES = 4000;

async function node(dataDir: string, nodeId: string): Promise<TestServer> {
  const server = await TestServer.start({
    dataDir,
    nodeId,
    readyTimeoutMs: 60_000,
    // The big statements must not meet the statement time limit on a slow machine; no compaction
    // (a checkpoint of the whole database is not what this test is about).
    extraArgs: ['--statement-timeout-ms', '120000', '--replica-poll-ms', '200'],
    env: { LITEBASE_COMPACTION_LOG_BYTES: '0', LITEBASE_COMPACTION_LOG_SEGMENTS: '0', LITEBASE_ARCHIVE_INTERVAL_MS: '0' },
  });
  servers.push(server);
  return server;
}

async function query(server: TestServer, sql: string, params: unknown[] = []): Promise<{ position: bigint; rows: unknown[][] }> {
  const response = await server.request('POST', '/v1/databases/app/query', { statements: [{ sql, params }] });
  expect(response.status, JSON.stringify(response.body)).toBe(200);
  return { position: BigInt(response.body.position), rows: response.body.results[0].rows };
}

async function state(server: TestServer): Promise<{ position: bigint; checksum: string }> {
  const { database } = (await server.request('GET', '/v1/databases/app')).body;
  return { position: BigInt(database.position), checksum: database.checksum };
}

async function streamedSegments(server: TestServer): Promise<number> {
  const text = (await server.request('GET', '/metrics')).body as string;
  const match = /^litebase_segments_streamed_total\{database="app"\} (\d+)$/m.exec(text);
  return match ? Number(match[1]) : 0;
}

/** What every node must agree on: the table's shape and a digest of every row, read through SQL. */
const CONTENT = 'SELECT count(*), sum(length(b)), max(id), sum(unicode(substr(b, 1 + id % 4000, 1))) FROM big';

describe('a transaction too large to hold in memory', () => {
  it('is streamed into one segment, replayed by a fresh node, applied from its file by a replica, and survives a restart', async () => {
    const dataDir = tempDir('litebase-large-');
    dirs.push(dataDir);
    const primary = await node(dataDir, 'n1');
    expect((await primary.request('POST', '/v1/databases', { name: 'app' })).status).toBe(201);
    await query(primary, 'CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB)');
    await query(primary, 'INSERT INTO big(b) VALUES (randomblob(10))');

    // 1. One INSERT of 300 MiB of pages: one segment, written chunk by chunk.
    const inserted = await query(
      primary,
      'WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ?) INSERT INTO big(b) SELECT randomblob(?) FROM s',
      [ROWS, ROW_BYTES],
    );
    expect(await streamedSegments(primary)).toBe(1);
    const segmentFile = path.join(dataDir, 'databases', 'app', 'log', `${inserted.position.toString().padStart(20, '0')}.seg`);
    const header = await readSegmentFileHeader(segmentFile);
    expect(header.transactionCount).toBe(1);
    expect(header.pageCount).toBeGreaterThan(ROWS);
    expect(header.pageCount * header.pageSize).toBeGreaterThan(18 * LARGE_SEGMENT_BYTES);
    const afterInsert = await state(primary);
    expect(afterInsert.position).toBe(inserted.position);

    // 2. A fresh node replays the whole log, the large segment from its file.
    const replica = await node(dataDir, 'n2');
    await waitFor(async () => (await state(replica)).position >= inserted.position, 60_000, 'the fresh node to replay the log');
    expect(await state(replica)).toEqual(afterInsert);
    expect((await query(replica, CONTENT)).rows).toEqual((await query(primary, CONTENT)).rows);

    // 3. Every page of the table rewritten in one UPDATE while the replica tails the log; small
    //    writes after it land in the segments that follow.
    const updated = await query(primary, 'UPDATE big SET b = randomblob(?) WHERE id % 4 = 0', [ROW_BYTES]);
    expect(await streamedSegments(primary)).toBe(2);
    const after = await query(primary, 'INSERT INTO big(b) VALUES (randomblob(20))');
    expect(after.position).toBe(updated.position + 1n);
    const final = await state(primary);
    await waitFor(async () => (await state(replica)).position >= final.position, 60_000, 'the replica to apply the update');
    expect(await state(replica)).toEqual(final);
    const content = (await query(primary, CONTENT)).rows;
    expect(content[0]?.slice(0, 3)).toEqual([ROWS + 2, 10 + ROWS * ROW_BYTES + 20, ROWS + 2]);
    expect((await query(replica, CONTENT)).rows).toEqual(content);

    // 4. Durable: both nodes stopped and started again on their folders see the same data.
    for (const server of [replica, primary]) {
      await server.stop('SIGTERM');
      servers.splice(servers.indexOf(server), 1);
    }
    const restarted = [await node(dataDir, 'n1'), await node(dataDir, 'n2')];
    for (const server of restarted) {
      await waitFor(async () => (await state(server)).position >= final.position, 60_000, 'the restarted node to open the database');
      expect(await state(server)).toEqual(final);
      expect((await query(server, CONTENT)).rows).toEqual(content);
    }
  }, 180_000);

  it('is applied from its file after a checkpoint by a fresh node that bootstrapped from that checkpoint', async () => {
    // The bootstrap keeps the checkpoint's page hashes through the replay; a large segment written
    // into the file from its own file must make the node hash the file again, or the node would
    // call its good copy damaged and rebuild it from a log that the compaction already trimmed.
    const dataDir = tempDir('litebase-large-ckpt-');
    dirs.push(dataDir);
    const primary = await node(dataDir, 'n1');
    expect((await primary.request('POST', '/v1/databases', { name: 'app' })).status).toBe(201);
    await query(primary, 'CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB)');
    await query(primary, 'INSERT INTO big(b) VALUES (randomblob(10))');
    expect((await primary.request('POST', '/v1/databases/app/compact')).status).toBe(200);
    const rows = Math.ceil((2 * LARGE_SEGMENT_BYTES) / 4096);
    const inserted = await query(
      primary,
      'WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ?) INSERT INTO big(b) SELECT randomblob(?) FROM s',
      [rows, ROW_BYTES],
    );
    expect(await streamedSegments(primary)).toBe(1);
    const expected = await state(primary);

    const fresh = await node(dataDir, 'n2');
    await waitFor(async () => (await state(fresh)).position >= inserted.position, 60_000, 'the fresh node to bootstrap');
    expect(await state(fresh)).toEqual(expected);
    expect((await query(fresh, CONTENT)).rows).toEqual((await query(primary, CONTENT)).rows);
    expect(fresh.output).not.toMatch(/local copy is damaged|rebuilding the local copy/);
  }, 120_000);
});
