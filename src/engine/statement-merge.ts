import { newSketch, type StatementOrder, type StatementReport } from './statement-stats.js';

/**
 * The statement metrics of several nodes as one (GET /v1/databases/:db/statements?scope=cluster):
 * per statement id, counts, errors, rows and total times add up, the smallest minimum and the
 * largest maximum win, and the run-time sketches merge exactly (each node sends its bins), so the
 * cluster's p50/p90/p99 are within the same 1 % as one node's.
 */
export function mergeStatementReports(
  lists: ReadonlyArray<readonly StatementReport[]>,
  order: StatementOrder,
  limit: number,
): StatementReport[] {
  const byId = new Map<string, StatementReport[]>();
  for (const list of lists) {
    for (const report of list) {
      const reports = byId.get(report.id);
      if (reports) reports.push(report);
      else byId.set(report.id, [report]);
    }
  }
  const merged = [...byId.values()].map(mergeOne);
  const key = ORDER_KEYS[order];
  return merged.sort((a, b) => key(b) - key(a) || b.totalMs - a.totalMs || (a.id < b.id ? -1 : 1)).slice(0, limit);
}

const ORDER_KEYS: Record<StatementOrder, (report: StatementReport) => number> = {
  total: (report) => report.totalMs,
  count: (report) => report.count,
  p99: (report) => report.p99Ms,
  mean: (report) => report.meanMs,
  errors: (report) => report.errors,
};

const round = (ms: number): number => Math.round(ms * 1000) / 1000;
const latest = (a: string, b: string): string => (Date.parse(a) >= Date.parse(b) ? a : b);
const earliest = (a: string, b: string): string => (Date.parse(a) <= Date.parse(b) ? a : b);

function mergeOne(reports: readonly StatementReport[]): StatementReport {
  const [first, ...rest] = reports as [StatementReport, ...StatementReport[]];
  if (rest.length === 0) {
    const { sketch: _sketch, ...only } = first;
    return only;
  }
  const sketch = newSketch();
  let count = 0;
  let errors = 0;
  let totalMs = 0;
  let rowsRead = 0;
  let rowsWritten = 0;
  let minMs = Infinity;
  let maxMs = 0;
  let { firstSeen, lastSeen, lastError } = first;
  for (const report of reports) {
    count += report.count;
    errors += report.errors;
    totalMs += report.totalMs;
    rowsRead += report.rowsRead;
    rowsWritten += report.rowsWritten;
    if (report.count > 0) minMs = Math.min(minMs, report.minMs);
    maxMs = Math.max(maxMs, report.maxMs);
    firstSeen = earliest(firstSeen, report.firstSeen);
    lastSeen = latest(lastSeen, report.lastSeen);
    if (report.lastError && (!lastError || latest(lastError.at, report.lastError.at) === report.lastError.at)) lastError = report.lastError;
    if (report.sketch) {
      if (report.sketch.zero > 0) sketch.accept(0, report.sketch.zero);
      for (const [value, runs] of report.sketch.bins) sketch.accept(value, runs);
    }
  }
  if (minMs === Infinity) minMs = 0;
  const quantile = (q: number): number =>
    round(Math.min(maxMs, Math.max(minMs, sketch.count === 0 ? 0 : Math.max(0, sketch.getValueAtQuantile(q)))));
  return {
    id: first.id,
    sql: first.sql,
    count,
    errors,
    lastError,
    totalMs: round(totalMs),
    meanMs: round(count === 0 ? 0 : totalMs / count),
    minMs,
    maxMs,
    p50Ms: quantile(0.5),
    p90Ms: quantile(0.9),
    p99Ms: quantile(0.99),
    rowsRead,
    rowsWritten,
    firstSeen,
    lastSeen,
  };
}
