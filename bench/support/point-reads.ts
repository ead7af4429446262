import { prepareBodies } from './load.js';
import { firstRows } from './sql.js';

/**
 * The point-read workload, shared by the read benchmark's loads on a single server and on a
 * Replica: the same 10,000-row table, the same checks, the very same prepared request bodies.
 */

export const ROWS = 10_000;
/** Rows per prepopulation request: well under the server's default 1000-statement limit. */
const BATCH = 500;
export const SELECT_SQL = 'SELECT id, a, b FROM t WHERE id = ?';

export interface Statement {
  sql: string;
  params?: unknown[];
}

/**
 * Sends one /query request to the database `bench` and answers its body, or throws (naming
 * `step`) when the status is not 200. `minPosition` is only used for reads on a Replica.
 */
export type SendQuery = (step: string, statements: Statement[], minPosition?: string) => Promise<unknown>;

export function rowText(id: number): string {
  return `row-${id}-`.padEnd(100, 'y');
}

/** Rows 1..ROWS of `t(id, a, b)`: a = 7 x id, b = rowText(id); 20 requests of 500 INSERTs. */
export async function prepopulate(send: SendQuery): Promise<void> {
  for (let start = 1; start <= ROWS; start += BATCH) {
    const statements: Statement[] = [];
    for (let id = start; id < start + BATCH && id <= ROWS; id++) {
      statements.push({ sql: 'INSERT INTO t(id, a, b) VALUES (?, ?, ?)', params: [id, id * 7, rowText(id)] });
    }
    await send(`prepopulate rows ${start}..`, statements);
  }
}

/**
 * A few point reads checked for content before the load, since the load itself only counts 200s
 * (and, on a Replica, who answered). `check` may look at each whole answer as well.
 */
export async function checkPointReads(send: SendQuery, minPosition?: string, check?: (body: unknown) => void): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const id = 1 + Math.floor(Math.random() * ROWS);
    const body = await send('check point read', [{ sql: SELECT_SQL, params: [id] }], minPosition);
    const rows = firstRows(body);
    const row = rows[0];
    if (rows.length !== 1 || !row || row[0] !== id || row[1] !== id * 7 || row[2] !== rowText(id)) {
      throw new Error(`point read of id ${id} answered ${JSON.stringify(rows)}`);
    }
    check?.(body);
  }
}

/**
 * The SELECT bodies, prepared once per run: 1000 point reads of random existing ids, cycled by
 * every connection. (The 10,000-row table, about 1.5 MB, sits in SQLite's page cache either way.)
 */
export const SELECT_BODIES = prepareBodies(() => {
  const id = 1 + Math.floor(Math.random() * ROWS);
  return `{"statements":[{"sql":"${SELECT_SQL}","params":[${id}]}]}`;
});
