import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { LogDirectory } from '../../../src/log/log-directory.js';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadConfig, type LitebaseConfig } from '../../../src/config/config.js';
import { PrimaryDatabase } from '../../../src/engine/primary-database.js';
import { ReplicaDatabase } from '../../../src/engine/replica-database.js';
import type { LitebaseError } from '../../../src/errors.js';
import { formatChecksum } from '../../../src/format/rolling-checksum.js';
import { decodeSegmentHeader } from '../../../src/format/segment-codec.js';
import { Metrics } from '../../../src/metrics.js';
import { DatabaseCatalog, type DatabaseMeta } from '../../../src/storage/catalog.js';
import { LocalLayout, SharedLayout } from '../../../src/storage/layout.js';
import { waitFor } from '../../support/wait.js';

/**
 * PrimaryDatabase (src/engine/primary-database.ts) write -> crash -> recover, in this process, on a
 * temporary folder, wired as src/node/node-databases.ts wires it (catalog entry, shared and local
 * layouts, settings from loadConfig). A crash is a local copy left behind with commits in its WAL
 * that never reached the log, or a local copy that is gone, or a copy of the local files taken
 * while segments were still on their way (what kill -9 leaves). After each, a Primary opened on the
 * same shared folder must hold every acknowledged row and nothing else, at the same position with
 * the same rolling checksum as the log; and a Replica opened on that folder must end equal to it.
 */
const work = mkdtempSync(path.join(tmpdir(), 'litebase-primary-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

const logger = pino({ level: 'silent' });
let folders = 0;

interface Node {
  dataDir: string;
  config: LitebaseConfig;
  shared: SharedLayout;
  local: LocalLayout;
}

/** A node's folders: the shared one (log, catalog) and a local one (the page cache). */
function node(dataDir = path.join(work, `shared-${++folders}`), localDir = path.join(work, `local-${++folders}`)): Node {
  mkdirSync(dataDir, { recursive: true });
  const config = loadConfig({ dataDir, localDir, replicaPollMs: 50 }, {});
  return { dataDir, config, shared: new SharedLayout(config.dataDir), local: new LocalLayout(config.localDir) };
}

async function openPrimary(at: Node, meta: DatabaseMeta, term: bigint, canWrite: () => boolean = () => true): Promise<PrimaryDatabase> {
  const primary = await PrimaryDatabase.open({
    meta,
    shared: at.shared,
    local: at.local,
    settings: at.config,
    logger,
    metrics: new Metrics({ collectDefaults: false }),
    term,
    canWrite,
  });
  cleanup.push(() => primary.close());
  return primary;
}

async function openReplica(at: Node, meta: DatabaseMeta): Promise<ReplicaDatabase> {
  const replica = await ReplicaDatabase.open({
    meta,
    shared: at.shared,
    local: at.local,
    settings: at.config,
    logger,
    metrics: new Metrics({ collectDefaults: false }),
  });
  cleanup.push(() => replica.close());
  return replica;
}

/** A new database `app` with table t, on a fresh shared folder. */
async function newDatabase(canWrite?: () => boolean): Promise<{ at: Node; meta: DatabaseMeta; primary: PrimaryDatabase }> {
  const at = node();
  const meta = await new DatabaseCatalog(at.shared).create('app');
  const primary = await openPrimary(at, meta, 1n, canWrite);
  await primary.query([{ sql: 'CREATE TABLE t(id INTEGER PRIMARY KEY, writer TEXT, payload TEXT)' }], 'transaction');
  return { at, meta, primary };
}

const insert = (writer: string, i: number) => ({
  sql: 'INSERT INTO t(writer, payload) VALUES (?, ?)',
  params: [`${writer}-${i}`, 'p'.repeat(50 + ((i * 37) % 3000))],
});

/**
 * Acknowledged writes of several kinds at once: single-statement transactions sent together (they
 * share segments), multi-statement transactions, independent statements and an interactive
 * transaction. Returns the `writer` values of every row whose write was answered.
 */
async function acknowledgedWrites(primary: PrimaryDatabase, prefix: string): Promise<string[]> {
  const rows: string[] = [];
  const singles = Array.from({ length: 30 }, (_, i) =>
    primary.query([insert(prefix, i)], 'transaction').then(({ position }) => {
      expect(position).toBeGreaterThan(0n);
      rows.push(`${prefix}-${i}`);
    }),
  );
  const multis = Array.from({ length: 5 }, (_, k) =>
    primary
      .query([insert(`${prefix}m`, 2 * k), insert(`${prefix}m`, 2 * k + 1)], 'transaction')
      .then(() => rows.push(`${prefix}m-${2 * k}`, `${prefix}m-${2 * k + 1}`)),
  );
  const independent = primary
    .query([insert(`${prefix}i`, 0), { sql: 'INSERT INTO nowhere VALUES (1)' }, insert(`${prefix}i`, 1)], 'independent')
    .then(({ results }) => {
      expect(results.map((result) => ('error' in result ? result.error.code : 'ok'))).toEqual(['ok', 'SQLITE_ERROR', 'ok']);
      rows.push(`${prefix}i-0`, `${prefix}i-1`);
    });
  await Promise.all([...singles, ...multis, independent]);
  const { id } = await primary.beginTransaction(5000);
  await primary.transactionQuery(id, [
    insert(`${prefix}x`, 0),
    { sql: "UPDATE t SET payload = 'updated' WHERE writer = ?", params: [`${prefix}-3`] },
  ]);
  expect(await primary.commitTransaction(id)).toBe(primary.position);
  rows.push(`${prefix}x-0`);
  return rows.sort();
}

async function writersIn(engine: PrimaryDatabase | ReplicaDatabase): Promise<string[]> {
  const sql = 'SELECT writer FROM t ORDER BY writer';
  const { results } = engine instanceof PrimaryDatabase ? await engine.query([{ sql }], 'transaction') : await engine.query([{ sql }]);
  const [result] = results;
  if (!result || 'error' in result) throw new Error(`SELECT failed: ${JSON.stringify(result)}`);
  return result.rows.map(([writer]) => writer as string);
}

/** The position and checksum the newest segment in the log ends at. */
/**
 * The newest segment of the log as any node reads it (segment files or term log records), read
 * synchronously: what the log holds at this very moment, with no append finishing meanwhile.
 */
function logHead(at: Node): { position: bigint; checksum: string } {
  const log = new LogDirectory(at.shared.logDir('app'));
  const scratch = Buffer.alloc(1 << 20);
  let newest: { position: bigint; checksum: string } = { position: 0n, checksum: formatChecksum(0n) };
  for (let position = 1n; ; position++) {
    let bytes: Buffer | undefined;
    try {
      bytes = log.readSyncInto(position, scratch);
    } catch {
      return newest;
    }
    if (!bytes) return newest;
    newest = { position, checksum: formatChecksum(bytes.readBigUInt64BE(72)) };
  }
}

/** The writers in a local copy as SQLite itself reads it, WAL included (opened as a copy, so the original stays as it is). */
function writersInLocalFiles(databaseDir: string): string[] {
  const scratch = mkdtempSync(path.join(work, 'look-'));
  for (const name of ['db.sqlite', 'db.sqlite-wal']) {
    if (existsSync(path.join(databaseDir, name))) copyFileSync(path.join(databaseDir, name), path.join(scratch, name));
  }
  const db = new Database(path.join(scratch, 'db.sqlite'), { fileMustExist: true });
  try {
    return (db.prepare('SELECT writer FROM t ORDER BY writer').all() as Array<{ writer: string }>).map((row) => row.writer);
  } finally {
    db.close();
  }
}

/** A Replica on the same shared folder (its own local folder) reaches the Primary's state. */
async function expectReplicaEqual(at: Node, meta: DatabaseMeta, primary: PrimaryDatabase, rows: string[]): Promise<void> {
  const replica = await openReplica(node(at.dataDir), meta);
  await waitFor(() => replica.position === primary.position, 10_000, `the replica at position ${primary.position}`, 20);
  expect(replica.checksum).toBe(primary.checksum);
  expect(await writersIn(replica)).toEqual(rows);
}

describe('PrimaryDatabase write, crash, recover', () => {
  it('rolls back commits that never reached the log when it was closed without a checkpoint', async () => {
    let leased = true;
    const { at, meta, primary } = await newDatabase(() => leased);
    const acknowledged = await acknowledgedWrites(primary, 'a');
    const before = { position: primary.position, checksum: primary.checksum };
    expect(before).toEqual(logHead(at));

    // Commits that are in the local WAL but whose segment is never written: the lease is gone
    // before the flush. Their writers are told so; they must never turn up.
    const unacknowledged = Array.from({ length: 5 }, (_, i) => primary.query([insert('lost', i)], 'transaction'));
    leased = false;
    const refused = await Promise.allSettled(unacknowledged);
    expect(refused.map((outcome) => (outcome.status === 'rejected' ? (outcome.reason as LitebaseError).code : 'answered'))).toEqual(
      Array(5).fill('LEASE_LOST'),
    );
    await primary.close();
    expect(existsSync(`${at.local.sqliteFile('app')}-wal`), 'close() left the WAL unfolded').toBe(true);
    // What the crash left behind: the local copy holds the lost commits, the log does not.
    expect(writersInLocalFiles(at.local.databaseDir('app'))).toEqual(
      [...acknowledged, ...Array.from({ length: 5 }, (_, i) => `lost-${i}`)].sort(),
    );
    expect(logHead(at)).toEqual(before);

    const reopened = await openPrimary(at, meta, 2n);
    expect({ position: reopened.position, checksum: reopened.checksum }).toEqual(before);
    expect(await writersIn(reopened)).toEqual(acknowledged);
    // It writes on from there.
    await reopened.query([insert('after', 0)], 'transaction');
    expect(reopened.position).toBe(before.position + 1n);
    expect({ position: reopened.position, checksum: reopened.checksum }).toEqual(logHead(at));
    await expectReplicaEqual(at, meta, reopened, [...acknowledged, 'after-0'].sort());
  });

  it('rebuilds a deleted local copy from the log alone', async () => {
    const { at, meta, primary } = await newDatabase();
    const acknowledged = await acknowledgedWrites(primary, 'b');
    const before = { position: primary.position, checksum: primary.checksum };
    await primary.close();
    rmSync(at.local.sqliteFile('app'));

    const reopened = await openPrimary(at, meta, 2n);
    expect({ position: reopened.position, checksum: reopened.checksum }).toEqual(before);
    expect(before).toEqual(logHead(at));
    expect(await writersIn(reopened)).toEqual(acknowledged);
    await expectReplicaEqual(at, meta, reopened, acknowledged);
  });

  it('catches up a local copy that a crash left behind the log (commits still on their way to it)', async () => {
    const { at, meta, primary: first } = await newDatabase();
    const early = await acknowledgedWrites(first, 'c');
    await first.close();
    // Without group commit a write commits locally at once, in the request's own turn of the event
    // loop, and its segment is sent from the next one (with it, a write group commits and sends in
    // the same callback, leaving no turn in between to copy the files in). The local files copied
    // now are what kill -9 at this moment leaves: a WAL holding a commit the log does not have yet.
    const primary = await openPrimary({ ...at, config: { ...at.config, groupCommit: false } }, meta, 2n);
    const inFlight = Array.from({ length: 10 }, (_, i) => primary.query([insert('late', i)], 'transaction'));
    const crashed = node(at.dataDir);
    const from = at.local.databaseDir('app');
    const to = crashed.local.databaseDir('app');
    mkdirSync(to, { recursive: true });
    for (const name of readdirSync(from)) copyFileSync(path.join(from, name), path.join(to, name));
    // The first late write committed; the others wait for the write lock, held until it is durable.
    expect(writersInLocalFiles(to)).toEqual([...early, 'late-0'].sort());
    const logAtCrash = logHead(at);
    // The old process would have gone on: its segments reach the log, and its writers are answered.
    await Promise.all(inFlight);
    const acknowledged = [...early, ...Array.from({ length: 10 }, (_, i) => `late-${i}`)].sort();
    const before = { position: primary.position, checksum: primary.checksum };
    expect(before.position, 'the late commits were not in the log when the copy was taken').toBeGreaterThan(logAtCrash.position);
    await primary.close();

    const reopened = await openPrimary(crashed, meta, 3n);
    expect({ position: reopened.position, checksum: reopened.checksum }).toEqual(before);
    expect(await writersIn(reopened)).toEqual(acknowledged);
    await expectReplicaEqual(at, meta, reopened, acknowledged);
  });
});

/**
 * Write groups (docs/ARCHITECTURE.md §5.4): the writes of one turn of the event loop share one
 * SQLite transaction, each in its own savepoint. Each must still succeed or fail on its own, as if
 * it had run alone.
 */
describe('write groups', () => {
  const rowsOf = async (primary: PrimaryDatabase, sql = 'SELECT writer FROM t ORDER BY writer'): Promise<unknown[][]> => {
    const [result] = (await primary.query([{ sql }], 'transaction')).results;
    if (!result || 'error' in result) throw new Error(`SELECT failed: ${JSON.stringify(result)}`);
    return result.rows;
  };
  const outcome = (query: Promise<unknown>): Promise<string> =>
    query.then(
      () => 'ok',
      (error: LitebaseError) => error.code,
    );

  it('answers the writes of one turn with one segment that counts each of them', async () => {
    const { at, primary } = await newDatabase();
    const start = primary.position;
    const positions = await Promise.all(
      Array.from({ length: 20 }, (_, i) => primary.query([insert('g', i)], 'transaction').then(({ position }) => position)),
    );
    expect(new Set(positions)).toEqual(new Set([start + 1n]));
    expect(logHead(at).position).toBe(start + 1n);
    const segment = new LogDirectory(at.shared.logDir('app')).readSyncInto(start + 1n, Buffer.alloc(1 << 20));
    expect(segment && decodeSegmentHeader(segment).transactionCount).toBe(20);
    expect(await writersIn(primary)).toEqual(Array.from({ length: 20 }, (_, i) => `g-${i}`).sort());
  });

  it('fails a write whose statement fails without touching the others of its group', async () => {
    const { at, meta, primary } = await newDatabase();
    await primary.query([{ sql: 'CREATE UNIQUE INDEX one_writer ON t(writer)' }], 'transaction');
    const outcomes = await Promise.all([
      outcome(primary.query([insert('a', 0)], 'transaction')),
      // Its first INSERT succeeds, its second breaks the index: neither row may stay.
      outcome(primary.query([insert('b', 0), insert('a', 0)], 'transaction')),
      outcome(primary.query([insert('c', 0), insert('c', 1)], 'transaction')),
      outcome(primary.query([{ sql: 'INSERT INTO nowhere VALUES (1)' }], 'transaction')),
      outcome(primary.query([insert('d', 0)], 'transaction')),
    ]);
    expect(outcomes).toEqual(['ok', 'SQLITE_CONSTRAINT_UNIQUE', 'ok', 'SQLITE_ERROR', 'ok']);
    const acknowledged = ['a-0', 'c-0', 'c-1', 'd-0'];
    expect(await writersIn(primary)).toEqual(acknowledged);
    await expectReplicaEqual(at, meta, primary, acknowledged);
  });

  it('runs a write that can roll back a whole transaction alone (OR ROLLBACK)', async () => {
    const { primary } = await newDatabase();
    await primary.query([{ sql: 'CREATE UNIQUE INDEX one_writer ON t(writer)' }], 'transaction');
    const outcomes = await Promise.all([
      outcome(primary.query([insert('a', 0)], 'transaction')),
      outcome(primary.query([{ sql: "INSERT OR ROLLBACK INTO t(writer) VALUES ('a-0')" }], 'transaction')),
      outcome(primary.query([insert('b', 0)], 'transaction')),
    ]);
    expect(outcomes).toEqual(['ok', 'SQLITE_CONSTRAINT_UNIQUE', 'ok']);
    expect(await writersIn(primary)).toEqual(['a-0', 'b-0']);
  });

  it('writes alone while the schema can roll back a transaction or defer a check to COMMIT', async () => {
    const { primary } = await newDatabase();
    await primary.query(
      [
        { sql: "CREATE TRIGGER no_x BEFORE INSERT ON t WHEN NEW.writer LIKE 'x%' BEGIN SELECT RAISE(ROLLBACK, 'no x'); END" },
        { sql: 'CREATE TABLE parent(id INTEGER PRIMARY KEY)' },
        { sql: 'CREATE TABLE child(id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)' },
      ],
      'transaction',
    );
    const outcomes = await Promise.all([
      outcome(primary.query([insert('a', 0)], 'transaction')),
      outcome(primary.query([insert('x', 0)], 'transaction')),
      outcome(primary.query([{ sql: 'INSERT INTO child VALUES (1, 42)' }], 'transaction')),
      outcome(primary.query([insert('b', 0)], 'transaction')),
      outcome(primary.query([{ sql: 'INSERT INTO parent VALUES (7)' }, { sql: 'INSERT INTO child VALUES (2, 7)' }], 'transaction')),
    ]);
    expect(outcomes).toEqual(['ok', 'SQLITE_CONSTRAINT_TRIGGER', 'SQLITE_CONSTRAINT_FOREIGNKEY', 'ok', 'ok']);
    expect(await writersIn(primary)).toEqual(['a-0', 'b-0']);
    expect(await rowsOf(primary, 'SELECT id, parent FROM child')).toEqual([[2, 7]]);
  });

  it('runs the writes before a statement that ended the group transaction again, alone', async () => {
    const at = node();
    const meta = await new DatabaseCatalog(at.shared).create('app');
    const primary = await openPrimary(
      { ...at, config: { ...at.config, limits: { ...at.config.limits, statementTimeoutMs: 200 } } },
      meta,
      1n,
    );
    await primary.query([{ sql: 'CREATE TABLE t(id INTEGER PRIMARY KEY, writer TEXT, payload TEXT)' }], 'transaction');
    const outcomes = await Promise.all([
      outcome(primary.query([insert('a', 0)], 'transaction')),
      outcome(primary.query([insert('b', 0), insert('b', 1)], 'transaction')),
      // Interrupted at its time limit: SQLite then rolls back the whole transaction, the two
      // writes before it in the group included.
      outcome(
        primary.query(
          [{ sql: 'WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) INSERT INTO t(writer) SELECT i FROM n' }],
          'transaction',
        ),
      ),
      outcome(primary.query([insert('c', 0)], 'transaction')),
    ]);
    expect(outcomes).toEqual(['ok', 'ok', 'STATEMENT_TIMEOUT', 'ok']);
    expect(await writersIn(primary)).toEqual(['a-0', 'b-0', 'b-1', 'c-0']);
    expect({ position: primary.position, checksum: primary.checksum }).toEqual(logHead(at));
  });
});
