/**
 * Plain-text tables for the human-readable part of the output. Hand-rolled rather than cli-table3
 * so the output stays plain ASCII that pastes cleanly into bench/README.md and CI logs.
 */

export type Cell = string | number | null | undefined;

export interface Column {
  header: string;
  /** Numbers and dashes read best right-aligned. */
  align?: 'left' | 'right';
}

export function formatNumber(value: number | null | undefined, digits = 0): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '-';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function renderTable(columns: Column[], rows: Cell[][]): string {
  const text = rows.map((row) => columns.map((_, index) => cellText(row[index])));
  const widths = columns.map((column, index) => Math.max(column.header.length, ...text.map((row) => (row[index] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((cell, index) => {
        const width = widths[index] ?? cell.length;
        return columns[index]?.align === 'right' ? cell.padStart(width) : cell.padEnd(width);
      })
      .join('  ')
      .trimEnd();
  const rule = widths.map((width) => '-'.repeat(width)).join('  ');
  return [line(columns.map((column) => column.header)), rule, ...text.map(line)].join('\n');
}

function cellText(cell: Cell): string {
  if (cell === null || cell === undefined) return '-';
  return typeof cell === 'number' ? formatNumber(cell) : cell;
}
