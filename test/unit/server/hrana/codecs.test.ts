import { describe, expect, it } from 'vitest';
import { cursorEntries, evaluateCondition } from '../../../../src/server/hrana/batch.js';
import { parsePipelineBody, statementCount } from '../../../../src/server/hrana/parse.js';
import {
  isExplain,
  isForeignKeysSetting,
  parameterSlots,
  splitStatements,
  transactionControl,
} from '../../../../src/server/hrana/sql-text.js';
import {
  bindArguments,
  HranaRequestError,
  toHranaError,
  toStmtResult,
  valueFromResult,
  valueToParam,
} from '../../../../src/server/hrana/values.js';
import { decodeExactValue, encodeExactValue } from '../../../../src/sql/exact-values.js';

describe('Hrana values', () => {
  it('keeps integers and floats apart, at their extremes, both ways', () => {
    expect(valueToParam({ type: 'integer', value: '9223372036854775807' })).toEqual({ $int: '9223372036854775807' });
    expect(valueToParam({ type: 'integer', value: '-9223372036854775808' })).toEqual({ $int: '-9223372036854775808' });
    expect(() => valueToParam({ type: 'integer', value: '9223372036854775808' })).toThrow(HranaRequestError);
    expect(valueToParam({ type: 'float', value: 1 })).toBe(1);
    expect(valueToParam({ type: 'float', value: Number.MAX_VALUE })).toBe(Number.MAX_VALUE);
    expect(valueToParam({ type: 'float', value: -Number.MIN_VALUE })).toBe(-Number.MIN_VALUE);
    expect(valueToParam({ type: 'text', value: 'é' })).toBe('é');
    expect(valueToParam({ type: 'blob', base64: 'AP8=' })).toEqual({ $blob: 'AP8=' });
    expect(valueToParam({ type: 'null' })).toBeNull();
    expect(() => valueToParam({ type: 'date', value: 'x' })).toThrow(HranaRequestError);
    expect(() => valueToParam({ type: 'float', value: '1' })).toThrow(HranaRequestError);

    expect(valueFromResult({ $int: '-9223372036854775808' })).toEqual({ type: 'integer', value: '-9223372036854775808' });
    expect(valueFromResult(1)).toEqual({ type: 'float', value: 1 });
    expect(valueFromResult('t')).toEqual({ type: 'text', value: 't' });
    expect(valueFromResult({ $blob: 'AP8=' })).toEqual({ type: 'blob', base64: 'AP8=' });
    expect(valueFromResult(null)).toEqual({ type: 'null' });
  });

  it('the engine side of the exact encoding binds a float as REAL and an integer as INTEGER', () => {
    expect(decodeExactValue(1)).toBe(1);
    expect(decodeExactValue({ $int: '1' })).toBe(1n);
    expect(decodeExactValue({ $blob: 'AP8=' })).toEqual(Buffer.from([0, 255]));
    expect(encodeExactValue(5n)).toEqual({ $int: '5' });
    expect(encodeExactValue(5)).toBe(5);
    expect(encodeExactValue(new Uint8Array([0, 255]))).toEqual({ $blob: 'AP8=' });
  });

  it('reports SQLite errors by their primary code and keeps Litebase codes', () => {
    expect(toHranaError('SQLITE_CONSTRAINT_UNIQUE', 'UNIQUE constraint failed: t.id')).toEqual({
      code: 'SQLITE_CONSTRAINT',
      message: 'UNIQUE constraint failed: t.id',
    });
    expect(toHranaError('SQLITE_ERROR', 'no such table: x').code).toBe('SQLITE_ERROR');
    expect(toHranaError('PERMISSION_DENIED', 'no').code).toBe('PERMISSION_DENIED');
  });

  it('turns an engine result into a StmtResult, rows dropped when not wanted', () => {
    const result = {
      columns: ['a', 'b'],
      rows: [[{ $int: '1' }, 2.5]],
      rowsAffected: 0,
      lastInsertRowid: null,
      decltypes: ['INTEGER', null],
    };
    expect(toStmtResult(result)).toEqual({
      cols: [
        { name: 'a', decltype: 'INTEGER' },
        { name: 'b', decltype: null },
      ],
      rows: [
        [
          { type: 'integer', value: '1' },
          { type: 'float', value: 2.5 },
        ],
      ],
      affected_row_count: 0,
      last_insert_rowid: null,
    });
    expect(toStmtResult({ ...result, lastInsertRowid: { $int: '9007199254740993' } }, false)).toMatchObject({
      rows: [],
      last_insert_rowid: '9007199254740993',
    });
  });
});

describe('Hrana parameters', () => {
  const int = (value: string) => ({ type: 'integer', value });

  it('numbers parameters as SQLite does: ?, ?NNN with holes, names on first use', () => {
    expect(parameterSlots('SELECT ?, ?, ?')).toEqual([null, null, null].map((name) => ({ name, hole: false })));
    expect(parameterSlots('SELECT ?3, ?1')).toEqual([
      { name: '?1', hole: false },
      { name: null, hole: true },
      { name: '?3', hole: false },
    ]);
    expect(parameterSlots('SELECT ?2, ?, :a, @b, $c, :a').map((slot) => slot.name)).toEqual([null, '?2', null, ':a', '@b', '$c']);
    expect(parameterSlots('SELECT \'?\', "?x", -- ?\n ? /* :y */')).toEqual([{ name: null, hole: false }]);
  });

  it('binds positional arguments by number and named ones by name, with or without prefix', () => {
    expect(bindArguments('SELECT ?, ?', [int('1'), { type: 'float', value: 2 }])).toEqual({ params: [{ $int: '1' }, 2] });
    expect(bindArguments('SELECT ?1, ?3', [int('1'), int('2'), int('3')])).toEqual({
      params: [{ $int: '2' }],
      named: { 1: { $int: '1' }, 3: { $int: '3' } },
    });
    expect(
      bindArguments(
        'SELECT :a, @b, $c',
        [],
        [
          { name: ':a', value: int('1') },
          { name: 'b', value: int('2') },
          { name: '$c', value: int('3') },
        ],
      ),
    ).toEqual({ named: { a: { $int: '1' }, b: { $int: '2' }, c: { $int: '3' } } });
    // A named argument wins over the positional one at its number.
    expect(bindArguments('SELECT :a', [int('1')], [{ name: 'a', value: int('9') }])).toEqual({ named: { a: { $int: '9' } } });
    expect(bindArguments('SELECT :a', [int('1')])).toEqual({ named: { a: { $int: '1' } } });
    expect(() => bindArguments('SELECT ?', [])).toThrow(/no argument for parameter 1/);
    expect(() => bindArguments('SELECT ?', [int('1'), int('2')])).toThrow(/1 parameters, but 2/);
  });
});

describe('Hrana SQL text', () => {
  it('splits a sequence into statements, keeping strings and trigger bodies whole and dropping comment-only ones', () => {
    expect(splitStatements("CREATE TABLE t(a); INSERT INTO t VALUES ('a;b'); -- c;\n;")).toEqual([
      'CREATE TABLE t(a)',
      "INSERT INTO t VALUES ('a;b')",
    ]);
    const trigger = 'CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET a = CASE WHEN 1 THEN 2 END; DELETE FROM t; END';
    expect(splitStatements(`${trigger}; SELECT 1`)).toEqual([trigger, 'SELECT 1']);
  });

  it('recognises transaction control, libSQL READONLY included, and nothing else', () => {
    expect(transactionControl('BEGIN')).toEqual({ kind: 'begin', mode: 'deferred' });
    expect(transactionControl('begin immediate transaction;')).toEqual({ kind: 'begin', mode: 'immediate' });
    expect(transactionControl('BEGIN TRANSACTION READONLY')).toEqual({ kind: 'begin', mode: 'readonly' });
    expect(transactionControl('END')).toEqual({ kind: 'commit' });
    expect(transactionControl('COMMIT TRANSACTION')).toEqual({ kind: 'commit' });
    expect(transactionControl('ROLLBACK')).toEqual({ kind: 'rollback' });
    expect(transactionControl('SAVEPOINT sp')).toEqual({ kind: 'savepoint', name: 'sp' });
    expect(transactionControl('release savepoint "a""b";')).toEqual({ kind: 'release', name: 'a"b' });
    expect(transactionControl('RELEASE [x y]')).toEqual({ kind: 'release', name: 'x y' });
    expect(transactionControl('ROLLBACK TRANSACTION TO SAVEPOINT sp')).toEqual({ kind: 'rollback_to', name: 'sp' });
    expect(transactionControl('ROLLBACK TO sp')).toEqual({ kind: 'rollback_to', name: 'sp' });
    expect(transactionControl('SAVEPOINT sp; DELETE FROM t')).toBeUndefined();
    expect(transactionControl('ROLLBACK TO')).toBeUndefined();
    expect(transactionControl("SELECT 'BEGIN'")).toBeUndefined();
    expect(isForeignKeysSetting('PRAGMA foreign_keys=off')).toBe(true);
    expect(isForeignKeysSetting('pragma FOREIGN_KEYS (1);')).toBe(true);
    expect(isForeignKeysSetting('PRAGMA foreign_keys')).toBe(false);
    expect(isForeignKeysSetting('PRAGMA foreign_keys = off; DROP TABLE t')).toBe(false);
    expect(isExplain('  EXPLAIN SELECT 1')).toBe(true);
    expect(isExplain('SELECT 1')).toBe(false);
  });
});

describe('Hrana batches and bodies', () => {
  it('evaluates conditions over the steps run so far', () => {
    const outcomes = ['ok', 'error', 'skipped'] as const;
    expect(evaluateCondition({ type: 'ok', step: 0 }, outcomes, true)).toBe(true);
    expect(evaluateCondition({ type: 'error', step: 1 }, outcomes, true)).toBe(true);
    expect(evaluateCondition({ type: 'ok', step: 2 }, outcomes, true)).toBe(false);
    expect(evaluateCondition({ type: 'ok', step: 7 }, outcomes, true)).toBe(false);
    expect(evaluateCondition({ type: 'not', cond: { type: 'is_autocommit' } }, outcomes, false)).toBe(true);
    expect(
      evaluateCondition(
        {
          type: 'and',
          conds: [
            { type: 'ok', step: 0 },
            { type: 'error', step: 1 },
          ],
        },
        outcomes,
        true,
      ),
    ).toBe(true);
    expect(evaluateCondition({ type: 'or', conds: [] }, outcomes, true)).toBe(false);
  });

  it('turns a batch result into cursor entries', () => {
    const result = {
      step_results: [
        { cols: [{ name: 'a', decltype: null }], rows: [[{ type: 'null' as const }]], affected_row_count: 0, last_insert_rowid: null },
        null,
        null,
      ],
      step_errors: [null, { message: 'boom', code: 'SQLITE_ERROR' }, null],
    };
    expect(cursorEntries(result)).toEqual([
      { type: 'step_begin', step: 0, cols: [{ name: 'a', decltype: null }] },
      { type: 'row', row: [{ type: 'null' }] },
      { type: 'step_end', affected_row_count: 0, last_insert_rowid: null },
      { type: 'step_error', step: 1, error: { message: 'boom', code: 'SQLITE_ERROR' } },
    ]);
  });

  it('checks pipeline bodies and counts their statements', () => {
    const body = parsePipelineBody({
      baton: null,
      requests: [
        { type: 'execute', stmt: { sql: 'SELECT 1' } },
        { type: 'batch', batch: { steps: [{ stmt: { sql_id: 1 } }, { stmt: { sql: 'SELECT 2' } }] } },
        { type: 'close' },
      ],
    });
    expect(body.baton).toBeNull();
    expect(statementCount(body.requests)).toBe(3);
    expect(() => parsePipelineBody({ requests: [{ type: 'execute', stmt: {} }] })).toThrow(/exactly one of "sql" and "sql_id"/);
    expect(() => parsePipelineBody({ requests: [{ type: 'execute', stmt: { sql: 'SELECT 1', args: {} } }] })).toThrow(
      /args must be an array/,
    );
    expect(() => parsePipelineBody({ requests: [{ type: 'open_cursor' }] })).toThrow(/unknown request type/);
    expect(() => parsePipelineBody({ baton: 5, requests: [] })).toThrow(/baton must be a string or null/);
  });
});
