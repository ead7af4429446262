import { LogCollapsingLowestDenseDDSketch } from '@datadog/sketches-js';
import { FingerprintCache, type StatementFingerprint } from './statement-fingerprint.js';
import type { StatementStatsInfo } from '../client/portable/types.js';

/**
 * Statement metrics (docs/API.md "Statement metrics"): per database and per normalized statement
 * (statement-fingerprint.ts), how often it ran, how often it failed, how long it took (quantiles
 * from a DDSketch, 1 % relative error), the rows it returned and changed, and when it last ran.
 *
 * The engine records every statement it runs on this node (executor.ts `runStatement`, also in a
 * read process), so the numbers are this node's: a Replica's are the reads it served, a Primary's
 * every write (forwarded ones included) and the reads it served. Kept in memory only; a restart
 * starts them again.
 *
 * Memory is bounded: at most `maxPerDatabase` statements per database. When a new statement would
 * pass that, the tenth with the least total time goes first (counted in `evicted`): the
 * statements that cost the most stay. A statement costs about 4 KB (measured: 3.7 KB when its runs
 * all take the same time, 5 KB within 20x, 8 KB over 10,000x: the sketch keeps at most 512 bins).
 */

/** One run of one statement, as the executor measured it. */
export interface StatementSample {
  sql: string;
  /** Time to prepare (from the cache, usually), bind and step the statement, in milliseconds. */
  ms: number;
  /** When it ended, in milliseconds since the epoch (`performance.timeOrigin + performance.now()`). */
  at: number;
  /** Rows the statement returned to the client. */
  rowsRead: number;
  /** Rows SQLite reports changed (`changes()`): inserted, updated or deleted. */
  rowsWritten: number;
  /** The error code when the statement failed. */
  error?: string;
}

export interface StatementStatsOptions {
  /** Statements tracked per database; 0 records nothing. */
  maxPerDatabase: number;
  /** Statements per database with their own Prometheus series; the rest are `statement="other"`. */
  prometheusTop: number;
}

export const DEFAULT_STATEMENT_STATS: StatementStatsOptions = { maxPerDatabase: 1000, prometheusTop: 20 };

export type StatementOrder = 'total' | 'count' | 'p99' | 'mean' | 'errors';
export const STATEMENT_ORDERS: readonly StatementOrder[] = ['total', 'count', 'p99', 'mean', 'errors'];

/**
 * One statement as `GET /v1/databases/:db/statements` shows it: the shape the client package
 * declares for the route (src/client/portable/types.ts), with the sketch when asked for.
 */
export interface StatementReport extends StatementStatsInfo {
  /** The run-time sketch, when asked for (to merge the answers of several nodes: statement-merge.ts). */
  sketch?: StatementSketch;
}

/**
 * A DDSketch as JSON: runs too short for the clock, and each non-empty bin as [a run time it
 * stands for (ms), runs]. Accepting each value with its weight into a sketch of the same accuracy
 * fills the same bins, so sketches from several nodes merge exactly.
 */
export interface StatementSketch {
  zero: number;
  bins: Array<[number, number]>;
}

/** A sketch of the accuracy every node uses. */
export function newSketch(): LogCollapsingLowestDenseDDSketch {
  // 1 % relative error; past 512 bins (a range of 27,000x) the fastest runs are merged, so high quantiles stay within 1 %.
  return new LogCollapsingLowestDenseDDSketch({ relativeAccuracy: 0.01, binLimit: 512 });
}

export interface DatabaseStatementsReport {
  /** When this node started counting for the database (its first statement, or the last reset). */
  since: string;
  /** Statements tracked now, and the most that may be. */
  tracked: number;
  maxTracked: number;
  /** Statements dropped to stay within maxTracked, since `since`. */
  evicted: number;
  statements: StatementReport[];
}

/** Histogram buckets of `litebase_statement_duration_seconds`. */
export const STATEMENT_DURATION_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** A statement's Prometheus series: counted from the moment it got its own label. */
export class PrometheusSeries {
  readonly buckets = new Float64Array(STATEMENT_DURATION_BUCKETS.length);
  sumSeconds = 0;
  count = 0;
  errors = 0;
  rowsRead = 0;
  rowsWritten = 0;

  add(sample: StatementSample): void {
    const seconds = sample.ms / 1000;
    let index = 0;
    while (index < STATEMENT_DURATION_BUCKETS.length && seconds > (STATEMENT_DURATION_BUCKETS[index] as number)) index++;
    if (index < STATEMENT_DURATION_BUCKETS.length) this.buckets[index]! += 1;
    this.sumSeconds += seconds;
    this.count += 1;
    if (sample.error !== undefined) this.errors += 1;
    this.rowsRead += sample.rowsRead;
    this.rowsWritten += sample.rowsWritten;
  }
}

class StatementEntry {
  count = 0;
  errors = 0;
  lastError: { code: string; at: number } | undefined;
  totalMs = 0;
  minMs = Infinity;
  maxMs = 0;
  rowsRead = 0;
  rowsWritten = 0;
  lastSeen: number;
  readonly firstSeen: number;
  readonly sketch = newSketch();
  /** Set while the statement has its own Prometheus series. */
  series: PrometheusSeries | undefined;

  constructor(
    readonly id: string,
    readonly text: string,
    now: number,
  ) {
    this.firstSeen = now;
    this.lastSeen = now;
  }

  add(sample: StatementSample, now: number): void {
    this.count += 1;
    this.totalMs += sample.ms;
    if (sample.ms < this.minMs) this.minMs = sample.ms;
    if (sample.ms > this.maxMs) this.maxMs = sample.ms;
    this.rowsRead += sample.rowsRead;
    this.rowsWritten += sample.rowsWritten;
    this.lastSeen = now;
    if (sample.error !== undefined) {
      this.errors += 1;
      this.lastError = { code: sample.error, at: now };
    }
    // A DDSketch takes positive values; a run too short for the clock is counted as zero.
    this.sketch.accept(sample.ms > 0 ? sample.ms : 0);
  }

  quantile(q: number): number {
    return this.count === 0 ? 0 : Math.max(0, this.sketch.getValueAtQuantile(q));
  }

  /** The sketch as JSON (StatementSketch). */
  sketchJson(): StatementSketch {
    const { store, mapping } = this.sketch;
    const bins: Array<[number, number]> = [];
    store.bins.forEach((count, index) => {
      if (count > 0) bins.push([mapping.value(index + store.offset), count]);
    });
    return { zero: this.sketch.zeroCount, bins };
  }

  report(withSketch = false): StatementReport {
    const round = (ms: number): number => Math.round(ms * 1000) / 1000;
    return {
      id: this.id,
      sql: this.text,
      count: this.count,
      errors: this.errors,
      lastError: this.lastError ? { code: this.lastError.code, at: new Date(this.lastError.at).toISOString() } : null,
      totalMs: round(this.totalMs),
      meanMs: round(this.count === 0 ? 0 : this.totalMs / this.count),
      minMs: round(this.count === 0 ? 0 : this.minMs),
      maxMs: round(this.maxMs),
      // A sketch's answer is within 1 % of a real run time; kept within the runs' own range.
      p50Ms: round(Math.min(this.maxMs, Math.max(this.minMs, this.quantile(0.5)))),
      p90Ms: round(Math.min(this.maxMs, Math.max(this.minMs, this.quantile(0.9)))),
      p99Ms: round(Math.min(this.maxMs, Math.max(this.minMs, this.quantile(0.99)))),
      rowsRead: this.rowsRead,
      rowsWritten: this.rowsWritten,
      firstSeen: new Date(this.firstSeen).toISOString(),
      lastSeen: new Date(this.lastSeen).toISOString(),
      ...(withSketch ? { sketch: this.sketchJson() } : {}),
    };
  }
}

/** One database's statements on this node. */
export class DatabaseStatements {
  readonly entries = new Map<string, StatementEntry>();
  /** Runs of statements without their own Prometheus series. */
  readonly other = new PrometheusSeries();
  /** Statements with their own series now. */
  labelled = 0;
  readonly since = Date.now();
  /** When the labelled statements were last chosen (Date.now()); at first, the first ones seen have them. */
  rankedAt = this.since;
  evicted = 0;

  constructor(private readonly options: StatementStatsOptions) {}

  record(fingerprint: StatementFingerprint, sample: StatementSample, now: number): void {
    let entry = this.entries.get(fingerprint.id);
    if (entry === undefined) {
      if (this.entries.size >= this.options.maxPerDatabase) this.evict();
      entry = new StatementEntry(fingerprint.id, fingerprint.text, now);
      this.entries.set(fingerprint.id, entry);
      // Free labels go to new statements at once; rank() gives them to the costliest later.
      if (this.labelled < this.options.prometheusTop) this.label(entry);
    }
    entry.add(sample, now);
    (entry.series ?? this.other).add(sample);
  }

  /** Drop the tenth (at least one) of the statements with the least total time. */
  private evict(): void {
    const count = Math.max(1, Math.ceil(this.entries.size / 10));
    const cheapest = [...this.entries.values()].sort((a, b) => a.totalMs - b.totalMs).slice(0, count);
    for (const entry of cheapest) {
      this.entries.delete(entry.id);
      if (entry.series) this.unlabel(entry);
    }
    this.evicted += cheapest.length;
  }

  private label(entry: StatementEntry): void {
    entry.series = new PrometheusSeries();
    this.labelled += 1;
  }

  private unlabel(entry: StatementEntry): void {
    entry.series = undefined;
    this.labelled -= 1;
  }

  /**
   * Give the Prometheus labels to the `prometheusTop` statements with the most total time, at most
   * once per `intervalMs`. A statement that loses its label loses its series (its later runs count
   * under "other"); one that gains a label starts a new series at zero, so every series only grows.
   */
  rank(now: number, intervalMs: number): void {
    if (now - this.rankedAt < intervalMs) return;
    this.rankedAt = now;
    const top = new Set([...this.entries.values()].sort((a, b) => b.totalMs - a.totalMs).slice(0, this.options.prometheusTop));
    for (const entry of this.entries.values()) if (entry.series && !top.has(entry)) this.unlabel(entry);
    for (const entry of top) if (!entry.series) this.label(entry);
  }

  /** The labelled statements and their series. */
  *series(): Generator<{ id: string; text: string; series: PrometheusSeries }> {
    for (const entry of this.entries.values()) if (entry.series) yield { id: entry.id, text: entry.text, series: entry.series };
  }

  report(order: StatementOrder, limit: number, withSketches = false): DatabaseStatementsReport {
    const key = ORDER_KEYS[order];
    const ordered = [...this.entries.values()]
      .map((entry) => ({ entry, key: key(entry) }))
      .sort((a, b) => b.key - a.key || b.entry.totalMs - a.entry.totalMs || (a.entry.id < b.entry.id ? -1 : 1))
      .slice(0, limit);
    return {
      since: new Date(this.since).toISOString(),
      tracked: this.entries.size,
      maxTracked: this.options.maxPerDatabase,
      evicted: this.evicted,
      statements: ordered.map(({ entry }) => entry.report(withSketches)),
    };
  }
}

const ORDER_KEYS: Record<StatementOrder, (entry: StatementEntry) => number> = {
  total: (entry) => entry.totalMs,
  count: (entry) => entry.count,
  p99: (entry) => entry.quantile(0.99),
  mean: (entry) => (entry.count === 0 ? 0 : entry.totalMs / entry.count),
  errors: (entry) => entry.errors,
};

/** Every database's statements on this node. */
export class StatementStats {
  private readonly databases = new Map<string, DatabaseStatements>();
  readonly options: StatementStatsOptions;

  constructor(
    options: Partial<StatementStatsOptions> = {},
    private readonly fingerprints = new FingerprintCache(),
  ) {
    this.options = { ...DEFAULT_STATEMENT_STATS, ...options };
  }

  get enabled(): boolean {
    return this.options.maxPerDatabase > 0;
  }

  /** Count the runs of one request (or one part of it) against `database`. */
  record(database: string, samples: readonly StatementSample[]): void {
    if (samples.length === 0 || !this.enabled) return;
    let statements = this.databases.get(database);
    if (statements === undefined) {
      statements = new DatabaseStatements(this.options);
      this.databases.set(database, statements);
    }
    for (const sample of samples) statements.record(this.fingerprints.fingerprint(sample.sql), sample, sample.at);
  }

  /** What the route shows; undefined before the database's first statement on this node. */
  report(database: string, order: StatementOrder, limit: number, withSketches = false): DatabaseStatementsReport | undefined {
    return this.databases.get(database)?.report(order, limit, withSketches);
  }

  /** Start counting the database's statements again from nothing (`DELETE .../statements`). */
  reset(database: string): void {
    if (this.databases.has(database)) this.databases.set(database, new DatabaseStatements(this.options));
  }

  /** Forget the database (it was dropped). */
  forget(database: string): void {
    this.databases.delete(database);
  }

  /** The databases with statements, for the Prometheus export. */
  entries(): IterableIterator<[string, DatabaseStatements]> {
    return this.databases.entries();
  }
}
