import type BetterSqlite3 from 'better-sqlite3';
import { LitebaseError } from '../errors.js';
import { decodeValue, encodeValue, ValueEncodingError, type JsonSqlValue, type SqlValue } from '../sql/values.js';

type Database = BetterSqlite3.Database;
type Statement = BetterSqlite3.Statement<unknown[], unknown>;

export interface StatementInput {
  sql: string;
  params?: unknown[] | Record<string, unknown> | undefined;
}

export interface StatementResult {
  columns: string[];
  rows: JsonSqlValue[][];
  rowsAffected: number;
  lastInsertRowid: JsonSqlValue;
}

/** A statement that failed, with its index in the request (API.md error shape). */
export class StatementError extends LitebaseError {
  constructor(code: string, message: string, statement: number, status = 400, cause?: unknown) {
    super(code, message, { status, details: { statement }, cause });
  }
}

/**
 * PRAGMAs that would break the log capture or durability of the Primary (switching the journal
 * mode, checkpointing a WAL that holds transactions not yet in the log). Refused for everyone;
 * the fuller per-key statement guard belongs to access keys.
 */
const FORBIDDEN_PRAGMA = /^pragma\s+(?:[a-z_][a-z0-9_]*\s*\.\s*)?(journal_mode|wal_checkpoint|wal_autocheckpoint|locking_mode|synchronous|writable_schema|journal_size_limit|mmap_size|query_only)\b/i;
/** Transactions are the API's (`mode`, /transactions): a COMMIT inside a request would end ours. */
const TRANSACTION_CONTROL = /^(begin|commit|end|rollback|savepoint|release)\b/i;
/** Statements that reach files outside the database, or bypass the log. */
const OUTSIDE_THE_DATABASE = /^(attach|detach|vacuum)\b/i;
const LOAD_EXTENSION = /\bload_extension\s*\(/i;

/** The SQL with leading white space and comments removed, so a comment cannot hide a keyword. */
function withoutLeadingComments(sql: string): string {
  let rest = sql;
  for (;;) {
    const trimmed = rest.replace(/^\s+/, '');
    if (trimmed.startsWith('--')) {
      const end = trimmed.indexOf('\n');
      rest = end < 0 ? '' : trimmed.slice(end + 1);
    } else if (trimmed.startsWith('/*')) {
      const end = trimmed.indexOf('*/');
      rest = end < 0 ? '' : trimmed.slice(end + 2);
    } else {
      return trimmed;
    }
  }
}

/** Refuse what no request may run, before SQLite sees it. */
function guardStatement(sql: string, index: number): void {
  const head = withoutLeadingComments(sql);
  if (TRANSACTION_CONTROL.test(head)) {
    throw new StatementError(
      'TRANSACTION_CONTROL_NOT_ALLOWED',
      'transactions are controlled by the API: use "mode" or the /transactions routes, not BEGIN/COMMIT/ROLLBACK/SAVEPOINT',
      index,
    );
  }
  if (OUTSIDE_THE_DATABASE.test(head) || LOAD_EXTENSION.test(sql)) {
    throw new StatementError('STATEMENT_NOT_ALLOWED', 'ATTACH, DETACH, VACUUM and load_extension are not allowed', index);
  }
  if (FORBIDDEN_PRAGMA.test(head)) {
    throw new StatementError('STATEMENT_NOT_ALLOWED', 'this PRAGMA would bypass the replicated log and is not allowed', index);
  }
}

/** Data-definition statements: after one commits, cached statements may describe an old schema. */
const DDL = /^\s*(create|alter|drop)\b/i;

export function isSchemaChange(sql: string): boolean {
  return DDL.test(sql);
}

/**
 * Prepared statements per connection, by SQL text, so hot queries are parsed once. Column names
 * are cached with them (asking better-sqlite3 costs more than running a point query); the owner
 * calls `clear()` after a schema change so no cached name outlives it.
 */
export class StatementCache {
  private readonly statements = new Map<string, Statement>();
  private readonly columnNames = new WeakMap<Statement, string[]>();

  clear(): void {
    this.statements.clear();
  }

  columns(statement: Statement): string[] {
    let names = this.columnNames.get(statement);
    if (!names) {
      names = statement.columns().map((column) => column.name);
      this.columnNames.set(statement, names);
    }
    return names;
  }

  constructor(
    private readonly db: Database,
    private readonly capacity = 512,
  ) {}

  prepare(sql: string, index: number): Statement {
    const cached = this.statements.get(sql);
    if (cached) {
      // Re-insert to keep the map in least-recently-used order.
      this.statements.delete(sql);
      this.statements.set(sql, cached);
      return cached;
    }
    guardStatement(sql, index);
    let statement: Statement;
    try {
      statement = this.db.prepare(sql);
    } catch (error) {
      throw toStatementError(error, index);
    }
    statement.safeIntegers(true);
    // Rows as arrays: the response carries columns once, not a key per value.
    if (statement.reader) statement.raw(true);
    this.statements.set(sql, statement);
    if (this.statements.size > this.capacity) {
      const oldest = this.statements.keys().next().value;
      if (oldest !== undefined) this.statements.delete(oldest);
    }
    return statement;
  }

  /** True when the statement cannot change the database (better-sqlite3's `readonly`). */
  isReadOnly(sql: string, index: number): boolean {
    return this.prepare(sql, index).readonly;
  }
}

function bindParams(params: StatementInput['params'], index: number): unknown[] {
  try {
    if (params === undefined) return [];
    if (Array.isArray(params)) return params.map(decodeValue);
    const named: Record<string, SqlValue> = {};
    for (const [key, value] of Object.entries(params)) {
      // Accept the SQL spelling of a name (":a", "@a", "$a") as well as the bare one.
      named[key.replace(/^[:@$]/, '')] = decodeValue(value);
    }
    return [named];
  } catch (error) {
    if (error instanceof ValueEncodingError) throw new StatementError('INVALID_PARAMS', error.message, index);
    throw error;
  }
}

/** Run one statement on `db` (already inside whatever transaction the caller wants). */
export function runStatement(cache: StatementCache, db: Database, input: StatementInput, index: number): StatementResult {
  const statement = cache.prepare(input.sql, index);
  const args = bindParams(input.params, index);
  try {
    if (statement.reader) {
      const rows = statement.all(...args) as unknown[][];
      const columns = cache.columns(statement);
      let rowsAffected = 0;
      let lastInsertRowid: JsonSqlValue = null;
      if (!statement.readonly) {
        // INSERT/UPDATE/DELETE ... RETURNING: all() does not report changes, SQLite does.
        const info = cache.prepare('SELECT changes(), last_insert_rowid()', index).get() as [bigint, bigint];
        rowsAffected = Number(info[0]);
        lastInsertRowid = encodeValue(info[1]);
      }
      return { columns, rows: rows.map((row) => row.map(encodeValue)), rowsAffected, lastInsertRowid };
    }
    const info = statement.run(...args);
    const isInsert = info.changes > 0 && /^\s*(insert|replace)\b/i.test(input.sql);
    return {
      columns: [],
      rows: [],
      rowsAffected: info.changes,
      lastInsertRowid: isInsert ? encodeValue(info.lastInsertRowid) : null,
    };
  } catch (error) {
    throw toStatementError(error, index);
  }
}

/** Map better-sqlite3's errors to stable codes, keeping SQLite's own code where there is one. */
export function toStatementError(error: unknown, index: number): LitebaseError {
  if (error instanceof LitebaseError) return error;
  const err = error as { code?: unknown; message?: unknown; name?: unknown };
  const message = typeof err.message === 'string' ? err.message : String(error);
  if (typeof err.code === 'string' && err.code.startsWith('SQLITE_')) {
    const unavailable = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|READONLY|NOMEM)/.test(err.code);
    return new StatementError(err.code, message, index, unavailable ? 503 : 400, error);
  }
  if (error instanceof RangeError || error instanceof TypeError) {
    const code = /parameter|bind|named/i.test(message) ? 'INVALID_PARAMS' : 'INVALID_STATEMENT';
    return new StatementError(code, message, index, 400, error);
  }
  return new StatementError('STATEMENT_FAILED', message, index, 500, error);
}

/**
 * True when every statement can run on a read connection: it prepares there and is read-only.
 * A statement that does not prepare (an earlier statement may create the table it needs) counts
 * as a write, so the write path reports errors in statement order.
 */
export function isReadOnlyRequest(cache: StatementCache, statements: readonly StatementInput[]): boolean {
  return statements.every((statement, index) => {
    try {
      return cache.isReadOnly(statement.sql, index);
    } catch {
      return false;
    }
  });
}

/** Run read-only statements; several of them see one snapshot. */
export function runReadOnly(cache: StatementCache, reader: Database, statements: readonly StatementInput[]): StatementResult[] {
  if (statements.length === 1 && statements[0]) {
    try {
      return [runStatement(cache, reader, statements[0], 0)];
    } finally {
      // Never leave the shared read connection inside a transaction (a stale snapshot for everyone).
      if (reader.inTransaction) reader.exec('ROLLBACK');
    }
  }
  reader.exec('BEGIN');
  try {
    return statements.map((statement, index) => runStatement(cache, reader, statement, index));
  } finally {
    reader.exec('COMMIT');
  }
}

/** A key that may read a database sent a statement that writes. */
export function readOnlyKey(database: string, statement = 0): LitebaseError {
  return new LitebaseError('PERMISSION_DENIED', `this key may only read database ${database}; statement ${statement} writes`, {
    status: 403,
    details: { action: 'write', database, statement },
  });
}
