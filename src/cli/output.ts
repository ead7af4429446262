import { createRequire } from 'node:module';
import type TableConstructor from 'cli-table3';
import type { StatementResult } from '../client/client.js';
import type { SqlValue } from '../sql/values.js';

/** Output for people. Machine output is `--json`: the server's answer, one line. */

const BLOB_PREVIEW_BYTES = 32;

/** One value as a table cell: NULL spelled out, BLOBs as SQL hex literals (long ones cut short). */
export function formatValue(value: SqlValue): string {
  if (value === null) return 'NULL';
  if (value instanceof Uint8Array) {
    const bytes = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    if (bytes.length <= BLOB_PREVIEW_BYTES) return `x'${bytes.toString('hex')}'`;
    return `x'${bytes.subarray(0, BLOB_PREVIEW_BYTES).toString('hex')}…' (${bytes.length} bytes)`;
  }
  return String(value);
}

/** cli-table3 and its dependencies load on the first table, not with every command (a restore prints none). */
let Table: typeof TableConstructor | undefined;

/** A plain table: no colours, so output piped to a file or another program stays clean. */
export function renderTable(head: string[], rows: string[][]): string {
  Table ??= createRequire(import.meta.url)('cli-table3') as typeof TableConstructor;
  const table = new Table({ head, style: { head: [], border: [] } });
  table.push(...rows);
  return table.toString();
}

export function plural(count: number | bigint, one: string, many = `${one}s`): string {
  return `${count} ${count === 1 || count === 1n ? one : many}`;
}

/** A statement's result: its rows as a table when it has columns, then a one-line summary. */
export function renderResult(result: StatementResult, suffix = ''): string {
  const lines: string[] = [];
  if (result.columns.length > 0) {
    lines.push(
      renderTable(
        result.columns,
        result.rows.map((row) => row.map(formatValue)),
      ),
    );
    const affected = result.rowsAffected > 0 ? `, ${plural(result.rowsAffected, 'row')} affected` : '';
    lines.push(`${plural(result.rows.length, 'row')}${affected}${suffix}`);
  } else {
    const rowid = result.lastInsertRowid === null ? '' : `, last insert rowid ${result.lastInsertRowid}`;
    lines.push(`${plural(result.rowsAffected, 'row')} affected${rowid}${suffix}`);
  }
  return lines.join('\n');
}
