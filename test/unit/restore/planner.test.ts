import { describe, expect, it } from 'vitest';
import {
  planRestore,
  restoreRange,
  RestorePlanError,
  type CheckpointSource,
  type RestoreCatalog,
  type RestorePlan,
  type SegmentRun,
} from '../../../src/restore/planner.js';
import { Prng } from '../../support/golden-segments.js';

/**
 * The restore planner is pure: tested here on made-up histories. A segment
 * at position p is committed at time 1000 * p in these histories (times grow with positions).
 */
const ID = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';
const t = (position: number): number => 1000 * position;

function bundle(first: number, last: number, bytes = 100 * (last - first + 1)): SegmentRun {
  return {
    first: BigInt(first),
    last: BigInt(last),
    firstTimeMs: t(first),
    lastTimeMs: t(last),
    bytes,
    location: { kind: 'archive', key: `b/${first}-${last}` },
  };
}

function logRun(first: number, last: number): SegmentRun {
  return { ...bundle(first, last), location: { kind: 'log' } };
}

function checkpoint(position: number, kind: 'archive' | 'shared' = 'archive'): CheckpointSource {
  return {
    position: BigInt(position),
    timeMs: t(position),
    bytes: 5000,
    location: kind === 'archive' ? { kind, key: `c/${position}` } : { kind, file: `/shared/${position}.ckpt` },
  };
}

function catalog(checkpoints: CheckpointSource[], runs: SegmentRun[]): RestoreCatalog {
  return { database: 'app', databaseId: ID, checkpoints, runs };
}

function expectPlanError(run: () => unknown, code: string): RestorePlanError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(RestorePlanError);
    expect((error as RestorePlanError).code).toBe(code);
    return error as RestorePlanError;
  }
  throw new Error(`expected ${code}`);
}

/** Replays a plan on paper: the positions it applies, in order, from its base. */
function simulate(plan: RestorePlan): bigint[] {
  const applied: bigint[] = [];
  let position = plan.basePosition;
  for (const step of plan.steps) {
    for (let p = step.from; p <= step.to; p++) {
      if ('timeMs' in plan.target && t(Number(p)) > plan.target.timeMs) return applied;
      if ('position' in plan.target && p > plan.target.position) return applied;
      expect(p).toBe(position + 1n);
      applied.push(p);
      position = p;
    }
  }
  return applied;
}

describe('restore planner', () => {
  it('starts from the newest checkpoint at or before a position and applies only what follows', () => {
    const history = catalog([checkpoint(50), checkpoint(120)], [bundle(1, 60), bundle(61, 130), bundle(131, 200)]);
    const plan = planRestore(history, { position: 100n });
    expect(plan.basePosition).toBe(50n);
    expect(plan.steps.map((s) => [s.from, s.to])).toEqual([
      [51n, 60n],
      [61n, 100n],
    ]);
    expect(plan.lastPosition).toBe(100n);
    expect(plan.totalSegments).toBe(50);
    expect(plan.totalBytes).toBe(5000 + 6000 + 7000); // the checkpoint and both bundles, whole

    const exact = planRestore(history, { position: 120n });
    expect(exact.basePosition).toBe(120n);
    expect(exact.steps).toEqual([]);
  });

  it('restores from segment 1 without a checkpoint, and reports the range', () => {
    const history = catalog([], [bundle(1, 10), logRun(11, 15)]);
    expect(restoreRange(history)).toEqual({ earliest: { position: 1n, timeMs: t(1) }, latest: { position: 15n, timeMs: t(15) } });
    const plan = planRestore(history, { position: 13n });
    expect(plan.base).toBeUndefined();
    expect(plan.basePosition).toBe(0n);
    expect(simulate(plan)).toEqual(Array.from({ length: 13 }, (_, i) => BigInt(i + 1)));
  });

  it('plans to a time: newest checkpoint at or before it, bundles up to the one holding it', () => {
    const history = catalog([checkpoint(40), checkpoint(90)], [bundle(1, 50), bundle(51, 100), bundle(101, 150), bundle(151, 200)]);
    const plan = planRestore(history, { timeMs: t(120) + 500 });
    expect(plan.basePosition).toBe(90n);
    expect(plan.steps.map((s) => s.run.location)).toEqual([
      { kind: 'archive', key: 'b/51-100' },
      { kind: 'archive', key: 'b/101-150' },
    ]);
    expect(simulate(plan).at(-1)).toBe(120n);
    expect(plan.clampedToLatest).toBe(false);
    // Exactly at a commit time: that segment is included.
    expect(simulate(planRestore(history, { timeMs: t(151) })).at(-1)).toBe(151n);
    // Before the first checkpoint but after segment 1: from the empty database.
    expect(planRestore(history, { timeMs: t(30) }).basePosition).toBe(0n);
  });

  it('clamps a time after the newest history to the latest position', () => {
    const history = catalog([checkpoint(10)], [bundle(11, 20)]);
    const plan = planRestore(history, { timeMs: t(500) });
    expect(plan.clampedToLatest).toBe(true);
    expect(simulate(plan).at(-1)).toBe(20n);
  });

  it('refuses points outside the history with RESTORE_OUT_OF_RANGE and says what the range is', () => {
    const history = catalog([checkpoint(100)], [bundle(101, 200)]);
    const early = expectPlanError(() => planRestore(history, { position: 99n }), 'RESTORE_OUT_OF_RANGE');
    expect(early.status).toBe(400);
    expect(early.details).toMatchObject({ earliest: { position: '100' }, latest: { position: '200' } });
    expectPlanError(() => planRestore(history, { position: 201n }), 'RESTORE_OUT_OF_RANGE');
    expectPlanError(() => planRestore(history, { timeMs: t(100) - 1 }), 'RESTORE_OUT_OF_RANGE');
    expectPlanError(() => planRestore(catalog([], []), { position: 1n }), 'RESTORE_NO_HISTORY');
    // Segments 2.. without segment 1 or a checkpoint are no history at all.
    expectPlanError(() => planRestore(catalog([], [bundle(2, 10)]), { position: 5n }), 'RESTORE_NO_HISTORY');
  });

  it('refuses to cross a gap, but uses a checkpoint after it', () => {
    const history = catalog([checkpoint(100)], [bundle(1, 50), bundle(61, 99), bundle(101, 150)]);
    expectPlanError(() => planRestore(history, { position: 70n }), 'RESTORE_GAP');
    expect(simulate(planRestore(history, { position: 40n })).at(-1)).toBe(40n);
    expect(planRestore(history, { position: 130n }).basePosition).toBe(100n);
    // A time inside the gap: the state there is unknown (segments 51..60 are gone).
    expectPlanError(() => planRestore(history, { timeMs: t(70) }), 'RESTORE_GAP');
  });

  it('prefers the shared log and a shared checkpoint when they hold the same positions', () => {
    const history = catalog(
      [checkpoint(100, 'archive'), checkpoint(100, 'shared')],
      [bundle(101, 150), logRun(101, 150), logRun(151, 160)],
    );
    const plan = planRestore(history, { position: 155n });
    expect(plan.base?.location.kind).toBe('shared');
    expect(plan.steps.map((s) => s.run.location.kind)).toEqual(['log', 'log']);
  });

  it('covers overlapping bundles (two compactors raced) without applying a position twice', () => {
    const history = catalog([], [bundle(1, 40), bundle(1, 25), bundle(20, 60), bundle(41, 80)]);
    const plan = planRestore(history, { position: 75n });
    expect(simulate(plan)).toEqual(Array.from({ length: 75 }, (_, i) => BigInt(i + 1)));
  });

  it('on random histories, every plan applies exactly base+1..target', () => {
    const prng = new Prng(99);
    for (let round = 0; round < 300; round++) {
      const end = prng.between(5, 400);
      const runs: SegmentRun[] = [];
      for (let first = 1; first <= end;) {
        const last = Math.min(end, first + prng.between(0, 40));
        runs.push(prng.chance(0.2) ? logRun(first, last) : bundle(first, last));
        first = last + 1;
      }
      const checkpoints: CheckpointSource[] = [];
      for (let i = 0; i < prng.below(5); i++) checkpoints.push(checkpoint(prng.between(1, end)));
      // Sometimes drop the start of history (compacted and pruned): keep what a checkpoint covers.
      const oldest = checkpoints.length > 0 ? Math.min(...checkpoints.map((c) => Number(c.position))) : 0;
      const kept = prng.chance(0.5) && oldest > 0 ? runs.filter((run) => Number(run.last) > oldest) : runs;
      const history = catalog(checkpoints, kept);
      const range = restoreRange(history);
      if (!range) continue;
      const target = prng.between(Number(range.earliest.position), Number(range.latest.position));
      const plan = planRestore(history, { position: BigInt(target) });
      const applied = simulate(plan);
      expect(plan.basePosition + BigInt(applied.length)).toBe(BigInt(target));
      const timePlan = planRestore(history, { timeMs: t(target) + 999 });
      const viaTime = simulate(timePlan);
      expect(viaTime.at(-1) ?? timePlan.basePosition).toBe(BigInt(target));
    }
  });
});
