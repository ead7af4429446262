import type { LoadResult } from './load.js';
import type { CpuUsage } from './machine.js';

export interface BenchOptions {
  connections: number;
  warmupSeconds: number;
  measureSeconds: number;
  /** --shared-dir: the folder(s) for the data dirs of the runs on a shared file system (server.ts, parseSharedDirs). */
  sharedDirs?: string[];
}

export const DEFAULT_OPTIONS: BenchOptions = { connections: 64, warmupSeconds: 3, measureSeconds: 12 };

export function round(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/** value / base, or null when there is no base to compare with (a run that produced nothing). */
export function ratio(value: number, base: number): number | null {
  return base > 0 ? round(value / base, 3) : null;
}

/** One load run as it appears in the JSON: rounded, snake_case, units in the names. */
export interface LoadSummary {
  rps: number;
  ok: number;
  /** 200 answers a body check rejected (only loads with a check, e.g. "answered by a Replica"). */
  rejected: number;
  seconds: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  max_ms: number;
  non2xx: number;
  non200: number;
  errors: number;
  timeouts: number;
  error_rate: number;
  status_counts: Record<string, number>;
  cpu: CpuUsage;
  client_setup_ms: number;
}

export function summarize(result: LoadResult): LoadSummary {
  return {
    rps: round(result.rps, 1),
    ok: result.ok,
    rejected: result.rejected,
    seconds: result.seconds,
    p50_ms: round(result.p50, 3),
    p90_ms: round(result.p90, 3),
    p99_ms: round(result.p99, 3),
    max_ms: round(result.max, 3),
    non2xx: result.non2xx,
    non200: result.non200,
    errors: result.errors,
    timeouts: result.timeouts,
    error_rate: round(result.errorRate, 5),
    status_counts: result.statusCounts,
    cpu: result.cpu,
    client_setup_ms: round(result.clientSetupMs, 1),
  };
}

/** Progress goes to stderr so stdout holds only the table and the final JSON line. */
export function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

/** Seconds since `startMs`, for the durations block of the report. */
export function since(startMs: number): number {
  return round((performance.now() - startMs) / 1000, 2);
}

export interface BenchOutcome<T> {
  report: T;
  /** The human-readable table printed before the JSON line. */
  table: string;
}

/** One goal of a benchmark, for the summary of `all`: `measured >= min` passes. */
export interface GoalSummary {
  benchmark: string;
  /** The goal as the benchmark's own goal table states it. */
  goal: string;
  measured: number | null;
  min: number;
  pass: boolean;
}

/** Trailing lines of a table: server log lines, warnings, failures. */
export function notes(warnings: string[], failures: string[], serverLines: number): string[] {
  const lines: string[] = [];
  if (serverLines > 0) lines.push('', `server printed ${serverLines} warning/error line(s); samples in the JSON (server_log_lines)`);
  if (warnings.length > 0) lines.push('', ...warnings.map((warning) => `WARNING: ${warning}`));
  if (failures.length > 0) lines.push('', ...failures.map((failure) => `FAILED: ${failure}`));
  return lines;
}

/** Another process using this much CPU (percent of one core) during a window disturbs the figure. */
const BUSY_NEIGHBOUR_PCT = 25;

export function cpuWarnings(results: LoadResult[]): string[] {
  return results
    .filter((result) => (result.cpu.other_pct ?? 0) > BUSY_NEIGHBOUR_PCT)
    .map(
      (result) =>
        `other processes used ${result.cpu.other_pct ?? 0}% CPU (of ${result.cpu.capacity_pct}%) during "${result.title}": ` +
        'the machine was not idle, so that figure is low and noisy',
    );
}

/** "server/load generator/other" CPU percent, for a table cell. */
export function cpuCell(cpu: CpuUsage): string {
  const show = (value: number | null): string => (value === null ? '-' : String(value));
  return `${show(cpu.server_pct)}/${show(cpu.bench_pct)}/${show(cpu.other_pct)}`;
}
