import { describe, expect, it } from 'vitest';
import type { StatementResult } from '../../../../src/client/client.js';
import { formatResult, isOutputMode } from '../../../../src/cli/shell/result-format.js';

/** The shell's output modes (src/cli/shell/result-format.ts). */

const rows: StatementResult = {
  columns: ['id', 'name', 'big', 'raw'],
  rows: [
    [1, 'alice', 9007199254740993n, Buffer.from([0, 255])],
    [2, 'b, "quoted"\nline', null, null],
  ],
  rowsAffected: 0,
  lastInsertRowid: null,
};
const insert: StatementResult = { columns: [], rows: [], rowsAffected: 2, lastInsertRowid: 7 };
const empty: StatementResult = { columns: ['a'], rows: [], rowsAffected: 0, lastInsertRowid: null };

describe('formatResult', () => {
  it('table: a table and a row count; writes say what changed and where', () => {
    const text = formatResult(rows, 'table');
    expect(text).toMatch(/^┌/);
    expect(text).toContain('│ alice');
    expect(text).toContain("x'00ff'");
    expect(text).toContain('9007199254740993');
    expect(text).toContain('NULL');
    expect(text.split('\n').at(-1)).toBe('2 rows');
    expect(formatResult(insert, 'table', { position: '12' })).toBe('2 rows affected, last insert rowid 7, position 12');
    expect(formatResult(insert, 'table')).toBe('2 rows affected, last insert rowid 7');
    expect(formatResult({ ...insert, rowsAffected: 1, lastInsertRowid: null }, 'table')).toBe('1 row affected');
    expect(formatResult(empty, 'table').split('\n').at(-1)).toBe('0 rows');
  });

  it('json: one object per row, values encoded as in the HTTP API', () => {
    const text = formatResult(rows, 'json');
    expect(text.split('\n')).toHaveLength(2); // one row a line: the newline inside the text is escaped
    expect(JSON.parse(text)).toEqual([
      { id: 1, name: 'alice', big: { $int: '9007199254740993' }, raw: { $blob: 'AP8=' } },
      { id: 2, name: 'b, "quoted"\nline', big: null, raw: null },
    ]);
    expect(formatResult(empty, 'json')).toBe('[]');
    expect(formatResult(insert, 'json')).toBe('');
  });

  it('json: two columns of one name both appear', () => {
    expect(formatResult({ columns: ['a', 'a'], rows: [[1, 2]], rowsAffected: 0, lastInsertRowid: null }, 'json')).toBe('[{"a":1,"a":2}]');
  });

  it('csv: a header, RFC 4180 quoting, NULL as an empty field, whole BLOBs in hex', () => {
    const long = Buffer.alloc(40, 0xab);
    expect(formatResult(rows, 'csv')).toBe('id,name,big,raw\n1,alice,9007199254740993,x\'00ff\'\n2,"b, ""quoted""\nline",,');
    expect(formatResult({ columns: ['b'], rows: [[long]], rowsAffected: 0, lastInsertRowid: null }, 'csv')).toBe(
      `b\nx'${'ab'.repeat(40)}'`,
    );
    expect(formatResult(empty, 'csv')).toBe('a');
    expect(formatResult(insert, 'csv')).toBe('');
  });

  it('line: one block per row, names right-aligned', () => {
    const text = formatResult(rows, 'line');
    const blocks = text.split('\n\n');
    expect(blocks[0]).toBe("  id = 1\nname = alice\n big = 9007199254740993\n raw = x'00ff'");
    expect(blocks[1]).toBe('  id = 2\nname = b, "quoted"\nline\n big = NULL\n raw = NULL');
    expect(blocks[2]).toBe('2 rows');
    expect(formatResult(insert, 'line', { position: '3' })).toBe('2 rows affected, last insert rowid 7, position 3');
  });

  it('knows its modes', () => {
    expect(['table', 'json', 'csv', 'line'].every(isOutputMode)).toBe(true);
    expect(isOutputMode('column')).toBe(false);
  });
});
