import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';

/**
 * The deterministic write workload of the restore benchmark, shared by the Litebase run (over HTTP)
 * and the Litestream run (better-sqlite3 on a local file), plus the reference state it must produce.
 *
 * Transaction i (1-based) always INSERTs row id = i with a payload; some transactions also UPDATE
 * an older row (i - UPDATE_LAG) or DELETE one (i - DELETE_LAG). Each row is updated at most once and
 * deleted at most once, by transactions far apart, so the state after transactions 1..k does not
 * depend on the commit order of concurrent clients as long as no transaction is sent before every
 * transaction MAX_IN_FLIGHT_SPAN older than it was acknowledged (the driver enforces that).
 * All randomness comes from a seeded integer hash of (seed, i, purpose): no hidden PRNG state.
 */
export const UPDATE_LAG = 1000;
export const DELETE_LAG = 2000;
/** A transaction may be sent only once every transaction at least this much older is acknowledged. */
export const MAX_IN_FLIGHT_SPAN = 500;

export const CREATE_TABLE_SQL = 'CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER NOT NULL, payload TEXT NOT NULL)';
export const INSERT_SQL = 'INSERT INTO t(id, k, payload) VALUES (?, ?, ?)';
export const UPDATE_SQL = 'UPDATE t SET k = ?, payload = ? WHERE id = ?';
export const DELETE_SQL = 'DELETE FROM t WHERE id = ?';

export interface Statement {
  sql: string;
  params: (number | string)[];
}

/** 32-bit integer hash (a murmur3 finalizer over a few mixed words): the seeded PRNG of the workload. */
export function hash32(seed: number, a: number, b: number): number {
  let h = (seed ^ Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca77)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Words for payloads: text that compresses somewhat (like real rows), not random bytes, not zeros. */
const WORDS = (
  'alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo ' +
  'sierra tango uniform victor whiskey xray yankee zulu order invoice customer amount status pending shipped ' +
  'delivered returned warehouse berlin paris lisbon tokyo denver quantity price discount total note comment ' +
  'user account session token region primary replica segment checkpoint archive restore litebase sqlite'
).split(' ');

export class Workload {
  constructor(
    readonly seed: number,
    readonly transactions: number,
    readonly payloadBytes: number,
  ) {}

  /** A payload of exactly payloadBytes ASCII characters, a function of `payloadSeed` only. */
  payload(payloadSeed: number): string {
    const parts: string[] = [String(payloadSeed)];
    let length = parts[0]?.length ?? 0;
    let n = 0;
    while (length < this.payloadBytes) {
      const r = hash32(payloadSeed, n++, 7);
      // One in four tokens is a number, the rest words from the list.
      const token = (r & 3) === 0 ? String(r >>> 8) : (WORDS[(r >>> 2) % WORDS.length] ?? 'x');
      parts.push(token);
      length += token.length + 1;
    }
    return parts.join(' ').slice(0, this.payloadBytes).padEnd(this.payloadBytes, '.');
  }

  private insertK(i: number): number {
    return hash32(this.seed, i, 1) % 1_000_000;
  }

  private updates(i: number): number | undefined {
    return i > UPDATE_LAG && hash32(this.seed, i, 2) % 10 === 0 ? i - UPDATE_LAG : undefined;
  }

  private deletes(i: number): number | undefined {
    return i > DELETE_LAG && hash32(this.seed, i, 3) % 20 === 0 ? i - DELETE_LAG : undefined;
  }

  private insertPayloadSeed(i: number): number {
    return hash32(this.seed, i, 4);
  }

  private updatePayloadSeed(i: number): number {
    return hash32(this.seed, i, 5);
  }

  /** The statements of transaction i, run as ONE transaction (one HTTP request, one SQLite transaction). */
  statements(i: number): Statement[] {
    const list: Statement[] = [{ sql: INSERT_SQL, params: [i, this.insertK(i), this.payload(this.insertPayloadSeed(i))] }];
    const updated = this.updates(i);
    if (updated !== undefined)
      list.push({ sql: UPDATE_SQL, params: [hash32(this.seed, i, 6) % 1_000_000, this.payload(this.updatePayloadSeed(i)), updated] });
    const deleted = this.deletes(i);
    if (deleted !== undefined) list.push({ sql: DELETE_SQL, params: [deleted] });
    return list;
  }

  /** The table after transactions 1..k: row count and a SHA-256 over (id, k, payload) in id order. */
  reference(k: number): TableDigest {
    // id -> [k, payload seed]; payloads are regenerated while hashing, so memory stays small.
    const rows = new Map<number, [number, number]>();
    for (let i = 1; i <= k; i++) {
      rows.set(i, [this.insertK(i), this.insertPayloadSeed(i)]);
      const updated = this.updates(i);
      if (updated !== undefined && rows.has(updated)) rows.set(updated, [hash32(this.seed, i, 6) % 1_000_000, this.updatePayloadSeed(i)]);
      const deleted = this.deletes(i);
      if (deleted !== undefined) rows.delete(deleted);
    }
    const digest = new TableHasher();
    for (const id of [...rows.keys()].sort((a, b) => a - b)) {
      const row = rows.get(id);
      if (row) digest.add(id, row[0], this.payload(row[1]));
    }
    return digest.finish();
  }
}

export interface TableDigest {
  rows: number;
  sha256: string;
}

class TableHasher {
  private readonly hash = createHash('sha256');
  private rows = 0;

  add(id: number, k: number, payload: string): void {
    this.hash.update(`${id}\t${k}\t${payload}\n`);
    this.rows++;
  }

  finish(): TableDigest {
    return { rows: this.rows, sha256: this.hash.digest('hex') };
  }
}

/** The same digest read from a restored SQLite file (opened read-only). */
export function digestSqliteFile(file: string): TableDigest & { integrity: string; page_count: number; page_size: number } {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const integrity = String(db.pragma('quick_check', { simple: true }));
    const digest = new TableHasher();
    const select = db.prepare('SELECT id, k, payload FROM t ORDER BY id').raw(true);
    for (const row of select.iterate() as IterableIterator<unknown[]>) {
      const [id, k, payload] = row;
      if (typeof id !== 'number' || typeof k !== 'number' || typeof payload !== 'string')
        throw new Error(`unexpected row in ${file}: ${JSON.stringify(row).slice(0, 200)}`);
      digest.add(id, k, payload);
    }
    return {
      ...digest.finish(),
      integrity,
      page_count: Number(db.pragma('page_count', { simple: true })),
      page_size: Number(db.pragma('page_size', { simple: true })),
    };
  } finally {
    db.close();
  }
}
