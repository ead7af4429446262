import type BetterSqlite3 from 'better-sqlite3';
import { isSqliteErrorCode, LitebaseError, sqliteErrorStatus, type ErrorCode, type SqliteErrorCode } from '../errors.js';
import { decodeValue, encodeValue, ValueEncodingError, type JsonSqlValue, type SqlValue } from '../sql/values.js';
import { decodeExactValue, encodeExactValue } from '../sql/exact-values.js';
import { isSinglePass, readRows, statementTimeout, type ResultBudget } from './result-limits.js';
import { isInterrupted, type StatementDeadline } from './statement-deadline.js';
import { guardStatement, pragmaNotAllowed, StatementRefusedError } from './statement-guard.js';
import type { StatementSample } from './statement-stats.js';

type Database = BetterSqlite3.Database;
type Statement = BetterSqlite3.Statement<unknown[], unknown>;

export interface StatementInput {
  sql: string;
  params?: unknown[] | Record<string, unknown> | undefined;
  /** Named values bound beside positional `params` (an array): Hrana mixes both. Keys without prefix. */
  named?: Record<string, unknown> | undefined;
}

export interface StatementResult {
  columns: string[];
  rows: JsonSqlValue[][];
  rowsAffected: number;
  lastInsertRowid: JsonSqlValue;
  /** Declared column types; only in exact runs (StatementRun.exact). */
  decltypes?: Array<string | null>;
}

/** A statement that failed, with its index in the request (docs/API.md "Errors"). */
export class StatementError extends LitebaseError {
  constructor(code: ErrorCode | SqliteErrorCode, message: string, statement: number, status = 400, cause?: unknown) {
    super(code, message, { status, details: { statement }, cause });
  }
}

/** What the caller's key allows beyond reading (the route decides, from the key's actions). */
export interface StatementAccess {
  /** May run statements that are not read-only. */
  write: boolean;
  /** May run the PRAGMAs the allowlist keeps for admins (statement-guard.ts). */
  admin: boolean;
  /** Bind and answer in the exact encoding (src/sql/exact-values.ts), with decltypes: Hrana's needs. */
  exact?: boolean;
}

/** Internal callers and the root key. */
export const FULL_ACCESS: StatementAccess = { write: true, admin: true };

/** One request's statements: its key's admin right and what is left of its response limits. */
export interface StatementRun {
  readonly admin: boolean;
  readonly budget: ResultBudget;
  /** Exact values and decltypes (StatementAccess.exact). */
  readonly exact?: boolean;
  /**
   * Set while a read connection runs the request and a read process could run it instead
   * (read-sandbox.ts): a read-only statement with a loop then throws RUNS_ELSEWHERE before it steps.
   */
  elsewhere?: boolean;
  /**
   * Set when the node keeps statement metrics (statement-stats.ts): every statement run through
   * `runStatement` adds its run here, failed ones with their code; the engine records them once
   * the request is over. A statement the guard refuses is not run and not added.
   */
  samples?: StatementSample[];
}

/** Thrown (never to a client) when a looping read should run in a read process (read-sandbox.ts). */
export const RUNS_ELSEWHERE = Symbol('runs elsewhere');

/**
 * The SQL with leading white space, comments and empty statements removed, so neither a comment
 * nor a leading ";" (SQLite skips it) can hide a keyword.
 */
function withoutLeadingComments(sql: string): string {
  let rest = sql;
  for (;;) {
    const trimmed = rest.replace(/^[\s;]+/, '');
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

/** Data-definition statements: after one commits, cached statements may describe an old schema. */
const DDL = /^\s*(create|alter|drop)\b/i;

export function isSchemaChange(sql: string): boolean {
  return DDL.test(withoutLeadingComments(sql));
}

/**
 * Prepared statements per connection, by SQL text, so hot queries are parsed once. Column names
 * are cached with them (asking better-sqlite3 costs more than running a point query); the owner
 * calls `clear()` after a schema change so no cached name outlives it.
 */
export class StatementCache {
  /**
   * By SQL text, in insertion order, evicted by second chance (CLOCK): a hit only sets `used`, since
   * moving the entry to the end of the map on every hit (true LRU) cost as much as a third of a
   * point read's SQLite time.
   */
  private readonly statements = new Map<string, { statement: Statement; used: boolean }>();
  private readonly columnNames = new WeakMap<Statement, string[]>();
  private readonly columnTypes = new WeakMap<Statement, Array<string | null>>();
  /** Statements only an admin may run, with the pragma that makes them so (statement-guard.ts). */
  private readonly adminOnly = new WeakMap<Statement, string>();
  /** False while no such statement was ever cached: the common case pays no lookup. */
  private hasAdminOnly = false;
  /** Read-only statements whose program has no loop (result-limits.ts), decided on first run. */
  private readonly singlePass = new WeakMap<Statement, boolean>();

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

  decltypes(statement: Statement): Array<string | null> {
    let types = this.columnTypes.get(statement);
    if (!types) {
      types = statement.columns().map((column) => column.type);
      this.columnTypes.set(statement, types);
    }
    return types;
  }

  /**
   * `deadline`, when given, stops any statement run through this cache at the statement time
   * limit (statement-deadline.ts); the write connection has one.
   */
  constructor(
    private readonly db: Database,
    readonly deadline?: StatementDeadline,
    private readonly capacity = 512,
  ) {}

  /** The prepared statement for `sql`; `admin` says whether the caller's key may run admin-only ones. */
  prepare(sql: string, index: number, admin: boolean): Statement {
    const entry = this.statements.get(sql);
    if (entry) {
      entry.used = true;
      const cached = entry.statement;
      if (this.hasAdminOnly && !admin) {
        const pragma = this.adminOnly.get(cached);
        if (pragma !== undefined) throw pragmaNotAllowed(pragma, index);
      }
      return cached;
    }
    // Before prepare(): SQLite applies some PRAGMAs while preparing them.
    const adminOnly = guardStatement(sql, index);
    if (adminOnly !== undefined && !admin) throw pragmaNotAllowed(adminOnly, index);
    let statement: Statement;
    try {
      statement = this.db.prepare(sql);
    } catch (error) {
      throw toStatementError(error, index);
    }
    statement.safeIntegers(true);
    // Rows as arrays: the response carries columns once, not a key per value.
    if (statement.reader) statement.raw(true);
    if (adminOnly !== undefined) {
      this.adminOnly.set(statement, adminOnly);
      this.hasAdminOnly = true;
    }
    if (this.statements.size >= this.capacity) this.evictOne();
    this.statements.set(sql, { statement, used: false });
    return statement;
  }

  /** Drop the oldest entry not used since it was last passed over; used ones get a second chance at the end. */
  private evictOne(): void {
    for (const [sql, entry] of this.statements) {
      this.statements.delete(sql);
      if (!entry.used) return;
      entry.used = false;
      this.statements.set(sql, entry);
    }
  }

  /** True when `statement` (prepared from `sql`) returns at most a row or two, whatever `args` are. */
  isSinglePass(statement: Statement, sql: string, args: unknown[]): boolean {
    let known = this.singlePass.get(statement);
    if (known === undefined) {
      const decided = statement.readonly ? isSinglePass(this.db, sql, args) : false;
      if (decided === undefined) return false;
      known = decided;
      this.singlePass.set(statement, known);
    }
    return known;
  }

  /** True when the statement cannot change the database (better-sqlite3's `readonly`). */
  isReadOnly(sql: string, index: number, admin: boolean): boolean {
    return this.prepare(sql, index, admin).readonly;
  }
}

export function bindParams(params: StatementInput['params'], index: number, alsoNamed?: StatementInput['named'], exact = false): unknown[] {
  try {
    if (exact || alsoNamed !== undefined) {
      const decode = exact ? decodeExactValue : decodeValue;
      const args: unknown[] = Array.isArray(params) ? params.map(decode) : [];
      if (alsoNamed !== undefined && Object.keys(alsoNamed).length > 0) {
        args.push(Object.fromEntries(Object.entries(alsoNamed).map(([key, value]) => [key, decode(value)])));
      }
      return args;
    }
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

/** A statement parsed, not run (Hrana's describe): its columns with declared types, and whether it only reads. */
export interface StatementDescription {
  columns: Array<{ name: string; decltype: string | null }>;
  readonly: boolean;
}

export function describeStatement(cache: StatementCache, sql: string, admin: boolean): StatementDescription {
  const statement = cache.prepare(sql, 0, admin);
  const columns = statement.reader ? statement.columns().map((column) => ({ name: column.name, decltype: column.type })) : [];
  return { columns, readonly: statement.readonly };
}

/**
 * Run one statement on `db` (already inside whatever transaction the caller wants), adding its run
 * to `run.samples` when the node keeps statement metrics.
 */
export function runStatement(
  cache: StatementCache,
  db: Database,
  input: StatementInput,
  index: number,
  run: StatementRun,
): StatementResult {
  const samples = run.samples;
  if (samples === undefined) return executeStatement(cache, db, input, index, run);
  const started = performance.now();
  try {
    const result = executeStatement(cache, db, input, index, run);
    const ended = performance.now();
    samples.push({
      sql: input.sql,
      ms: ended - started,
      at: performance.timeOrigin + ended,
      rowsRead: result.rows.length,
      rowsWritten: result.rowsAffected,
    });
    return result;
  } catch (error) {
    // RUNS_ELSEWHERE: the statement will run (and be counted) in a read process.
    if (error !== RUNS_ELSEWHERE && !(error instanceof StatementRefusedError)) {
      const ended = performance.now();
      const code = error instanceof LitebaseError ? error.code : 'STATEMENT_FAILED';
      samples.push({ sql: input.sql, ms: ended - started, at: performance.timeOrigin + ended, rowsRead: 0, rowsWritten: 0, error: code });
    }
    throw error;
  }
}

function executeStatement(cache: StatementCache, db: Database, input: StatementInput, index: number, run: StatementRun): StatementResult {
  const statement = cache.prepare(input.sql, index, run.admin);
  const args = bindParams(input.params, index, input.named, run.exact);
  const deadline = cache.deadline;
  deadline?.arm(run.budget.limits.statementTimeoutMs);
  try {
    if (statement.reader) {
      // Stepped, not all(): stops at the response limits instead of materializing everything.
      // For INSERT/UPDATE/DELETE ... RETURNING SQLite makes every change in the first step, so
      // only the rows' output is bounded there.
      const singlePass = cache.isSinglePass(statement, input.sql, args);
      if (run.elsewhere === true && !singlePass && statement.readonly) throw RUNS_ELSEWHERE;
      const rows = readRows(statement, args, run.budget, index, singlePass, run.exact === true ? encodeExactValue : encodeValue);
      const columns = cache.columns(statement);
      let rowsAffected = 0;
      let lastInsertRowid: JsonSqlValue = null;
      if (!statement.readonly) {
        // INSERT/UPDATE/DELETE ... RETURNING: iterate() does not report changes, SQLite does.
        const info = cache.prepare('SELECT changes(), last_insert_rowid()', index, true).get() as [bigint, bigint];
        rowsAffected = Number(info[0]);
        lastInsertRowid = encodeValue(info[1]);
      }
      if (run.exact === true) return { columns, rows, rowsAffected, lastInsertRowid, decltypes: cache.decltypes(statement) };
      return { columns, rows, rowsAffected, lastInsertRowid };
    }
    const info = statement.run(...args);
    // Exact runs (Hrana) report the rowid of any statement that inserted, `WITH ... INSERT` too, as sqld does.
    const inserts = run.exact === true ? /\b(insert|replace)\s+into\b/i : /^\s*(insert|replace)\b/i;
    const isInsert = info.changes > 0 && inserts.test(input.sql);
    const result: StatementResult = {
      columns: [],
      rows: [],
      rowsAffected: info.changes,
      lastInsertRowid: isInsert ? encodeValue(info.lastInsertRowid) : null,
    };
    if (run.exact === true) result.decltypes = [];
    return result;
  } catch (error) {
    if (error === RUNS_ELSEWHERE) throw error;
    // Only the deadline interrupts a connection; SQLite has undone the statement (and, for a
    // write inside a transaction, rolled the transaction back: the caller checks inTransaction).
    if (deadline && isInterrupted(error)) throw statementTimeout(run.budget.limits, index);
    throw toStatementError(error, index);
  } finally {
    deadline?.disarm();
  }
}

/** Map better-sqlite3's errors to stable codes, keeping SQLite's own code where there is one. */
export function toStatementError(error: unknown, index: number): LitebaseError {
  if (error instanceof LitebaseError) return error;
  const err = error as { code?: unknown; message?: unknown; name?: unknown };
  const message = typeof err.message === 'string' ? err.message : String(error);
  if (typeof err.code === 'string' && isSqliteErrorCode(err.code)) {
    return new StatementError(err.code, message, index, sqliteErrorStatus(err.code), error);
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
 * as a write, so the write path reports errors in statement order. A statement the guard refuses
 * is refused here, on any node: no connection would run it.
 */
export function isReadOnlyRequest(cache: StatementCache, statements: readonly StatementInput[], admin: boolean): boolean {
  return statements.every((statement, index) => {
    try {
      return cache.isReadOnly(statement.sql, index, admin);
    } catch (error) {
      if (error instanceof StatementRefusedError) throw error;
      return false;
    }
  });
}

/** Run read-only statements; several of them see one snapshot. */
export function runReadOnly(
  cache: StatementCache,
  reader: Database,
  statements: readonly StatementInput[],
  run: StatementRun,
  firstIndex = 0,
): StatementResult[] {
  if (statements.length === 1 && statements[0]) {
    try {
      return [runStatement(cache, reader, statements[0], firstIndex, run)];
    } finally {
      // Never leave the shared read connection inside a transaction (a stale snapshot for everyone).
      if (reader.inTransaction) reader.exec('ROLLBACK');
    }
  }
  reader.exec('BEGIN');
  try {
    return statements.map((statement, index) => runStatement(cache, reader, statement, firstIndex + index, run));
  } finally {
    reader.exec('COMMIT');
  }
}

/** A key that may read a database sent a statement that writes. */
export function readOnlyKey(database: string, statement = 0): LitebaseError {
  return new LitebaseError('PERMISSION_DENIED', `this key may only read database ${database}; statement ${statement} writes`, {
    details: { action: 'write', database, statement },
  });
}
