import { describe, expect, it } from 'vitest';
import { cursorEntries } from '../../../../src/server/hrana/batch.js';
import { cursorEntryJson, pipelineResponseJson } from '../../../../src/server/hrana/json.js';
import type { PipelineResponseBody, StreamResult } from '../../../../src/server/hrana/protocol.js';
import { toStmtResult } from '../../../../src/server/hrana/values.js';

// Results as the session builds them (toStmtResult over the engine's exact encoding), with every
// value type, the extremes, and text that needs escaping.
const odd =
  'quote " backslash \\ newline \n tab \t nul \u0000 unit sep \u001f del \u007f line sep \u2028 é 😀 lone \ud83d half \udc00 </script>';
const rows = toStmtResult({
  columns: ['id', 'f', 't', 'b', 'n', odd],
  decltypes: ['INTEGER', 'REAL', 'TEXT', 'BLOB', null, 'custom "type"'],
  rows: [
    [{ $int: '-9223372036854775808' }, 1.5, odd, { $blob: 'AP8=' }, null, { $int: '0' }],
    [{ $int: '9223372036854775807' }, -0, '', { $blob: '' }, null, Number.MAX_VALUE],
    [{ $int: '1' }, Number.MIN_VALUE, 'x'.repeat(1000), { $blob: 'AAAA' }, null, Infinity],
    // One reason to escape per text, each alone: a lone half of a surrogate pair, a control character, a quote.
    [{ $int: '2' }, NaN, 'lone \udc00 half', { $blob: 'AA==' }, 'control \u0001 only', 'quote " only'],
    [{ $int: '-3' }, 1e21, 'high \ud83d half', 'backslash \\ only', 'é 😀 plain', '\u2028'],
  ],
  rowsAffected: 0,
  lastInsertRowid: null,
});
const write = toStmtResult({ columns: [], rows: [], rowsAffected: 3, lastInsertRowid: { $int: '9007199254740993' }, decltypes: [] });
const unwanted = toStmtResult(
  { columns: ['a'], rows: [[{ $int: '1' }]], rowsAffected: 0, lastInsertRowid: null, decltypes: [null] },
  false,
);

const results: StreamResult[] = [
  { type: 'ok', response: { type: 'execute', result: rows } },
  { type: 'ok', response: { type: 'execute', result: write } },
  { type: 'ok', response: { type: 'execute', result: unwanted } },
  {
    type: 'ok',
    response: {
      type: 'batch',
      result: { step_results: [write, null, rows], step_errors: [null, { message: odd, code: 'SQLITE_CONSTRAINT' }, null] },
    },
  },
  { type: 'ok', response: { type: 'batch', result: { step_results: [], step_errors: [] } } },
  { type: 'error', error: { message: 'no such table: t', code: 'SQLITE_ERROR' } },
  { type: 'ok', response: { type: 'sequence' } },
  {
    type: 'ok',
    response: {
      type: 'describe',
      result: { params: [{ name: ':a' }, { name: null }], cols: [{ name: 'a', decltype: null }], is_explain: false, is_readonly: true },
    },
  },
  { type: 'ok', response: { type: 'store_sql' } },
  { type: 'ok', response: { type: 'close_sql' } },
  { type: 'ok', response: { type: 'get_autocommit', is_autocommit: true } },
  { type: 'ok', response: { type: 'close' } },
];

describe('Hrana answers as JSON text', () => {
  it('writes a pipeline answer exactly as JSON.stringify does', () => {
    for (const body of [
      { baton: null, base_url: null, results },
      { baton: 'bm9kZQ.abc_-', base_url: null, results: results.slice(0, 1) },
      { baton: null, base_url: null, results: [] },
    ] satisfies PipelineResponseBody[]) {
      expect(pipelineResponseJson(body)).toBe(JSON.stringify(body));
    }
  });

  it('writes every cursor line exactly as JSON.stringify does', () => {
    const entries = cursorEntries({ step_results: [rows, null, write], step_errors: [null, { message: odd, code: null }, null] });
    expect(entries.some((entry) => entry.type === 'row')).toBe(true);
    for (const entry of [...entries, { type: 'error' as const, error: { message: 'm', code: 'SQLITE_BUSY' } }]) {
      expect(cursorEntryJson(entry)).toBe(JSON.stringify(entry));
    }
  });
});
