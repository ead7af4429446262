import { LitebaseClientError } from './errors.js';
import type { QueryResponse, QueryResponseJson, SqlParam, Statement } from './types.js';
import { fromJsonValue, toJsonValue, type JsonSqlValue } from './values.js';

/** Statements in their wire form; a string is one statement without params. */
export function encodeStatements(statements: Statement[] | string): Array<{ sql: string; params?: unknown }> {
  const list = typeof statements === 'string' ? [{ sql: statements }] : statements;
  return list.map((statement, index) => {
    if (statement.params === undefined) return { sql: statement.sql };
    const params = Array.isArray(statement.params)
      ? statement.params.map((value, position) => encodeParam(value, index, String(position + 1)))
      : Object.fromEntries(Object.entries(statement.params).map(([name, value]) => [name, encodeParam(value, index, name)]));
    return { sql: statement.sql, params };
  });
}

function encodeParam(value: SqlParam, statement: number, name: string): JsonSqlValue {
  // JSON.stringify would turn NaN and Infinity into null without a word.
  if (typeof value === 'number' && !Number.isFinite(value)) {
    throw new LitebaseClientError('INVALID_VALUE', `statement ${statement}, param ${name}: ${value} cannot be stored`, {
      details: { statement },
    });
  }
  return toJsonValue(value);
}

/** Turn a wire answer into JS values: bigint beyond ±2^53, Uint8Array for BLOB. */
export function decodeQueryResponse(json: QueryResponseJson): QueryResponse {
  if (!Array.isArray(json.results)) {
    throw new LitebaseClientError('INVALID_RESPONSE', 'a query answer must hold a "results" array');
  }
  return {
    results: json.results.map((result) => ({
      columns: result.columns,
      rows: result.rows.map((row) => row.map(fromJsonValue)),
      rowsAffected: result.rowsAffected,
      lastInsertRowid: decodeRowid(result.lastInsertRowid),
    })),
    position: json.position,
    node: json.node,
    role: json.role,
  };
}

function decodeRowid(value: JsonSqlValue | undefined): bigint | number | null {
  if (value === undefined || value === null) return null;
  const decoded = fromJsonValue(value);
  return typeof decoded === 'number' || typeof decoded === 'bigint' ? decoded : null;
}

/** Rows as objects keyed by column name (a later column wins over an earlier one of the same name). */
export function rowsAsObjects(result: Pick<StatementResultLike, 'columns' | 'rows'>): Array<Record<string, unknown>> {
  return result.rows.map((row) => Object.fromEntries(result.columns.map((column, index) => [column, row[index]])));
}

interface StatementResultLike {
  columns: string[];
  rows: unknown[][];
}
