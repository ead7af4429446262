import { LitebaseError } from '../errors.js';

/**
 * The restore planner (pure: no I/O). Given what history exists (checkpoints and runs of
 * consecutive segments, from the archive and from the shared log) and a target (a position, or a
 * time), it picks the checkpoint to start from and the segments to apply, or says with a typed
 * error why the target cannot be reached.
 *
 * Times: a segment's commit time is the Primary's clock when it was written. Times are taken to
 * grow along the log; restoring to time T applies segments in position order and stops before the
 * first one committed after T, so the result is the database as the last write at or before T
 * left it. The checkpoint it starts from is the newest one committed at or before T.
 */

/**
 * Where a checkpoint is: a full checkpoint (`.ckpt`) in the archive or on the shared folder, or a
 * range checkpoint's manifest in the archive (its ranges under the archive's `ranges/`) or on the
 * shared folder (its ranges in `rangesDir`).
 */
export type CheckpointLocation =
  | { kind: 'archive'; key: string; sha256?: string }
  | { kind: 'shared'; file: string }
  | { kind: 'archive-manifest'; key: string; sha256?: string }
  | { kind: 'shared-manifest'; file: string; rangesDir: string };

/** Whether a checkpoint is read from the object store (else from the shared folder). */
export function isArchivedCheckpoint(location: CheckpointLocation): location is Extract<CheckpointLocation, { key: string }> {
  return location.kind === 'archive' || location.kind === 'archive-manifest';
}
export type RunLocation = { kind: 'archive'; key: string; sha256?: string } | { kind: 'log' };

export interface CheckpointSource {
  position: bigint;
  timeMs: number;
  bytes: number;
  location: CheckpointLocation;
}

/** Segments first..last, all present, in one object (a bundle) or in the shared log. */
export interface SegmentRun {
  first: bigint;
  last: bigint;
  firstTimeMs: number;
  lastTimeMs: number;
  bytes: number;
  location: RunLocation;
}

export interface RestoreCatalog {
  database: string;
  databaseId: string;
  checkpoints: CheckpointSource[];
  runs: SegmentRun[];
}

export type RestoreTarget = { position: bigint } | { timeMs: number };

export interface RestorePoint {
  position: bigint;
  timeMs: number;
}

/** One run's part of a plan: apply positions from..to out of it. */
export interface PlanStep {
  run: SegmentRun;
  from: bigint;
  to: bigint;
}

export interface RestorePlan {
  database: string;
  databaseId: string;
  target: RestoreTarget;
  /** The checkpoint to start from; undefined: an empty database (position 0). */
  base: CheckpointSource | undefined;
  basePosition: bigint;
  steps: PlanStep[];
  /** For a position target, the position the restore ends at; for a time, the most it can reach. */
  lastPosition: bigint;
  /** Bytes to read (the checkpoint, whole bundles, the log segments' share): the 100 % of progress. */
  totalBytes: number;
  /** Segments at most to apply. */
  totalSegments: number;
  /** The time is after the newest history there is: the restore ends at the newest position. */
  clampedToLatest: boolean;
}

export type RestorePlanErrorCode = 'RESTORE_NO_HISTORY' | 'RESTORE_OUT_OF_RANGE' | 'RESTORE_GAP';

export class RestorePlanError extends LitebaseError {
  declare readonly code: RestorePlanErrorCode;

  constructor(code: RestorePlanErrorCode, message: string, details: Record<string, unknown> = {}) {
    super(code, message, { details });
    this.name = 'RestorePlanError';
  }
}

/** A place to start from: a checkpoint, or the empty database before segment 1. */
interface Base {
  position: bigint;
  /** -Infinity for the empty database. */
  timeMs: number;
  checkpoint: CheckpointSource | undefined;
}

export interface RestoreRange {
  earliest: RestorePoint;
  latest: RestorePoint;
}

/** The earliest and latest restorable positions and times; undefined when there is no history. */
export function restoreRange(catalog: RestoreCatalog): RestoreRange | undefined {
  const bases = basesOf(catalog);
  if (bases.length === 0) return undefined;
  let earliest: RestorePoint | undefined;
  let latest: RestorePoint | undefined;
  for (const base of bases) {
    const reach = reachFrom(catalog.runs, base.position);
    const start: RestorePoint | undefined = base.checkpoint
      ? { position: base.position, timeMs: base.timeMs }
      : reach.position >= 1n
        ? { position: 1n, timeMs: firstTimeOfPosition1(catalog.runs) }
        : undefined;
    if (!start) continue;
    if (!earliest || start.position < earliest.position) earliest = start;
    const end: RestorePoint = reach.position > base.position ? { position: reach.position, timeMs: reach.timeMs } : start;
    if (!latest || end.position > latest.position) latest = end;
  }
  return earliest && latest ? { earliest, latest } : undefined;
}

export function planRestore(catalog: RestoreCatalog, target: RestoreTarget): RestorePlan {
  const range = restoreRange(catalog);
  if (!range) {
    throw new RestorePlanError('RESTORE_NO_HISTORY', `database ${catalog.database} (${catalog.databaseId}) has no restorable history`);
  }
  const bases = basesOf(catalog).sort((a, b) => (a.position > b.position ? -1 : a.position < b.position ? 1 : 0));
  return 'position' in target ? planToPosition(catalog, range, bases, target.position) : planToTime(catalog, range, bases, target.timeMs);
}

function planToPosition(catalog: RestoreCatalog, range: RestoreRange, newestFirst: Base[], position: bigint): RestorePlan {
  if (position < range.earliest.position || position > range.latest.position) {
    throw outOfRange(catalog, range, `position ${position}`);
  }
  for (const base of newestFirst) {
    if (base.position > position) continue;
    const steps = cover(catalog.runs, base.position, position);
    const reached = steps.at(-1)?.to ?? base.position;
    if (reached === position) return plan(catalog, { position }, base, steps, position, false);
  }
  throw new RestorePlanError(
    'RESTORE_GAP',
    `position ${position} of database ${catalog.database} cannot be reached: segments between the newest checkpoint before it and it are missing`,
    { position: position.toString() },
  );
}

function planToTime(catalog: RestoreCatalog, range: RestoreRange, newestFirst: Base[], timeMs: number): RestorePlan {
  if (timeMs < range.earliest.timeMs) throw outOfRange(catalog, range, `time ${new Date(timeMs).toISOString()}`);
  // The newest base committed at or before the time (the empty database only when no checkpoint is).
  const base = newestFirst.find((candidate) => candidate.timeMs <= timeMs);
  if (!base) throw outOfRange(catalog, range, `time ${new Date(timeMs).toISOString()}`);
  const all = cover(catalog.runs, base.position, undefined);
  const steps: PlanStep[] = [];
  for (const step of all) {
    if (step.from === step.run.first && step.run.firstTimeMs > timeMs) break;
    steps.push(step);
    if (step.run.lastTimeMs > timeMs) break; // the target is inside this run
  }
  const reached = steps.at(-1)?.to ?? base.position;
  const coveredToEnd = steps.length === all.length;
  // History after a gap that is still at or before the time: the state at that time is unreachable.
  if (coveredToEnd) {
    const beyond =
      catalog.runs.some((run) => run.first > reached + 1n && run.firstTimeMs <= timeMs) ||
      catalog.checkpoints.some((checkpoint) => checkpoint.position > reached && checkpoint.timeMs <= timeMs);
    if (beyond) {
      throw new RestorePlanError(
        'RESTORE_GAP',
        `time ${new Date(timeMs).toISOString()} of database ${catalog.database} cannot be reached: segments after position ${reached} are missing`,
        { position: reached.toString() },
      );
    }
  }
  const clampedToLatest = coveredToEnd && timeMs >= range.latest.timeMs;
  return plan(catalog, { timeMs }, base, steps, reached, clampedToLatest);
}

function plan(
  catalog: RestoreCatalog,
  target: RestoreTarget,
  base: Base,
  steps: PlanStep[],
  lastPosition: bigint,
  clampedToLatest: boolean,
): RestorePlan {
  let totalBytes = base.checkpoint?.bytes ?? 0;
  let totalSegments = 0;
  for (const step of steps) {
    const count = Number(step.to - step.from + 1n);
    totalSegments += count;
    if (step.run.location.kind === 'archive') {
      totalBytes += step.run.bytes; // a bundle is downloaded whole
    } else {
      const runCount = Number(step.run.last - step.run.first + 1n);
      totalBytes += Math.round((step.run.bytes * count) / Math.max(1, runCount));
    }
  }
  return {
    database: catalog.database,
    databaseId: catalog.databaseId,
    target,
    base: base.checkpoint,
    basePosition: base.position,
    steps,
    lastPosition,
    totalBytes,
    totalSegments,
    clampedToLatest,
  };
}

function outOfRange(catalog: RestoreCatalog, range: RestoreRange, what: string): RestorePlanError {
  const earliest = `position ${range.earliest.position} (${new Date(range.earliest.timeMs).toISOString()})`;
  const latest = `position ${range.latest.position} (${new Date(range.latest.timeMs).toISOString()})`;
  return new RestorePlanError(
    'RESTORE_OUT_OF_RANGE',
    `${what} is outside the restorable history of database ${catalog.database}: from ${earliest} to ${latest}`,
    {
      earliest: { position: range.earliest.position.toString(), time: new Date(range.earliest.timeMs).toISOString() },
      latest: { position: range.latest.position.toString(), time: new Date(range.latest.timeMs).toISOString() },
    },
  );
}

function basesOf(catalog: RestoreCatalog): Base[] {
  const bases: Base[] = [];
  const seen = new Set<bigint>();
  // Prefer the shared copy of a checkpoint (no download) when both exist.
  const checkpoints = [...catalog.checkpoints].sort(
    (a, b) => (isArchivedCheckpoint(a.location) ? 0 : -1) - (isArchivedCheckpoint(b.location) ? 0 : -1),
  );
  for (const checkpoint of checkpoints) {
    if (seen.has(checkpoint.position)) continue;
    seen.add(checkpoint.position);
    bases.push({ position: checkpoint.position, timeMs: checkpoint.timeMs, checkpoint });
  }
  if (!seen.has(0n) && catalog.runs.some((run) => run.first === 1n)) {
    bases.push({ position: 0n, timeMs: Number.NEGATIVE_INFINITY, checkpoint: undefined });
  }
  return bases;
}

function firstTimeOfPosition1(runs: readonly SegmentRun[]): number {
  let time = Number.POSITIVE_INFINITY;
  for (const run of runs) if (run.first === 1n && run.firstTimeMs < time) time = run.firstTimeMs;
  return time;
}

/**
 * The runs that take the database from `after` to `until` (or as far as they go), greedily: at
 * each position, the run that reaches furthest, the shared log when two reach as far (no
 * download). Stops at the first position no run holds.
 */
function cover(runs: readonly SegmentRun[], after: bigint, until: bigint | undefined): PlanStep[] {
  const steps: PlanStep[] = [];
  let next = after + 1n;
  for (;;) {
    if (until !== undefined && next > until) break;
    let best: SegmentRun | undefined;
    for (const run of runs) {
      if (run.first > next || run.last < next) continue;
      if (!best || run.last > best.last || (run.last === best.last && run.location.kind === 'log' && best.location.kind !== 'log'))
        best = run;
    }
    if (!best) break;
    const to = until !== undefined && best.last > until ? until : best.last;
    steps.push({ run: best, from: next, to });
    next = to + 1n;
  }
  return steps;
}

/** How far the runs reach from `after`, and the commit time there (as far as runs tell). */
function reachFrom(runs: readonly SegmentRun[], after: bigint): RestorePoint {
  const steps = cover(runs, after, undefined);
  const last = steps.at(-1);
  if (!last) return { position: after, timeMs: Number.NEGATIVE_INFINITY };
  // The time of the last position is known when the step ends where its run does.
  return { position: last.to, timeMs: last.to === last.run.last ? last.run.lastTimeMs : last.run.lastTimeMs };
}
