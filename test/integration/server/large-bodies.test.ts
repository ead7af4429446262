import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir, TestServer } from '../../support/server.js';
import { waitFor } from '../../support/wait.js';

/**
 * Large request bodies on real server processes (src/server/json-body.ts, body-budget.ts): BLOB
 * params decoded straight from the body are stored byte for byte, from many clients at once (more
 * large bodies than the budget holds: the rest wait, and all are answered); a client that goes
 * away while its large body waits or is half sent gives its share back (a leak would leave the
 * next large request waiting for ever); and a replica forwards such a body to the Primary intact.
 */
const servers: TestServer[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.stop('SIGKILL');
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const digest = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
/** Every blob sent, by its digest. */
const sent = new Map<string, Buffer>();
/** What SQL shows of a blob without a result too large to answer: its length and three slices. */
const SAMPLE = 'length(b), hex(substr(b, 1, 64)), hex(substr(b, 1 + length(b) / 2, 64)), hex(substr(b, -64))';
const sample = (blob: Buffer): unknown[] => {
  const slice = (from: number): string =>
    blob
      .subarray(from, from + 64)
      .toString('hex')
      .toUpperCase();
  return [blob.length, slice(0), slice(Math.floor(blob.length / 2)), slice(Math.max(0, blob.length - 64))];
};

async function insertBlobs(server: TestServer, blobs: Buffer[]): Promise<void> {
  for (const blob of blobs) sent.set(digest(blob), blob);
  const response = await server.request('POST', '/v1/databases/app/query', {
    statements: blobs.map((blob) => ({
      sql: 'INSERT INTO t(b, sha) VALUES (?, ?)',
      params: [{ $blob: blob.toString('base64') }, digest(blob)],
    })),
  });
  expect(response.status, JSON.stringify(response.body)).toBe(200);
}

/** Every row's blob is the one sent with its digest. */
async function checkRows(server: TestServer, count: number): Promise<void> {
  const response = await server.request('POST', '/v1/databases/app/query', {
    statements: [{ sql: `SELECT sha, ${SAMPLE} FROM t ORDER BY id` }],
  });
  expect(response.status, JSON.stringify(response.body).slice(0, 300)).toBe(200);
  const rows = response.body.results[0].rows as Array<[string, ...unknown[]]>;
  expect(rows).toHaveLength(count);
  for (const [sha, ...shown] of rows) expect(shown).toEqual(sample(sent.get(sha) as Buffer));
}

/** Sends the headers and `sent` bytes of a body of `length`, then closes the connection. */
function abandon(server: TestServer, length: number, sent: number): Promise<void> {
  return new Promise((resolve) => {
    const request = http.request(`${server.url}/v1/databases/app/query`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.key}`, 'content-type': 'application/json', 'content-length': String(length) },
    });
    request.on('error', () => resolve());
    request.write(`{"statements":[{"sql":"INSERT INTO t(b) VALUES (?)","params":[{"$blob":"${'A'.repeat(Math.max(0, sent - 60))}`);
    setTimeout(() => {
      request.destroy();
      resolve();
    }, 200);
  });
}

describe('large request bodies', () => {
  it('are stored exactly from many clients at once, survive clients that leave, and are forwarded by a replica', async () => {
    const dataDir = tempDir('litebase-bodies-');
    dirs.push(dataDir);
    const primary = await TestServer.start({ dataDir, nodeId: 'n1', extraArgs: ['--replica-poll-ms', '200'] });
    servers.push(primary);
    expect((await primary.request('POST', '/v1/databases', { name: 'app' })).status).toBe(201);
    const create = await primary.request('POST', '/v1/databases/app/query', {
      statements: [{ sql: 'CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB, sha TEXT)' }],
    });
    expect(create.status).toBe(200);

    // 1. Eight clients at once, each a body of ~5.6 MiB (more than two do not fit the 16 MiB budget).
    const sizes = [1, 2, 3, 1024 * 1024, 3 * 1024 * 1024 + 1, 100_000];
    await Promise.all(
      Array.from({ length: 8 }, () =>
        insertBlobs(
          primary,
          sizes.map((size) => randomBytes(size)),
        ),
      ),
    );
    await checkRows(primary, 8 * sizes.length);

    // 2. Clients that leave with their large bodies waiting, or half sent, hold nothing afterwards.
    await Promise.all([
      ...Array.from({ length: 4 }, () => abandon(primary, 9 * 1024 * 1024, 1024)),
      ...Array.from({ length: 2 }, () => abandon(primary, 9 * 1024 * 1024, 4 * 1024 * 1024)),
    ]);
    await Promise.all(Array.from({ length: 3 }, () => insertBlobs(primary, [randomBytes(6 * 1024 * 1024)])));
    await checkRows(primary, 8 * sizes.length + 3);

    // 3. Through a replica: the body is forwarded to the Primary as it was sent.
    const replica = await TestServer.start({ dataDir, nodeId: 'n2', extraArgs: ['--replica-poll-ms', '200'] });
    servers.push(replica);
    await insertBlobs(replica, [randomBytes(2 * 1024 * 1024), randomBytes(70_000)]);
    await checkRows(primary, 8 * sizes.length + 5);
    await waitFor(
      async () => {
        const response = await replica.request('POST', '/v1/databases/app/query', { statements: [{ sql: 'SELECT count(*) FROM t' }] });
        return response.status === 200 && response.body.results[0].rows[0][0] === 8 * sizes.length + 5;
      },
      30_000,
      'the replica to catch up',
    );
    await checkRows(replica, 8 * sizes.length + 5);
  }, 180_000);
});
