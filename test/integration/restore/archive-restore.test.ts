import { LogDirectory } from '../../../src/log/log-directory.js';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointDirectory } from '../../../src/replay/checkpoints.js';
import { rangeKey } from '../../../src/archive/archive-keys.js';
import { decodeManifest, type ManifestRange } from '../../../src/format/checkpoint-manifest.js';
import type { ObjectStore } from '../../../src/storage/object-store.js';
import { openObjectStore } from '../../../src/storage/open-object-store.js';
import { S3rver } from '../../support/s3rver.js';
import { tempDir, TestServer } from '../../support/server.js';
import {
  checksumAsWritten,
  dumpFile,
  dumpRemote,
  integrityCheck,
  MANUAL_ARCHIVE_ENV,
  runCli,
  type Snapshot,
  waitFor,
  Workload,
} from '../../support/archive-workload.js';

/**
 * Compaction, archive and point-in-time restore end to end, against the folder store and against
 * s3rver (a real S3 protocol server in its own process): a random workload runs on a real server
 * while an in-process shadow SQLite database follows it; snapshots (position, time, rows, checksum)
 * are taken after every write; the database is compacted a few times along the way; then it is
 * restored to many of those points, through the API into new databases and offline with the CLI
 * into files, and every restore is compared with its snapshot row for row and by rolling checksum.
 * Finally the shared folder is wiped: the object store alone still restores everything archived.
 */

const BUCKET = 'litebase-test';
let s3rver: S3rver | undefined;
let storeCount = 0;

beforeAll(async () => {
  s3rver = await S3rver.start({ buckets: [BUCKET] });
});

afterAll(async () => {
  await s3rver?.stop();
});

interface Backend {
  name: string;
  /** A fresh store: its URL, the environment servers and the CLI need, and a handle for the test. */
  create(): { url: string; env: Record<string, string>; open(): ObjectStore; cleanup(): void };
}

const backends: Backend[] = [
  {
    name: 'file',
    create() {
      const dir = tempDir('litebase-archive-store-');
      const url = pathToFileURL(dir).href;
      return { url, env: {}, open: () => openObjectStore(url), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 's3rver',
    create() {
      const server = s3rver as S3rver;
      const url = `s3://${BUCKET}/archive-${process.pid}-${++storeCount}`;
      const env = {
        LITEBASE_S3_ENDPOINT: server.endpoint,
        LITEBASE_S3_REGION: 'us-east-1',
        LITEBASE_S3_FORCE_PATH_STYLE: 'true',
        LITEBASE_S3_ACCESS_KEY_ID: server.storeOptions.accessKeyId,
        LITEBASE_S3_SECRET_ACCESS_KEY: server.storeOptions.secretAccessKey,
      };
      return { url, env, open: () => openObjectStore(url, server.storeOptions), cleanup: () => undefined };
    },
  },
];

/**
 * Manual compaction only, small bundles (several per compaction), no background archiving, and
 * every checkpoint archived (LITEBASE_ARCHIVE_CHECKPOINT_PERCENT=0), so that restores start from
 * checkpoints as well as from position 1 (the default policy is tested in compact-replica).
 */
const SERVER_ENV = MANUAL_ARCHIVE_ENV;

async function keysUnder(store: ObjectStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of store.list(prefix)) keys.push(info.key);
  return keys;
}

function pick<T>(items: readonly T[], count: number): T[] {
  if (items.length <= count) return [...items];
  return Array.from({ length: count }, (_, i) => items[Math.round((i * (items.length - 1)) / (count - 1))] as T);
}

describe.each(backends)('archive and point-in-time restore: $name store', (backend) => {
  it('restores many points of a random workload exactly, through the API and offline, and from the store alone', async () => {
    const store = backend.create();
    const dataDir = tempDir('litebase-archive-');
    const outputs = tempDir('litebase-restored-');
    const objects = store.open();
    let server: TestServer | undefined;
    try {
      server = await TestServer.start({ dataDir, extraArgs: ['--object-store', store.url], env: { ...SERVER_ENV, ...store.env } });
      expect((await server.request('POST', '/v1/databases', { name: 'app' })).status).toBe(201);
      const databaseId = (await server.request('GET', '/v1/databases/app')).body.database.id as string;
      const workload = new Workload(server, 'app', 4242);
      const snapshots: Snapshot[] = [await workload.setup()];
      const compactedAt: bigint[] = [];

      // 1. The workload, compacted three times along the way.
      for (let step = 1; step <= 110; step++) {
        snapshots.push(await workload.step());
        if (step % 30 === 0) {
          const compacted = await server.request('POST', '/v1/databases/app/compact');
          expect(compacted.status, JSON.stringify(compacted.body)).toBe(200);
          const report = compacted.body.compaction;
          const last = snapshots.at(-1) as Snapshot;
          expect(report.checkpoint.position).toBe(last.position.toString());
          expect(report.archived.last).toBe(last.position.toString());
          expect(report.archived.objects.length).toBeGreaterThan(0);
          expect(report.deleted.last).toBe(last.position.toString());
          compactedAt.push(last.position);
        }
      }
      const last = snapshots.at(-1) as Snapshot;
      const logDir = path.join(dataDir, 'databases', 'app', 'log');
      // The shared log holds only what came after the last compaction; the newest checkpoint stays.
      const remaining = await new LogDirectory(logDir).positions();
      expect(remaining[0]).toBe((compactedAt.at(-1) as bigint) + 1n);
      // (A full checkpoint or a manifest with its ranges; older manifests go after a grace period.)
      const sharedCheckpoints = new CheckpointDirectory(path.join(dataDir, 'databases', 'app', 'checkpoints'));
      expect((await sharedCheckpoints.positions()).at(-1)).toBe(compactedAt.at(-1));
      expect(await sharedCheckpoints.legacyPositions()).not.toContain(compactedAt.at(-2));
      const archived = await keysUnder(objects, `databases/app/${databaseId}/`);
      expect(archived.filter((key) => key.endsWith('.ckpt') || key.includes('/manifests/'))).toHaveLength(3);
      expect(archived.filter((key) => key.endsWith('.seg')).length).toBeGreaterThan(3);
      expect(archived).toContain(`databases/app/${databaseId}/index.json`);

      // 2. Restore points: the archive and the log still on the shared folder.
      const points = await server.request('GET', '/v1/databases/app/restore-points');
      expect(points.status).toBe(200);
      expect(points.body.earliest.position).toBe('1');
      expect(points.body.latest.position).toBe(last.position.toString());
      expect(points.body.checkpoints.map((c: { position: string }) => c.position)).toEqual(compactedAt.map(String));

      // 3. Through the API into new databases: positions and timestamps, archive and shared log.
      const byPosition = pick(snapshots.slice(1), 6);
      const first = byPosition[0] as Snapshot;
      const started = await server.request('POST', '/v1/databases/app/restore', { position: first.position.toString() });
      expect(started.status, JSON.stringify(started.body)).toBe(202);
      expect(started.body.restore.target).toBe(`app-restored-${first.position}`);
      let job = started.body.restore;
      await waitFor(
        async () => {
          job = (await server!.request('GET', `/v1/databases/app/restores/${started.body.restore.id}`)).body.restore;
          return job.status !== 'running';
        },
        30_000,
        'the restore job',
      );
      expect(job.status, JSON.stringify(job)).toBe('succeeded');
      expect(job.progress).toMatchObject({ phase: 'done', percent: 100 });
      expect(job.result.position).toBe(first.position.toString());
      const restoredTargets: Array<[string, Snapshot]> = [[job.target, first]];
      for (const [index, snapshot] of byPosition.slice(1).entries()) {
        const answer = await server.request('POST', '/v1/databases/app/restore', {
          position: snapshot.position.toString(),
          target: `p${index}`,
          wait: true,
        });
        expect(answer.status, JSON.stringify(answer.body)).toBe(200);
        expect(answer.body.restore.result.position).toBe(snapshot.position.toString());
        restoredTargets.push([`p${index}`, snapshot]);
      }
      for (const [index, snapshot] of pick(snapshots.slice(2), 5).entries()) {
        const answer = await server.request('POST', '/v1/databases/app/restore', {
          timestamp: new Date(snapshot.timeMs).toISOString(),
          target: `t${index}`,
          wait: true,
        });
        expect(answer.status, JSON.stringify(answer.body)).toBe(200);
        expect(answer.body.restore.result.position).toBe(snapshot.position.toString());
        restoredTargets.push([`t${index}`, snapshot]);
      }
      for (const [name, snapshot] of restoredTargets) {
        const info = (await server.request('GET', `/v1/databases/${name}`)).body.database;
        expect(info.checksum, `${name} (position ${snapshot.position})`).toBe(snapshot.checksum);
        expect(await dumpRemote(server, name), `${name} (position ${snapshot.position})`).toBe(snapshot.dump);
      }
      // A restored database is an ordinary one: it takes writes.
      const write = await server.request('POST', '/v1/databases/p0/query', { statements: [{ sql: 'CREATE TABLE after_restore(x)' }] });
      expect(write.status).toBe(200);
      expect(write.body.position).toBe('2');
      // Refusals: an existing target, a point outside the history, a malformed request.
      expect((await server.request('POST', '/v1/databases/app/restore', { position: '3', target: 'p0' })).status).toBe(409);
      const outside = await server.request('POST', '/v1/databases/app/restore', { position: String(last.position + 5n) });
      expect(outside.status).toBe(400);
      expect(outside.body.error.code).toBe('RESTORE_OUT_OF_RANGE');
      const early = await server.request('POST', '/v1/databases/app/restore', {
        timestamp: new Date(snapshots[0]!.timeMs - 60_000).toISOString(),
      });
      expect(early.body.error.code).toBe('RESTORE_OUT_OF_RANGE');
      expect(
        (await server.request('POST', '/v1/databases/app/restore', { position: '3', timestamp: new Date().toISOString() })).status,
      ).toBe(400);
      expect((await server.request('POST', '/v1/databases/app/restore', { timestamp: 'yesterday' })).body.error.code).toBe(
        'INVALID_TIMESTAMP',
      );
      expect((await server.request('POST', '/v1/databases/nope/restore', { position: '1' })).status).toBe(404);

      // 4. Archive everything, then offline restores with the CLI straight from the store.
      const final = await server.request('POST', '/v1/databases/app/compact');
      expect(final.body.compaction.archivedThrough).toBe(last.position.toString());
      const cli = (args: string[]) => runCli(['restore', 'app', ...args, '--object-store', store.url], store.env);
      const offline: Array<[string[], Snapshot]> = [
        ...pick(snapshots.slice(1), 3).map((s): [string[], Snapshot] => [['--position', s.position.toString()], s]),
        ...pick(snapshots.slice(5), 2).map((s): [string[], Snapshot] => [['--timestamp', new Date(s.timeMs).toISOString()], s]),
      ];
      for (const [index, [args, snapshot]] of offline.entries()) {
        const output = path.join(outputs, `offline-${index}.sqlite`);
        const result = await cli([...args, '--output', output, '--json']);
        expect(result.code, result.stderr).toBe(0);
        const summary = JSON.parse(result.stdout);
        expect(summary.position).toBe(snapshot.position.toString());
        expect(summary.checksum).toBe(snapshot.checksum);
        expect(result.stderr).toMatch(/restore app: 100\.0% done, .* segments, position \d+/);
        expect(integrityCheck(output)).toBe('ok');
        expect(dumpFile(output)).toBe(snapshot.dump);
        expect(await checksumAsWritten(output)).toBe(snapshot.checksum);
      }
      // An existing output is not overwritten without --force.
      const taken = path.join(outputs, 'offline-0.sqlite');
      expect((await cli(['--position', '2', '--output', taken])).code).toBe(1);

      // 5. The shared folder is lost: the object store alone restores up to the last archived position.
      await server.stop();
      server = undefined;
      rmSync(dataDir, { recursive: true, force: true });
      const fromStore = path.join(outputs, 'from-store.sqlite');
      const latest = await cli(['--timestamp', new Date(Date.now() + 60_000).toISOString(), '--output', fromStore, '--json']);
      expect(latest.code, latest.stderr).toBe(0);
      expect(JSON.parse(latest.stdout)).toMatchObject({
        position: last.position.toString(),
        checksum: last.checksum,
        clampedToLatest: true,
      });
      expect(latest.stderr).toContain('the archive ends at position');
      expect(dumpFile(fromStore)).toBe(last.dump);
      const middle = snapshots[Math.floor(snapshots.length / 2)] as Snapshot;
      const middleFile = path.join(outputs, 'middle.sqlite');
      const restoredMiddle = await cli(['--position', middle.position.toString(), '--output', middleFile]);
      expect(restoredMiddle.code, restoredMiddle.stderr).toBe(0);
      expect(restoredMiddle.stdout).toContain(`restored app to position ${middle.position}`);
      expect(dumpFile(middleFile)).toBe(middle.dump);

      // 6. A damaged archive object is refused with its key named, and nothing is written. (A
      // bundle's header and tables are checked when it is opened, its images as they are decoded:
      // damage in the segment table is found by any restore that reads the bundle.)
      const bundles = (await keysUnder(objects, `databases/app/${databaseId}/segments/`)).sort();
      const victim = bundles[0] as string;
      const bytes = await objects.get(victim);
      bytes[64 + 20]! ^= 0x20;
      await objects.put(victim, bytes);
      const damagedOutput = path.join(outputs, 'damaged.sqlite');
      const damaged = await cli(['--position', '3', '--output', damagedOutput]);
      expect(damaged.code).toBe(1);
      expect(damaged.stderr).toContain('ARCHIVE_CORRUPT');
      expect(damaged.stderr).toContain(victim);
      expect(existsSync(damagedOutput)).toBe(false);
      // A damaged checkpoint, with the index gone too (rebuilt from the listing): a legacy
      // checkpoint's own trailer catches it, a range file its manifest's SHA-256; the error names its key.
      const checkpoints = (await keysUnder(objects, `databases/app/${databaseId}/checkpoints/`)).sort();
      const manifests = (await keysUnder(objects, `databases/app/${databaseId}/manifests/`)).sort();
      const newestManifest = manifests.at(-1);
      const checkpointKey =
        newestManifest === undefined
          ? (checkpoints.at(-1) as string)
          : rangeKey(
              'app',
              databaseId,
              (decodeManifest(await objects.get(newestManifest), newestManifest).ranges[0] as ManifestRange).file,
            );
      const checkpointBytes = await objects.get(checkpointKey);
      checkpointBytes[checkpointBytes.length - 20]! ^= 0x01;
      await objects.put(checkpointKey, checkpointBytes);
      await objects.delete([`databases/app/${databaseId}/index.json`]);
      const damagedCheckpoint = await cli(['--position', last.position.toString(), '--output', damagedOutput]);
      expect(damagedCheckpoint.code).toBe(1);
      expect(damagedCheckpoint.stderr).toContain('ARCHIVE_CORRUPT');
      expect(damagedCheckpoint.stderr).toContain(checkpointKey);
      expect(existsSync(damagedOutput)).toBe(false);
      expect(readdirSync(outputs).filter((name) => name.startsWith('.'))).toEqual([]);
    } finally {
      await server?.stop();
      await objects.close();
      rmSync(dataDir, { recursive: true, force: true });
      rmSync(outputs, { recursive: true, force: true });
      store.cleanup();
    }
  }, 180_000);
});

describe('object store at start', () => {
  it('refuses to start when the bucket is missing, and says which', async () => {
    const dataDir = tempDir('litebase-archive-bad-');
    const server = s3rver as S3rver;
    try {
      const error = await TestServer.start({
        dataDir,
        extraArgs: ['--object-store', 's3://no-such-bucket/x'],
        env: {
          LITEBASE_S3_ENDPOINT: server.endpoint,
          LITEBASE_S3_ACCESS_KEY_ID: server.storeOptions.accessKeyId,
          LITEBASE_S3_SECRET_ACCESS_KEY: server.storeOptions.secretAccessKey,
        },
      }).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      // The process ends (not "not ready after 20000 ms" with the code in its output).
      expect(error?.message).toMatch(/^server exited early \(1\)/);
      expect(error?.message).toContain('OBJECT_STORE_BUCKET_MISSING');
      expect(error?.message).toContain('no-such-bucket');
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
