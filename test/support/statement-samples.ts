import type { StatementSample } from '../../src/engine/statement-stats.js';

/** One run of `sql` taking `ms`, now, with no rows unless `extra` says otherwise. */
export const sample = (sql: string, ms: number, extra: Partial<StatementSample> = {}): StatementSample => ({
  sql,
  ms,
  at: Date.now(),
  rowsRead: 0,
  rowsWritten: 0,
  ...extra,
});
