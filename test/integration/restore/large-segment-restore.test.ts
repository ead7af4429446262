import { rmSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { LogDirectory } from '../../../src/log/log-directory.js';
import { LARGE_SEGMENT_BYTES } from '../../../src/log/segment-runs.js';
import { openObjectStore } from '../../../src/storage/open-object-store.js';
import { checksumAsWritten, integrityCheck, MANUAL_ARCHIVE_ENV, runCli } from '../../support/archive-workload.js';
import { tempDir, TestServer } from '../../support/server.js';

/**
 * A segment larger than LARGE_SEGMENT_BYTES (one transaction of ~24 MiB of random pages) through
 * the archive and point-in-time restore (docs/ARCHITECTURE.md §2.6): a restore that reads it from
 * the shared log (chunk by chunk, src/restore/executor.ts), the compaction that bundles it (chunk
 * by chunk, src/compactor/compactor.ts), and offline restores from the object store alone, each
 * compared with the database by content and rolling checksum. Memory itself is measured by
 * `npm run bench -- memory`; this checks that the streamed paths give exact results.
 */
const servers: TestServer[] = [];
const dirs: string[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.stop('SIGKILL');
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Rows of 4,000 random bytes fill one 4 KiB page each: 6,000 of them are ~24 MiB of pages. */
const ROWS = 6000;
const ROW_BYTES = 4000;

/** Manual compaction only, every checkpoint archived, small bundles (the large segment closes its own). */
const SERVER_ENV = MANUAL_ARCHIVE_ENV;

/** What a restored copy must agree on: the table's shape and a digest of every row, read through SQL. */
const CONTENT = 'SELECT count(*), sum(length(b)), max(id), sum(unicode(substr(b, 1 + id % 4000, 1))) FROM big';

interface Point {
  position: bigint;
  timeMs: number;
  checksum: string;
  content: unknown[];
}

describe('a segment too large to read whole, archived and restored', () => {
  it('is restored from the shared log and from the archive to exactly the database it was part of', async () => {
    const dataDir = tempDir('litebase-large-archive-');
    const storeDir = tempDir('litebase-large-store-');
    const outputs = tempDir('litebase-large-restored-');
    dirs.push(dataDir, storeDir, outputs);
    const storeUrl = pathToFileURL(storeDir).href;
    const server = await TestServer.start({
      dataDir,
      readyTimeoutMs: 60_000,
      extraArgs: ['--object-store', storeUrl, '--statement-timeout-ms', '120000'],
      env: SERVER_ENV,
    });
    servers.push(server);
    const query = async (database: string, sql: string, params: unknown[] = []): Promise<{ position: bigint; rows: unknown[][] }> => {
      const response = await server.request('POST', `/v1/databases/${database}/query`, { statements: [{ sql, params }] });
      expect(response.status, JSON.stringify(response.body)).toBe(200);
      return { position: BigInt(response.body.position), rows: response.body.results[0].rows };
    };
    const point = async (position: bigint): Promise<Point> => {
      const { database } = (await server.request('GET', '/v1/databases/app')).body;
      expect(BigInt(database.position)).toBe(position);
      const content = (await query('app', CONTENT)).rows[0] as unknown[];
      const timeMs = Date.now();
      // Commit times are in milliseconds: the next write is committed after this point's time.
      await new Promise((resolve) => setTimeout(resolve, 5));
      return { position, timeMs, checksum: database.checksum as string, content };
    };

    expect((await server.request('POST', '/v1/databases', { name: 'app' })).status).toBe(201);
    await query('app', 'CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB)');
    const before = await point((await query('app', 'INSERT INTO big(b) VALUES (randomblob(10))')).position);
    const inserted = await query(
      'app',
      'WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ?) INSERT INTO big(b) SELECT randomblob(?) FROM s',
      [ROWS, ROW_BYTES],
    );
    const large = await point(inserted.position);
    const after = await point((await query('app', 'INSERT INTO big(b) VALUES (randomblob(20))')).position);
    const log = new LogDirectory(path.join(dataDir, 'databases', 'app', 'log'));
    expect(await log.size(large.position)).toBeGreaterThan(LARGE_SEGMENT_BYTES);

    const restoreThroughApi = async (target: string, body: Record<string, unknown>, expected: Point): Promise<void> => {
      const answer = await server.request('POST', '/v1/databases/app/restore', { ...body, target, wait: true });
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      expect(answer.body.restore.result.position).toBe(expected.position.toString());
      const { database } = (await server.request('GET', `/v1/databases/${target}`)).body;
      expect(database.checksum, target).toBe(expected.checksum);
      expect((await query(target, CONTENT)).rows[0], target).toEqual(expected.content);
    };

    // 1. Nothing archived yet: the restores read the shared log, the large segment chunk by chunk.
    await restoreThroughApi('from-log', { position: large.position.toString() }, large);
    await restoreThroughApi('from-log-time', { timestamp: new Date(large.timeMs).toISOString() }, large);

    // 2. A compaction bundles the large segment (streamed into its bundle) and trims the log.
    const compacted = await server.request('POST', '/v1/databases/app/compact');
    expect(compacted.status, JSON.stringify(compacted.body)).toBe(200);
    const report = compacted.body.compaction;
    expect(report.archived).toMatchObject({ first: '1', last: after.position.toString() });
    expect(report.deleted.last).toBe(after.position.toString());
    expect(server.output).not.toContain('archiving stops before it');
    const store = openObjectStore(storeUrl);
    try {
      const bundles: Array<{ key: string; size: number }> = [];
      for await (const info of store.list('databases/app/')) if (info.key.includes('/segments/')) bundles.push(info);
      // The large segment's pages are in the archive (random bytes do not compress).
      expect(bundles.some((bundle) => bundle.size > ROWS * ROW_BYTES)).toBe(true);
    } finally {
      await store.close();
    }

    // 3. Through the API again, now from the bundles, and offline from the object store alone.
    await restoreThroughApi('from-archive', { position: large.position.toString() }, large);
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
    const cases: Array<[string[], Point]> = [
      [['--position', large.position.toString()], large],
      [['--timestamp', new Date(large.timeMs).toISOString()], large],
      [['--timestamp', new Date(before.timeMs).toISOString()], before],
      [['--position', after.position.toString()], after],
    ];
    for (const [index, [args, expected]] of cases.entries()) {
      const output = path.join(outputs, `offline-${index}.sqlite`);
      const result = await runCli(['restore', 'app', ...args, '--object-store', storeUrl, '--output', output, '--json']);
      expect(result.code, result.stderr).toBe(0);
      const summary = JSON.parse(result.stdout) as { position: string; checksum: string };
      expect(summary, args.join(' ')).toMatchObject({ position: expected.position.toString(), checksum: expected.checksum });
      expect(await checksumAsWritten(output)).toBe(expected.checksum);
      expect(integrityCheck(output)).toBe('ok');
      const db = new Database(output, { readonly: true });
      try {
        expect(Object.values(db.prepare(CONTENT).get() as Record<string, unknown>), args.join(' ')).toEqual(expected.content);
      } finally {
        db.close();
      }
    }
  }, 240_000);
});
