import { stringify } from 'csv-stringify/sync';
import type { StatementResult } from '../../client/client.js';
import { toJsonValue, type SqlValue } from '../../sql/values.js';
import { formatValue, plural, renderTable } from '../output.js';

/**
 * How the shell prints a statement's result, per `.mode` (docs/SHELL.md). Pure: a result in, text
 * out. `table` and `line` are for people and say how many rows came back or changed; `json` and
 * `csv` print the rows and nothing else, so their output can be piped into another program.
 */

export const OUTPUT_MODES = ['table', 'json', 'csv', 'line'] as const;
export type OutputMode = (typeof OUTPUT_MODES)[number];

export function isOutputMode(text: string): text is OutputMode {
  return (OUTPUT_MODES as readonly string[]).includes(text);
}

export interface ResultNote {
  /** The durable position of a write that committed on its own (not inside BEGIN ... COMMIT). */
  position?: string;
}

/** The text for one result, without a final newline; empty when the mode prints nothing for it. */
export function formatResult(result: StatementResult, mode: OutputMode, note: ResultNote = {}): string {
  const hasRows = result.columns.length > 0;
  switch (mode) {
    case 'table':
      return hasRows
        ? `${renderTable(
            result.columns,
            result.rows.map((row) => row.map(formatValue)),
          )}\n${rowsSummary(result)}`
        : changeSummary(result, note);
    case 'line':
      return hasRows ? [...formatLines(result), rowsSummary(result)].join('\n\n') : changeSummary(result, note);
    case 'json':
      return hasRows ? formatJson(result) : '';
    case 'csv':
      return hasRows ? stringify([result.columns, ...result.rows.map((row) => row.map(csvCell))]).replace(/\n$/, '') : '';
  }
}

function rowsSummary(result: StatementResult): string {
  const affected = result.rowsAffected > 0 ? `, ${plural(result.rowsAffected, 'row')} affected` : '';
  return `${plural(result.rows.length, 'row')}${affected}`;
}

function changeSummary(result: StatementResult, note: ResultNote): string {
  const rowid = result.lastInsertRowid === null ? '' : `, last insert rowid ${result.lastInsertRowid}`;
  const position = note.position === undefined ? '' : `, position ${note.position}`;
  return `${plural(result.rowsAffected, 'row')} affected${rowid}${position}`;
}

/** One block per row, `column = value` per line, names right-aligned (as sqlite3's `.mode line`). */
function formatLines(result: StatementResult): string[] {
  const width = Math.max(...result.columns.map((column) => column.length));
  return result.rows.map((row) =>
    result.columns.map((column, index) => `${column.padStart(width)} = ${formatValue(row[index] ?? null)}`).join('\n'),
  );
}

/**
 * An array with one object per row, one row a line (as sqlite3's `.mode json`). Values are encoded
 * as in the HTTP API: integers beyond ±2^53 as {"$int":"..."}, BLOBs as {"$blob":"<base64>"}.
 * Written key by key so that two columns of the same name both appear, as SQLite returned them.
 */
function formatJson(result: StatementResult): string {
  const keys = result.columns.map((column) => JSON.stringify(column));
  const objects = result.rows.map(
    (row) => `{${keys.map((key, index) => `${key}:${JSON.stringify(toJsonValue(row[index] ?? null))}`).join(',')}}`,
  );
  return `[${objects.join(',\n')}]`;
}

/** NULL as an empty field, BLOBs as whole SQL hex literals, everything else as text. */
function csvCell(value: SqlValue): string {
  if (value === null) return '';
  if (value instanceof Uint8Array) return `x'${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}'`;
  return String(value);
}
