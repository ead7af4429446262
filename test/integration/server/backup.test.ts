import { copyFileSync, existsSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LitebaseClient } from '../../../src/client/client.js';
import { startClusterNode, tempDir as makeTempDir, TestServer } from '../../support/server.js';
import { waitFor } from '../../support/wait.js';

/**
 * GET /v1/databases/:db/backup (docs/API.md "GET /v1/databases/:db/backup"): a consistent SQLite file of one committed state, from the
 * Primary and from a Replica, downloaded while a writer keeps writing.
 *
 * Every write inserts one row into `t` and bumps `counter.n` in the same transaction, and the
 * writer sends them one at a time, so each has a position of its own: a backup at position P must
 * hold exactly the rows whose writes were answered with a position <= P, and `counter.n` must
 * equal their number (a torn copy breaks one or the other).
 */

/** Temporary folders of this file, removed when it ends. */
const folders: string[] = [];
const tempDir = (prefix: string): string => {
  const dir = makeTempDir(prefix);
  folders.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of folders.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const PREFILL_ROWS = 6000;
const ROW_BYTES = 1500;

interface Backup {
  status: number;
  headers: Headers;
  file: string;
  position: bigint;
}

async function createSchema(node: TestServer, name: string): Promise<void> {
  expect((await node.request('POST', '/v1/databases', { name })).status).toBe(201);
  const created = await node.request('POST', `/v1/databases/${name}/query`, {
    statements: [
      { sql: 'CREATE TABLE t(id INTEGER PRIMARY KEY, payload BLOB NOT NULL)' },
      { sql: 'CREATE TABLE counter(n INTEGER NOT NULL)' },
      { sql: 'INSERT INTO counter VALUES (0)' },
      // Rows with negative ids make the file large enough that the copy takes many steps.
      {
        sql: `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${PREFILL_ROWS}) INSERT INTO t(id, payload) SELECT -x, randomblob(${ROW_BYTES}) FROM c`,
      },
    ],
  });
  expect(created.status, JSON.stringify(created.body)).toBe(200);
}

/** Writes one row per request until stopped; remembers each answered write's position. */
function startWriter(node: TestServer, name: string) {
  const acked: Array<{ id: number; position: bigint }> = [];
  let stopped = false;
  const done = (async () => {
    for (let id = 1; !stopped; id++) {
      const response = await node.request('POST', `/v1/databases/${name}/query`, {
        statements: [
          { sql: 'INSERT INTO t(id, payload) VALUES (?, randomblob(200))', params: [id] },
          { sql: 'UPDATE counter SET n = n + 1' },
        ],
      });
      if (response.status !== 200) throw new Error(`write ${id} failed: ${response.status} ${JSON.stringify(response.body)}`);
      acked.push({ id, position: BigInt(response.body.position) });
    }
  })();
  return {
    acked,
    /** Resolves once at least `count` writes were answered. */
    async reach(count: number) {
      await waitFor(() => acked.length >= count, 20_000, `${count} answered writes`, 10);
    },
    async stop() {
      stopped = true;
      await done;
    },
  };
}

async function download(node: TestServer, urlPath: string, dir: string, key = node.key): Promise<Backup> {
  const response = await node.fetch(node.url + urlPath, { headers: { authorization: `Bearer ${key}` } });
  const file = path.join(dir, `download-${Date.now()}-${Math.random().toString(16).slice(2)}.sqlite`);
  writeFileSync(file, Buffer.from(await response.arrayBuffer()));
  return {
    status: response.status,
    headers: response.headers,
    file,
    position: BigInt(response.headers.get('x-litebase-position') ?? '-1'),
  };
}

/** Opens a downloaded file alone in a folder of its own: it must need no -wal or -shm beside it. */
function openAlone(file: string): Database.Database {
  const alone = path.join(tempDir('litebase-backup-alone-'), 'copy.sqlite');
  copyFileSync(file, alone);
  const header = readFileSync(alone).subarray(0, 100);
  expect(header.subarray(0, 16).toString('latin1')).toBe('SQLite format 3\0');
  // File format write and read versions: 1 is rollback journal, 2 would be WAL.
  expect([header[18], header[19]]).toEqual([1, 1]);
  const db = new Database(alone, { readonly: true, fileMustExist: true });
  expect(db.pragma('journal_mode', { simple: true })).toBe('delete');
  expect(db.pragma('quick_check', { simple: true })).toBe('ok');
  expect(existsSync(`${alone}-wal`)).toBe(false);
  return db;
}

/** The backup holds exactly the writes answered at or before its position, and nothing torn. */
function expectConsistent(db: Database.Database, position: bigint, acked: Array<{ id: number; position: bigint }>): number {
  const expected = acked.filter((write) => write.position <= position).map((write) => write.id);
  const ids = db.prepare('SELECT id FROM t WHERE id > 0 ORDER BY id').pluck().all() as number[];
  expect(ids).toEqual(expected);
  expect(db.prepare('SELECT n FROM counter').pluck().get()).toBe(expected.length);
  expect(db.prepare('SELECT count(*) FROM t WHERE id < 0').pluck().get()).toBe(PREFILL_ROWS);
  return expected.length;
}

/** Paths of the backup files the server process still has open (deleted or not). */
function openBackupFiles(server: TestServer): string[] {
  const fdDir = `/proc/${server.child.pid}/fd`;
  const open: string[] = [];
  for (const fd of readdirSync(fdDir)) {
    try {
      const target = readlinkSync(path.join(fdDir, fd));
      if (target.includes(`${path.sep}backups${path.sep}`)) open.push(target);
    } catch {
      // closed meanwhile
    }
  }
  return open;
}

describe('backup from the Primary', () => {
  let server: TestServer;
  let work: string;

  beforeAll(async () => {
    server = await TestServer.start({ env: { LITEBASE_WAIT_TIMEOUT_MS: '3000' } });
    work = tempDir('litebase-backup-');
    await createSchema(server, 'app');
  });

  afterAll(async () => {
    await server?.stop();
    server?.cleanup();
  });

  it('answers a consistent, self-contained SQLite file of one position while writes go on', async () => {
    const writer = startWriter(server, 'app');
    let overlapping = 0;
    try {
      await writer.reach(20);
      for (let round = 0; round < 3; round++) {
        const before = writer.acked.length;
        const lastBefore = writer.acked[before - 1]?.position ?? 0n;
        const backup = await download(server, '/v1/databases/app/backup', work);
        expect(backup.status).toBe(200);
        expect(backup.headers.get('content-type')).toBe('application/vnd.sqlite3');
        expect(backup.headers.get('content-disposition')).toBe('attachment; filename="app.sqlite"');
        expect(backup.headers.get('x-litebase-position')).toMatch(/^\d+$/);
        expect(Number(backup.headers.get('content-length'))).toBe(readFileSync(backup.file).length);
        // It holds at least every write answered before it was asked for.
        expect(backup.position).toBeGreaterThanOrEqual(lastBefore);
        overlapping += writer.acked.length - before;
        await writer.reach(writer.acked.length + 5);
        const db = openAlone(backup.file);
        try {
          expectConsistent(db, backup.position, writer.acked);
        } finally {
          db.close();
        }
      }
    } finally {
      await writer.stop();
    }
    // The writer was answered while the backups were being taken: they did not stop the writes.
    expect(overlapping).toBeGreaterThan(0);
    // The last write is in a backup taken now, at the database's position.
    const last = writer.acked.at(-1)?.position ?? 0n;
    const final = await download(server, '/v1/databases/app/backup', work);
    expect(final.position).toBe(last);
    const db = openAlone(final.file);
    try {
      expect(expectConsistent(db, final.position, writer.acked)).toBe(writer.acked.length);
    } finally {
      db.close();
    }
    // Nothing is left in the node's backup folder, and no backup file stays open.
    expect(readdirSync(path.join(server.localDir, 'backups'))).toEqual([]);
    expect(openBackupFiles(server)).toEqual([]);
  });

  it('waits for minPosition, and the TypeScript client streams the same file', async () => {
    const position = BigInt((await server.request('GET', '/v1/databases/app')).body.database.position);
    // Signed, as the CLI's --sign sends it: the query string is part of what is signed.
    const client = new LitebaseClient({ url: server.url, key: server.key, sign: true });
    const backup = await client.backup('app', { minPosition: position });
    expect(backup.position).toBe(position.toString());
    const bytes = Buffer.from(await new Response(backup.body).arrayBuffer());
    expect(bytes.length).toBe(backup.bytes);
    const file = path.join(work, 'client.sqlite');
    writeFileSync(file, bytes);
    const db = openAlone(file);
    try {
      expect(db.prepare('SELECT n FROM counter').pluck().get()).toBe(db.prepare('SELECT count(*) FROM t WHERE id > 0').pluck().get());
    } finally {
      db.close();
    }
    // A position the database has not reached yet: the wait times out like a read's.
    const ahead = await server.request('GET', `/v1/databases/app/backup?minPosition=${position + 1000n}`);
    expect(ahead.status).toBe(503);
    expect(ahead.body.error.code).toBe('POSITION_NOT_REACHED');
    const bad = await server.request('GET', '/v1/databases/app/backup?minPosition=abc');
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('INVALID_REQUEST');
  });

  it('frees the file when the client goes away in the middle of the download', async () => {
    const controller = new AbortController();
    const response = await server.fetch(`${server.url}/v1/databases/app/backup`, {
      headers: { authorization: `Bearer ${server.key}` },
      signal: controller.signal,
    });
    expect(response.status).toBe(200);
    const size = Number(response.headers.get('content-length'));
    expect(size).toBeGreaterThan(4 * 1024 * 1024);
    const reader = response.body!.getReader();
    const first = await reader.read();
    expect(first.done).toBe(false);
    // The file was unlinked as soon as it was open; the node still reads it for this download.
    expect(readdirSync(path.join(server.localDir, 'backups'))).toEqual([]);
    expect(openBackupFiles(server).length).toBe(1);
    controller.abort();
    await reader.cancel().catch(() => undefined);
    await waitFor(() => openBackupFiles(server).length === 0, 10_000, 'the server to close the abandoned backup file');
    // The node goes on answering.
    expect((await server.request('GET', '/v1/databases/app')).status).toBe(200);
  });

  it('answers 404 for an unknown database, 401 without a valid key and 403 without read permission', async () => {
    const missing = await server.request('GET', '/v1/databases/nope/backup');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('DATABASE_NOT_FOUND');

    const anonymous = await server.fetch(`${server.url}/v1/databases/app/backup`);
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as any).error.code).toBe('UNAUTHENTICATED');
    const wrong = await server.request('GET', '/v1/databases/app/backup', undefined, {
      authorization: 'Bearer lb_aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbb',
    });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error.code).toBe('INVALID_KEY');

    await createSchemaSmall(server, 'other');
    const otherReader = await createKey(server, ['other'], ['read']);
    const writerOnly = await createKey(server, ['app'], ['write']);
    for (const key of [otherReader, writerOnly]) {
      const refused = await server.request('GET', '/v1/databases/app/backup', undefined, { authorization: `Bearer ${key}` });
      expect(refused.status).toBe(403);
      expect(refused.body.error).toMatchObject({ code: 'PERMISSION_DENIED', action: 'read', database: 'app' });
    }
    // A key that may read the database may back it up.
    const allowed = await download(server, '/v1/databases/other/backup', work, otherReader);
    expect(allowed.status).toBe(200);
    const db = openAlone(allowed.file);
    try {
      expect(db.prepare('SELECT v FROM s').pluck().all()).toEqual(['kept']);
    } finally {
      db.close();
    }
    // Unknown databases the key may not read are refused, not confirmed or denied.
    const hidden = await server.request('GET', '/v1/databases/nope/backup', undefined, { authorization: `Bearer ${otherReader}` });
    expect(hidden.status).toBe(403);
  });
});

async function createSchemaSmall(node: TestServer, name: string): Promise<void> {
  expect((await node.request('POST', '/v1/databases', { name })).status).toBe(201);
  const created = await node.request('POST', `/v1/databases/${name}/query`, {
    statements: [{ sql: 'CREATE TABLE s(v TEXT)' }, { sql: "INSERT INTO s VALUES ('kept')" }],
  });
  expect(created.status, JSON.stringify(created.body)).toBe(200);
}

async function createKey(node: TestServer, databases: string[], actions: string[]): Promise<string> {
  const response = await node.request('POST', '/v1/keys', { name: `${actions.join('+')} on ${databases.join(',')}`, databases, actions });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return response.body.key.secret as string;
}

describe('backup from a Replica', () => {
  const servers: TestServer[] = [];

  afterEach(async () => {
    for (const server of servers.splice(0)) await server.stop('SIGKILL');
  });

  const startNode = (dataDir: string, nodeId: string): Promise<TestServer> => startClusterNode(dataDir, nodeId, servers);

  it("serves the Replica's own applied copy, consistent while the Primary keeps writing", async () => {
    const dataDir = tempDir('litebase-backup-cluster-');
    const primary = await startNode(dataDir, 'n1');
    await waitFor(async () => (await primary.request('GET', '/v1/cluster')).body?.primary?.nodeId === 'n1', 10_000, 'n1 to be the Primary');
    const replica = await startNode(dataDir, 'n2');
    await waitFor(
      async () =>
        (await replica.request('GET', '/v1/cluster')).body?.nodes?.some((node: any) => node.nodeId === 'n2' && node.role === 'replica'),
      10_000,
      'n2 to be a Replica',
    );
    await createSchema(primary, 'app');
    const work = tempDir('litebase-backup-');

    const writer = startWriter(primary, 'app');
    try {
      await writer.reach(20);
      for (let round = 0; round < 2; round++) {
        const wanted = writer.acked.at(-1)?.position ?? 0n;
        // Read your writes: the Replica waits until it has applied the Primary's last answered write.
        const backup = await download(replica, `/v1/databases/app/backup?minPosition=${wanted}`, work);
        expect(backup.status, readFileSync(backup.file, 'utf8').slice(0, 300)).toBe(200);
        expect(backup.headers.get('content-type')).toBe('application/vnd.sqlite3');
        expect(backup.position).toBeGreaterThanOrEqual(wanted);
        await waitFor(() => (writer.acked.at(-1)?.position ?? 0n) >= backup.position, 10_000, 'the writer to pass the backup position');
        const db = openAlone(backup.file);
        try {
          expect(expectConsistent(db, backup.position, writer.acked)).toBeGreaterThanOrEqual(20);
        } finally {
          db.close();
        }
      }
    } finally {
      await writer.stop();
    }
    expect(readdirSync(path.join(replica.localDir, 'backups'))).toEqual([]);
    const missing = await replica.request('GET', '/v1/databases/nope/backup');
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('DATABASE_NOT_FOUND');
  });
});
