import { copyFileSync, openSync, writeSync, closeSync } from 'node:fs';
import Database from 'better-sqlite3';
import { scanPageHashes } from '../../src/replay/local-copy.js';
import { formatChecksum } from '../../src/format/rolling-checksum.js';
import { decodeValue, encodeValue, type JsonSqlValue } from '../../src/sql/values.js';
import { Prng } from './golden-segments.js';
import type { TestServer } from './server.js';

/**
 * Helpers for the archive and restore tests: a random workload sent to a real server and applied in
 * lockstep to an in-process SQLite "shadow" database, snapshots of that shadow, and dumps of
 * restored databases in the same canonical form (values encoded as the HTTP API encodes them).
 */

/**
 * Server settings of the archive and restore tests: compaction only when a test asks for it, no
 * archive timer, small bundles, and every checkpoint archived (so restores start from checkpoints as
 * well as from position 1; the default archive policy is tested in compact-replica.test.ts).
 */
export const MANUAL_ARCHIVE_ENV = {
  LITEBASE_COMPACTION_LOG_BYTES: '0',
  LITEBASE_COMPACTION_LOG_SEGMENTS: '0',
  LITEBASE_ARCHIVE_INTERVAL_MS: '0',
  LITEBASE_ARCHIVE_BUNDLE_BYTES: '65536',
  LITEBASE_ARCHIVE_CHECKPOINT_PERCENT: '0',
} as const;

export interface Snapshot {
  position: bigint;
  /** Wall-clock time after the write was answered (and before the next one was sent). */
  timeMs: number;
  checksum: string;
  dump: string;
}

const SCHEMA_SQL = "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name";

/** Canonical dump of a local SQLite database: schema, then every table's rows by rowid. */
export function dumpLocal(db: Database.Database): string {
  const read = (sql: string): JsonSqlValue[][] =>
    (db.prepare(sql).raw(true).safeIntegers(true).all() as unknown[][]).map((row) => row.map(encodeValue));
  const schema = read(SCHEMA_SQL);
  const tables = schema.filter((row) => row[0] === 'table').map((row) => String(row[1]));
  return JSON.stringify({ schema, tables: tables.map((table) => [table, read(`SELECT * FROM "${table}" ORDER BY rowid`)]) });
}

export function dumpFile(file: string): string {
  const db = new Database(file, { readonly: true });
  try {
    return dumpLocal(db);
  } finally {
    db.close();
  }
}

export function integrityCheck(file: string): string {
  const db = new Database(file, { readonly: true });
  try {
    return (db.pragma('integrity_check') as Array<{ integrity_check: string }>).map((row) => row.integrity_check).join('; ');
  } finally {
    db.close();
  }
}

/** The same dump, of a database on a server, through the HTTP API. */
export async function dumpRemote(server: TestServer, database: string): Promise<string> {
  const query = async (sql: string): Promise<JsonSqlValue[][]> => {
    const response = await server.request('POST', `/v1/databases/${database}/query`, { statements: [{ sql }] });
    if (response.status !== 200) throw new Error(`${sql} on ${database}: ${response.status} ${JSON.stringify(response.body)}`);
    return response.body.results[0].rows as JsonSqlValue[][];
  };
  const schema = await query(SCHEMA_SQL);
  const tables = schema.filter((row) => row[0] === 'table').map((row) => String(row[1]));
  const dumps: Array<[string, JsonSqlValue[][]]> = [];
  for (const table of tables) dumps.push([table, await query(`SELECT * FROM "${table}" ORDER BY rowid`)]);
  return JSON.stringify({ schema, tables: dumps });
}

/**
 * The rolling checksum of a restored file as the Primary wrote it: a standalone restore has header
 * bytes 18/19 set to 1 (rollback journal); they are set back to 2 (WAL) on a copy before hashing.
 */
export async function checksumAsWritten(file: string): Promise<string> {
  const copy = `${file}.checksum-copy`;
  copyFileSync(file, copy);
  const fd = openSync(copy, 'r+');
  try {
    writeSync(fd, Buffer.from([2, 2]), 0, 2, 18);
  } finally {
    closeSync(fd);
  }
  return formatChecksum((await scanPageHashes(copy, 4096)).checksum);
}

interface Statement {
  sql: string;
  params: JsonSqlValue[];
}

/**
 * A seeded random workload: inserts and updates of random sizes (up to overflow pages), deletes,
 * and schema changes (tables created, altered, indexed and dropped). Every request runs on the
 * server and, in one transaction, on the shadow.
 */
export class Workload {
  readonly shadow = new Database(':memory:');
  private readonly prng: Prng;
  private tables = ['t1'];
  private tableCount = 1;
  private columnCount = 0;
  private indexCount = 0;

  constructor(
    private readonly server: TestServer,
    private readonly database: string,
    seed: number,
  ) {
    this.prng = new Prng(seed);
  }

  async setup(): Promise<Snapshot> {
    return this.send([{ sql: 'CREATE TABLE t1(id INTEGER PRIMARY KEY, a TEXT, b BLOB, n REAL, i INTEGER)', params: [] }]);
  }

  /** One random request; answers the snapshot after it. */
  async step(): Promise<Snapshot> {
    const roll = this.prng.below(100);
    if (roll < 45) return this.send(this.inserts());
    if (roll < 70) return this.send(this.updates());
    if (roll < 85) return this.send([this.deleteSome()]);
    return this.send([this.schemaChange()]);
  }

  private table(): string {
    return this.prng.pick(this.tables);
  }

  private text(max: number): string {
    const length = this.prng.below(max + 1);
    const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789 äöü€';
    let out = '';
    for (let i = 0; i < length; i++) out += alphabet[this.prng.below(alphabet.length)];
    return out;
  }

  private blob(): JsonSqlValue {
    if (this.prng.chance(0.15)) return null;
    const size = this.prng.chance(0.1) ? this.prng.between(20_000, 70_000) : this.prng.below(6000);
    return { $blob: this.prng.bytes(size).toString('base64') };
  }

  private integer(): JsonSqlValue {
    return this.prng.chance(0.2) ? { $int: (9007199254740993n + BigInt(this.prng.u32())).toString() } : this.prng.between(-1000, 1000);
  }

  private inserts(): Statement[] {
    const table = this.table();
    return Array.from({ length: this.prng.between(1, 5) }, () => ({
      sql: `INSERT INTO ${table}(a, b, n, i) VALUES (?, ?, ?, ?)`,
      params: [this.text(this.prng.chance(0.1) ? 8000 : 300), this.blob(), this.prng.u32() / 7 + 0.5, this.integer()],
    }));
  }

  private updates(): Statement[] {
    const table = this.table();
    const ids = this.shadow.prepare(`SELECT id FROM ${table} ORDER BY id`).pluck().all() as number[];
    if (ids.length === 0) return this.inserts();
    return Array.from({ length: this.prng.between(1, 4) }, () => ({
      sql: `UPDATE ${table} SET a = ?, b = ?, i = ? WHERE id = ?`,
      params: [this.text(2000), this.blob(), this.integer(), this.prng.pick(ids)],
    }));
  }

  private deleteSome(): Statement {
    const modulus = this.prng.between(2, 7);
    return { sql: `DELETE FROM ${this.table()} WHERE id % ? = ?`, params: [modulus, this.prng.below(modulus)] };
  }

  private schemaChange(): Statement {
    const kind = this.prng.below(4);
    if (kind === 0 || this.tables.length === 1) {
      const name = `t${++this.tableCount}`;
      this.tables.push(name);
      return { sql: `CREATE TABLE ${name}(id INTEGER PRIMARY KEY, a TEXT, b BLOB, n REAL, i INTEGER)`, params: [] };
    }
    if (kind === 1)
      return { sql: `ALTER TABLE ${this.table()} ADD COLUMN c${++this.columnCount} INTEGER DEFAULT ${this.prng.below(100)}`, params: [] };
    if (kind === 2) return { sql: `CREATE INDEX x${++this.indexCount} ON ${this.table()}(a, i)`, params: [] };
    const victim = this.prng.pick(this.tables.filter((name) => name !== 't1'));
    this.tables = this.tables.filter((name) => name !== victim);
    return { sql: `DROP TABLE ${victim}`, params: [] };
  }

  private async send(statements: Statement[]): Promise<Snapshot> {
    const response = await this.server.request('POST', `/v1/databases/${this.database}/query`, { statements });
    if (response.status !== 200) throw new Error(`workload request failed: ${response.status} ${JSON.stringify(response.body)}`);
    this.shadow.transaction(() => {
      for (const { sql, params } of statements) this.shadow.prepare(sql).run(...params.map(decodeValue));
    })();
    const position = BigInt(response.body.position);
    const info = await this.server.request('GET', `/v1/databases/${this.database}`);
    const timeMs = Date.now();
    // The next write commits at a later millisecond than this snapshot's time.
    await new Promise((resolve) => setTimeout(resolve, 3));
    return { position, timeMs, checksum: info.body.database.checksum as string, dump: dumpLocal(this.shadow) };
  }
}

// The archive tests import these from here; they live in test/support with every other test's.
export { runCli, type CliResult } from './cli.js';
export { waitFor } from './wait.js';
