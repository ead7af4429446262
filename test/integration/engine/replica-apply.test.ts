import { copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/config.js';
import { decodeSegment, decodeSegmentHeader, encodeSegment } from '../../../src/format/segment-codec.js';
import { ReplicaDatabase } from '../../../src/engine/replica-database.js';
import { Metrics } from '../../../src/metrics.js';
import type { DatabaseMeta } from '../../../src/storage/catalog.js';
import { LocalLayout, SharedLayout } from '../../../src/storage/layout.js';
import { tempDir, TestServer } from '../../support/server.js';
import { waitFor } from '../../support/wait.js';

/**
 * A replica tails a log it is handed segment by segment: it applies good segments in order,
 * refuses a corrupt one (reported, counted, never applied), and goes on once a good copy appears.
 */
const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** A second shared folder holding the source's catalog entry, and a replica opened on it. */
async function replicaOnCopy(
  sourceDataDir: string,
  deliverFirst: (logDir: string) => void,
  settings: { replicaPollMs?: number; replicaWatch?: boolean } = {},
) {
  const dataDir = tempDir('litebase-replica-');
  cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const shared = new SharedLayout(dataDir);
  mkdirSync(shared.logDir('app'), { recursive: true });
  copyFileSync(path.join(sourceDataDir, 'databases', 'app', 'database.json'), shared.databaseFile('app'));
  const meta = JSON.parse(readFileSync(shared.databaseFile('app'), 'utf8')) as DatabaseMeta;
  deliverFirst(shared.logDir('app'));
  const config = loadConfig({ dataDir, localDir: path.join(dataDir, 'local'), replicaPollMs: 50, ...settings }, {});
  const metrics = new Metrics({ collectDefaults: false });
  const replica = await ReplicaDatabase.open({
    meta,
    shared,
    local: new LocalLayout(config.localDir),
    settings: config,
    logger: pino({ level: 'silent' }),
    metrics,
  });
  cleanup.push(() => replica.close());
  return { replica, metrics, logDir: shared.logDir('app'), dataDir };
}

/**
 * A real Primary runs `statements`, one request each (one segment each, as segment files: the
 * format these tests take apart, docs/FORMAT.md §1.1), then stops: its rows, checksum and log.
 */
async function sourceHistory(statements: ReadonlyArray<{ sql: string; params?: unknown[] }>) {
  const source = await TestServer.start({ env: { LITEBASE_LOG_FORMAT: 'segments' } });
  cleanup.push(() => source.cleanup());
  await source.request('POST', '/v1/databases', { name: 'app' });
  await source.request('POST', '/v1/databases/app/query', { statements: [{ sql: 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)' }] });
  for (const statement of statements) await source.request('POST', '/v1/databases/app/query', { statements: [statement] });
  const expectedRows = (await source.request('POST', '/v1/databases/app/query', { statements: [{ sql: 'SELECT * FROM t ORDER BY id' }] }))
    .body.results[0].rows;
  const expectedChecksum = (await source.request('GET', '/v1/databases/app')).body.database.checksum;
  await source.stop();
  const sourceLog = path.join(source.dataDir, 'databases', 'app', 'log');
  const segments = readdirSync(sourceLog)
    .filter((name) => name.endsWith('.seg'))
    .sort();
  return { source, expectedRows, expectedChecksum, sourceLog, segments };
}

const inserts = (rows: readonly string[]) => rows.map((row) => ({ sql: 'INSERT INTO t(v) VALUES (?)', params: [row] }));

describe('replica apply', () => {
  it('applies segments in order, refuses a corrupt one, and recovers when a good copy arrives', async () => {
    // 1. A real Primary writes a history, then stops.
    const { source, expectedRows, expectedChecksum, sourceLog, segments } = await sourceHistory(
      inserts(Array.from({ length: 10 }, (_, i) => `v${i}`.repeat(300))),
    );
    expect(segments).toHaveLength(11);

    // 2. A second shared folder that receives the log piece by piece.
    let replicaLog = '';
    const deliver = (name: string, bytes?: Buffer) => {
      const temp = path.join(replicaLog, `.incoming-${name}`);
      writeFileSync(temp, bytes ?? readFileSync(path.join(sourceLog, name)));
      renameSync(temp, path.join(replicaLog, name));
    };
    const { replica, metrics } = await replicaOnCopy(source.dataDir, (logDir) => {
      replicaLog = logDir;
      for (const name of segments.slice(0, 5)) deliver(name);
    });
    expect(replica.position).toBe(5n);

    // 3. Segment 6 arrives corrupted: reported, counted, never applied.
    const good = readFileSync(path.join(sourceLog, segments[5]!));
    const bad = Buffer.from(good);
    bad[Math.floor(bad.length / 2)]! ^= 0x40;
    deliver(segments[5]!, bad);
    await waitFor(() => replica.lastError !== undefined, 5000, 'the corrupt segment to be reported', 20);
    expect(replica.lastError).toMatchObject({ position: '6', code: 'SEGMENT_CHECKSUM_MISMATCH' });
    expect(replica.lastError?.message).toContain(segments[5]!);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(replica.position).toBe(5n);
    expect(await metrics.registry.getSingleMetricAsString('litebase_corrupt_segments_total')).toMatch(
      /code="SEGMENT_CHECKSUM_MISMATCH"\} 1/,
    );

    // 4. A good copy replaces it, the rest follows: the replica ends where the Primary did.
    deliver(segments[5]!, good);
    for (const name of segments.slice(6)) deliver(name);
    await waitFor(() => replica.position === 11n, 5000, 'position 11', 20);
    expect(replica.lastError).toBeUndefined();
    const { results } = await replica.query([{ sql: 'SELECT * FROM t' }]);
    expect(results[0]!.rows).toEqual(expectedRows);
    expect(replica.checksum).toBe(expectedChecksum);
    // A write is not for a replica.
    await expect(replica.query([{ sql: "INSERT INTO t(v) VALUES ('x')" }])).rejects.toMatchObject({ code: 'NEEDS_PRIMARY' });
  });

  it('catches up a long backlog in runs, reading ahead on a worker, and ends equal to the Primary', async () => {
    // One writer at a time: one segment per transaction, 600 of them (more than one run of 512).
    const { source, expectedRows, expectedChecksum, sourceLog, segments } = await sourceHistory(
      Array.from({ length: 600 }, (_, i) =>
        i % 100 === 99
          ? { sql: 'DELETE FROM t WHERE id % 3 = 0' }
          : { sql: 'INSERT INTO t(v) VALUES (?)', params: [`row-${i}-`.repeat(1 + (i % 40))] },
      ),
    );
    expect(segments.length).toBeGreaterThan(550);

    let replicaLog = '';
    const deliver = (name: string) => copyFileSync(path.join(sourceLog, name), path.join(replicaLog, name));
    const { replica } = await replicaOnCopy(source.dataDir, (logDir) => {
      replicaLog = logDir;
      for (const name of segments.slice(0, 3)) deliver(name);
    });
    expect(replica.position).toBe(3n);

    // The rest lands at once, as after a replica was paused: it must apply all of it, in order.
    for (const name of segments.slice(3)) deliver(name);
    const last = BigInt(segments.length);
    await waitFor(() => replica.position === last, 30_000, `position ${last}`, 20);
    expect(replica.lastError).toBeUndefined();
    expect(replica.checksum).toBe(expectedChecksum);
    const { results } = await replica.query([{ sql: 'SELECT * FROM t ORDER BY id' }]);
    expect(results[0]!.rows).toEqual(expectedRows);
  });

  it('applies the segments a nudge carries without reading the log, and reads the log for anything it cannot use', async () => {
    const {
      source,
      expectedRows,
      expectedChecksum,
      sourceLog,
      segments: names,
    } = await sourceHistory(inserts(Array.from({ length: 9 }, (_, i) => `n${i}`)));
    expect(names).toHaveLength(10);
    const bytesOf = (position: number): Buffer => readFileSync(path.join(sourceLog, names[position - 1]!));
    const { term } = decodeSegmentHeader(bytesOf(1));

    let replicaLog = '';
    const deliver = (position: number) => writeFileSync(path.join(replicaLog, names[position - 1]!), bytesOf(position));
    // Neither a watcher nor a poll looks at the log during the test: only nudges do.
    const { replica, metrics } = await replicaOnCopy(
      source.dataDir,
      (logDir) => {
        replicaLog = logDir;
        for (let position = 1; position <= 3; position++) deliver(position);
      },
      { replicaPollMs: 600_000, replicaWatch: false },
    );
    expect(replica.position).toBe(3n);
    const counted = async (outcome: string): Promise<number> => {
      const text = await metrics.registry.getSingleMetricAsString('litebase_replica_nudged_segments_total');
      return Number(new RegExp(`outcome="${outcome}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
    };

    // 1. Segments 4 and 5 come in a nudge only (the replica's log does not have them): applied.
    replica.nudge([bytesOf(4), bytesOf(5)]);
    await waitFor(() => replica.position === 5n, 5000, 'position 5 from the nudge', 20);
    expect(await counted('applied')).toBe(2);

    /** A nudge carrying `segment` for `position` leaves the replica where it was; the log's copy is applied. */
    const refusedThenReadFromLog = async (segment: Buffer, position: number, unused: number): Promise<void> => {
      replica.nudge([segment]);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(replica.position).toBe(BigInt(position - 1));
      expect(await counted('unused')).toBe(unused);
      deliver(position);
      replica.nudge();
      await waitFor(() => replica.position === BigInt(position), 5000, `position ${position} from the log`, 20);
    };

    // 2. A damaged segment in a nudge is never applied; the log's good copy is.
    const bad = Buffer.from(bytesOf(6));
    bad[bad.length - 20]! ^= 0x40;
    await refusedThenReadFromLog(bad, 6, 1);

    // 3. A carried segment of a term older than one applied is never taken (it could only come from
    // a Primary that was replaced); the log decides. Segment 7 as an older term would have written it:
    const seven = decodeSegment(bytesOf(7));
    expect(term).toBeGreaterThan(0n);
    const older = encodeSegment({ ...seven.header, term: term - 1n }, seven.pages);
    await refusedThenReadFromLog(older, 7, 2);

    // 4. A gap: 9 and 10 wait in memory while 8 is missing, and follow once 8 is read from the log.
    replica.nudge([bytesOf(9), bytesOf(10)]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(replica.position).toBe(7n);
    deliver(8);
    replica.nudge();
    await waitFor(() => replica.position === 10n, 5000, 'position 10', 20);
    expect(await counted('applied')).toBe(4);
    const { results } = await replica.query([{ sql: 'SELECT * FROM t' }]);
    expect(results[0]!.rows).toEqual(expectedRows);
    expect(replica.checksum).toBe(expectedChecksum);
  });
});
