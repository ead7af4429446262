import type { StatementInput, StatementResult } from '../../engine/executor.js';
import type { JsonSqlValue } from '../../sql/values.js';
import type { HranaCol, HranaError, HranaStmtResult, HranaValue } from './protocol.js';
import { parameterSlots, type ParameterSlot } from './sql-text.js';

/**
 * Pure conversions between Hrana's values, arguments and results and the engine's exact encoding
 * (src/sql/exact-values.ts: every INTEGER {"$int"}, every REAL a number).
 */

/** A request that does not follow the protocol (a malformed value, a missing argument): a Hrana error, not a crash. */
export class HranaRequestError extends Error {
  constructor(
    message: string,
    readonly code = 'HRANA_PROTO_ERROR',
  ) {
    super(message);
    this.name = 'HranaRequestError';
  }
}

const INTEGER = /^-?\d{1,19}$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);

/** A Hrana value as an exact-encoded parameter. */
export function valueToParam(value: unknown): JsonSqlValue {
  if (typeof value !== 'object' || value === null) throw new HranaRequestError('a value must be an object with a "type"');
  const record = value as Record<string, unknown>;
  switch (record.type) {
    case 'null':
      return null;
    case 'integer': {
      const text = typeof record.value === 'number' && Number.isSafeInteger(record.value) ? String(record.value) : record.value;
      if (typeof text !== 'string' || !INTEGER.test(text)) throw new HranaRequestError('an integer value must be a decimal string');
      // Up to 18 digits always fit in 64 bits; only 19 need the range check.
      const digits = text.charCodeAt(0) === 45 /* - */ ? text.length - 1 : text.length;
      if (digits === 19) {
        const parsed = BigInt(text);
        if (parsed > INT64_MAX || parsed < INT64_MIN) throw new HranaRequestError(`integer ${text} is outside the 64-bit range`);
      }
      return { $int: text };
    }
    case 'float':
      if (typeof record.value !== 'number') throw new HranaRequestError('a float value must be a number');
      return record.value;
    case 'text':
      if (typeof record.value !== 'string') throw new HranaRequestError('a text value must be a string');
      return record.value;
    case 'blob':
      if (typeof record.base64 !== 'string' || !BASE64.test(record.base64.replace(/=+$/, ''))) {
        throw new HranaRequestError('a blob value must be base64');
      }
      return { $blob: record.base64 };
    default:
      throw new HranaRequestError(`unknown value type ${JSON.stringify(record.type)}`);
  }
}

/** An exact-encoded value read from SQLite as a Hrana value. */
export function valueFromResult(value: JsonSqlValue): HranaValue {
  if (value === null) return { type: 'null' };
  if (typeof value === 'number') return { type: 'float', value };
  if (typeof value === 'string') return { type: 'text', value };
  if (typeof value === 'boolean') return { type: 'integer', value: value ? '1' : '0' };
  if ('$int' in value) return { type: 'integer', value: value.$int };
  return { type: 'blob', base64: value.$blob };
}

/** A `?` parameter: no name, not a hole. */
const isPlain = (slot: ParameterSlot): boolean => slot.name === null && !slot.hole;

/** The name a named argument or parameter is matched by: without its prefix (`:a`, `@a`, `$a`, `?3` → `a`, `3`). */
const bareName = (name: string): string => name.replace(/^[:@$?]/, '');

/**
 * Bind Hrana's `args` (by parameter number) and `named_args` (by name, prefix optional; it wins
 * over a positional one) to the statement's parameters, as better-sqlite3 takes them: values for
 * the nameless numbers (`?` and holes) in order, and an object for the named ones by bare name.
 */
export function bindArguments(
  sql: string,
  args: readonly unknown[] = [],
  namedArgs: readonly unknown[] = [],
  slots: readonly ParameterSlot[] = parameterSlots(sql),
): Pick<StatementInput, 'params' | 'named'> {
  if (args.length > slots.length) {
    throw new HranaRequestError(`the statement has ${slots.length} parameters, but ${args.length} arguments were given`, 'ARGS_INVALID');
  }
  if (namedArgs.length === 0 && args.length === slots.length && slots.every(isPlain)) {
    // The usual statement: only `?`, every one given, no names. The same values as below, in order.
    return args.length === 0 ? {} : { params: args.map(valueToParam) };
  }
  const named = new Map<string, unknown>();
  for (const arg of namedArgs) {
    const record = arg as { name?: unknown; value?: unknown } | null;
    if (typeof record !== 'object' || record === null || typeof record.name !== 'string')
      throw new HranaRequestError('a named argument needs a "name"');
    named.set(bareName(record.name), record.value);
  }
  const positional: JsonSqlValue[] = [];
  const byName: Record<string, JsonSqlValue> = {};
  slots.forEach((slot, index) => {
    const given = slot.name !== null && named.has(bareName(slot.name)) ? named.get(bareName(slot.name)) : args[index];
    if (given === undefined && !slot.hole) {
      throw new HranaRequestError(`no argument for parameter ${index + 1}${slot.name === null ? '' : ` (${slot.name})`}`, 'ARGS_INVALID');
    }
    const value = given === undefined ? null : valueToParam(given);
    if (slot.name === null) positional.push(value);
    else byName[bareName(slot.name)] = value;
  });
  return {
    ...(positional.length > 0 ? { params: positional } : {}),
    ...(Object.keys(byName).length > 0 ? { named: byName } : {}),
  };
}

/** An engine result (exact run) as a Hrana StmtResult. */
export function toStmtResult(result: StatementResult, wantRows = true): HranaStmtResult {
  return {
    cols: columnsOf(result),
    rows: wantRows ? result.rows.map((row) => row.map(valueFromResult)) : [],
    affected_row_count: result.rowsAffected,
    last_insert_rowid: rowidText(result.lastInsertRowid),
  };
}

/**
 * Columns already described, by the engine's array of names: the engine hands out one array per
 * prepared statement (its statement cache), so a statement's columns are built once, not per answer.
 */
const describedColumns = new WeakMap<readonly string[], HranaCol[]>();

export function columnsOf(result: StatementResult): HranaCol[] {
  let cols = describedColumns.get(result.columns);
  if (cols === undefined) {
    cols = result.columns.map((name, index) => ({ name, decltype: result.decltypes?.[index] ?? null }));
    describedColumns.set(result.columns, cols);
  }
  return cols;
}

export function rowidText(rowid: JsonSqlValue): string | null {
  if (rowid === null) return null;
  if (typeof rowid === 'number' || typeof rowid === 'string') return String(rowid);
  if (typeof rowid === 'object' && '$int' in rowid) return rowid.$int;
  return null;
}

export const EMPTY_RESULT: HranaStmtResult = { cols: [], rows: [], affected_row_count: 0, last_insert_rowid: null };

/**
 * An error as Hrana reports it: SQLite's primary result code (SQLITE_CONSTRAINT, not
 * SQLITE_CONSTRAINT_UNIQUE: clients switch on those), Litebase's own codes unchanged.
 */
export function toHranaError(code: string, message: string): HranaError {
  const primary = /^SQLITE_[A-Z]+/.exec(code);
  return { message, code: primary ? primary[0] : code };
}
