import type { BenchServer } from './server.js';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The rows of the first result of a /query answer, checked for shape rather than assumed. */
export function firstRows(body: unknown): unknown[][] {
  const results = isRecord(body) ? body.results : undefined;
  const first = Array.isArray(results) ? (results[0] as unknown) : undefined;
  const rows = isRecord(first) ? first.rows : undefined;
  if (!Array.isArray(rows) || !rows.every((row): row is unknown[] => Array.isArray(row))) {
    throw new Error(`unexpected query answer: ${JSON.stringify(body).slice(0, 300)}`);
  }
  return rows;
}

export async function query(
  server: BenchServer,
  step: string,
  database: string,
  statements: { sql: string; params?: unknown[] }[],
): Promise<unknown> {
  return server.expect(step, 200, 'POST', `/v1/databases/${database}/query`, { statements });
}

/** `SELECT count(*) FROM <table>` through the API. */
export async function countRows(server: BenchServer, database: string, table: string): Promise<number> {
  const rows = firstRows(await query(server, 'count rows', database, [{ sql: `SELECT count(*) FROM ${table}` }]));
  const value = rows[0]?.[0];
  if (typeof value !== 'number') throw new Error(`count(*) answered ${JSON.stringify(value)}`);
  return value;
}

/** The database and table every benchmark uses. */
export async function createBenchTable(server: BenchServer): Promise<void> {
  await server.expect('create database', 201, 'POST', '/v1/databases', { name: 'bench' });
  await query(server, 'create table', 'bench', [{ sql: 'CREATE TABLE t(id INTEGER PRIMARY KEY, a INTEGER, b TEXT)' }]);
}
