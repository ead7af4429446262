import type BetterSqlite3 from 'better-sqlite3';
import type { LimitsSettings } from './settings.js';
import { LitebaseError } from '../errors.js';
import { encodeValue, type JsonSqlValue } from '../sql/values.js';

type Database = BetterSqlite3.Database;
type Statement = BetterSqlite3.Statement<unknown[], unknown>;

export type ResultLimits = Pick<LimitsSettings, 'maxResultRows' | 'maxResultBytes' | 'statementTimeoutMs'>;

/**
 * What one request may still put into its response, counted across its statements: a request of
 * many statements cannot multiply the limits. A statement that fails gives back what it counted,
 * since its rows are not in the response.
 */
export class ResultBudget {
  rows: number;
  bytes: number;

  constructor(readonly limits: ResultLimits) {
    this.rows = limits.maxResultRows;
    this.bytes = limits.maxResultBytes;
  }
}

/**
 * Bytes a value adds to the JSON response, roughly and cheaply: text by its length, BLOBs by their
 * base64 length, numbers and null by a constant. Counted before the value is encoded, so a huge
 * BLOB is refused before it is turned into an even larger base64 string.
 */
function jsonBytes(value: unknown): number {
  if (typeof value === 'string') return value.length + 3;
  if (value instanceof Uint8Array) return Math.ceil(value.byteLength / 3) * 4 + 13;
  return 9;
}

/**
 * Step through a statement's rows, encoding each in place, and stop as soon as the request's row
 * or byte budget or the statement's time is used up. Stepping (better-sqlite3's iterate) instead of
 * `all()` is what lets a huge or endless result be stopped before it is in memory; leaving the loop
 * early calls the iterator's return(), which resets the statement, so the connection is free and
 * holds no read snapshot afterwards.
 *
 * A `singlePass` statement (see isSinglePass) is run with all() instead: it cannot return more
 * than a row or two, and iterate() costs a microsecond or two more per call (an iterator object,
 * a result object per row), a few percent of a point read's whole request. Its rows are counted
 * all the same.
 *
 * The time is checked between rows (every 8th) only: a statement that computes for long before its
 * next row (an aggregate over an endless recursive CTE) is stopped by killing the read process it
 * runs in (read-sandbox.ts); on the writer connection, by its deadline (statement-deadline.ts).
 */
export function readRows(
  statement: Statement,
  args: unknown[],
  budget: ResultBudget,
  index: number,
  singlePass = false,
  encode: (value: unknown) => JsonSqlValue = encodeValue,
): JsonSqlValue[][] {
  const rows: JsonSqlValue[][] = [];
  const maxRows = budget.rows;
  const maxBytes = budget.bytes;
  // One step runs a single-pass statement whole: there is no "between rows" to check the time at.
  const deadline = singlePass ? Infinity : Date.now() + budget.limits.statementTimeoutMs;
  let bytes = 0;
  const source = (singlePass ? statement.all(...args) : statement.iterate(...args)) as Iterable<unknown[]>;
  for (const row of source) {
    for (let column = 0; column < row.length; column++) {
      const value = row[column];
      bytes += jsonBytes(value);
      if (bytes > maxBytes) throw resultTooLarge(budget.limits, index);
      row[column] = encode(value);
    }
    const count = rows.push(row as JsonSqlValue[]);
    if (count > maxRows) throw tooManyRows(budget.limits, index);
    // Every 8th row: reading the clock costs about a tenth of a row.
    if ((count & 7) === 0 && Date.now() > deadline) throw statementTimeout(budget.limits, index);
  }
  budget.rows -= rows.length;
  budget.bytes -= bytes;
  return rows;
}

/** Opcodes that never jump: their p2 is a register, a cursor or a count. */
const STRAIGHT_OPCODES = new Set([
  'OpenRead',
  'Variable',
  'Rowid',
  'Column',
  'ResultRow',
  'Halt',
  'Transaction',
  'Integer',
  'Int64',
  'Real',
  'String8',
  'String',
  'Null',
  'Blob',
  'Copy',
  'SCopy',
  'IntCopy',
  'Count',
  'Close',
  'Function',
  'PureFunc',
  'Affinity',
  'DeferredSeek',
  'Add',
  'Subtract',
  'Multiply',
  'Divide',
  'Remainder',
  'Concat',
  'BitAnd',
  'BitOr',
  'BitNot',
  'ShiftLeft',
  'ShiftRight',
  'Not',
  'Cast',
  'RealAffinity',
  'ColumnsUsed',
  'MakeRecord',
  'TableLock',
  'ReadCookie',
  'Noop',
  'Explain',
  'Trace',
  'CollSeq',
  'AggStep',
  'AggFinal',
]);
/** Opcodes whose p2 is a jump target; allowed only forward (or 0, no jump). */
const FORWARD_JUMP_OPCODES = new Set([
  'Init',
  'Goto',
  'SeekRowid',
  'NotExists',
  'IsNull',
  'NotNull',
  'SeekGE',
  'SeekGT',
  'SeekLE',
  'SeekLT',
  'IdxGT',
  'IdxGE',
  'IdxLT',
  'IdxLE',
  'Once',
  'If',
  'IfNot',
  'Eq',
  'Ne',
  'Lt',
  'Le',
  'Gt',
  'Ge',
  'MustBeInt',
  'NotFound',
  'Found',
  'IfNullRow',
  'Last',
  'Rewind',
]);
/** Jump opcodes that never fall through to the next instruction. */
const UNCONDITIONAL_JUMPS = new Set(['Init', 'Goto']);

/**
 * True when a read-only SELECT compiles to a program without a loop (SQLite's EXPLAIN): every
 * opcode runs at most once, so it returns at most one row per ResultRow opcode, whatever the
 * parameters (a plan is valid for every binding; a schema change clears the statement caches).
 * A point read by rowid or unique key is such a program. Anything else, or anything unknown,
 * is not. Asked once per cached statement, with the first call's arguments (EXPLAIN needs them
 * bound); undefined when they do not bind, so that a bad first call decides nothing.
 */
export function isSinglePass(db: Database, sql: string, args: unknown[]): boolean | undefined {
  if (!/^\s*select\b/i.test(sql)) return false;
  let explain: Statement;
  try {
    explain = db.prepare(`EXPLAIN ${sql}`);
  } catch {
    return false;
  }
  let program: Array<{ addr: number; opcode: string; p2: number }>;
  try {
    program = explain.all(...args) as typeof program;
  } catch {
    return undefined;
  }
  const init = program[0]?.opcode === 'Init' ? program[0].p2 : undefined;
  // Only the instructions the program can reach count: SQLite's min/max optimization leaves a
  // loop behind an unconditional jump (SELECT max(id) is one seek to the last row).
  const reached = new Set<number>();
  const next = [0];
  while (next.length > 0) {
    const addr = next.pop() as number;
    if (reached.has(addr)) continue;
    reached.add(addr);
    const instruction = program[addr];
    if (instruction === undefined) return false;
    const { opcode, p2 } = instruction;
    if (opcode === 'Halt') continue;
    if (STRAIGHT_OPCODES.has(opcode)) {
      next.push(addr + 1);
      continue;
    }
    if (!FORWARD_JUMP_OPCODES.has(opcode)) return false;
    // The prologue: Init jumps to the Transaction opcodes at the end, which jump back to 1, once.
    const prologue = opcode === 'Goto' && p2 === 1 && init !== undefined && addr >= init;
    if (!prologue && !(p2 > addr || (p2 === 0 && opcode !== 'Goto'))) return false;
    if (p2 > 0) next.push(p2);
    if (!UNCONDITIONAL_JUMPS.has(opcode)) next.push(addr + 1);
  }
  return true;
}

export function tooManyRows(limits: ResultLimits, index: number): LitebaseError {
  return new LitebaseError(
    'TOO_MANY_ROWS',
    `the response would hold more than ${limits.maxResultRows} rows; select fewer (LIMIT, paging)`,
    { details: { statement: index, limit: 'rows', maxRows: limits.maxResultRows } },
  );
}

export function resultTooLarge(limits: ResultLimits, index: number): LitebaseError {
  return new LitebaseError(
    'RESULT_TOO_LARGE',
    `the response would be larger than ${limits.maxResultBytes} bytes; select fewer rows or columns`,
    { details: { statement: index, limit: 'bytes', maxBytes: limits.maxResultBytes } },
  );
}

export function statementTimeout(limits: ResultLimits, index: number): LitebaseError {
  return new LitebaseError('STATEMENT_TIMEOUT', `the statement ran longer than ${limits.statementTimeoutMs} ms and was stopped`, {
    details: { statement: index, limit: 'time', timeoutMs: limits.statementTimeoutMs },
  });
}
