import { describe, expect, it } from 'vitest';
import type { ArchiveIndex, ArchivedBundle, ArchivedCheckpoint } from '../../../src/archive/archive-index.js';
import { planRetention } from '../../../src/compactor/retention.js';

/** The retention rule (src/compactor/retention.ts) is pure: tested here on made-up archive indexes. */
const ID = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';

describe('retention', () => {
  const day = 24 * 3600 * 1000;
  const now = 100 * day;
  const cp = (position: number, ageDays: number): ArchivedCheckpoint => ({
    key: `c${position}`,
    position: BigInt(position),
    timeMs: now - ageDays * day,
    bytes: 10,
    checksum: '0000000000000000',
    pageSize: 4096,
    databaseSizePages: 1,
  });
  const b = (first: number, last: number): ArchivedBundle => ({
    key: `b${first}-${last}`,
    first: BigInt(first),
    last: BigInt(last),
    firstTimeMs: 0,
    lastTimeMs: 0,
    segments: last - first + 1,
    bytes: 10,
  });
  const index = (checkpoints: ArchivedCheckpoint[], bundles: ArchivedBundle[]): ArchiveIndex => ({
    database: 'app',
    databaseId: ID,
    checkpoints,
    bundles,
  });

  it('keeps the newest checkpoint older than the window and everything after it', () => {
    const plan = planRetention(
      index([cp(10, 20), cp(50, 9), cp(80, 6), cp(120, 1)], [b(1, 10), b(11, 50), b(51, 79), b(80, 130)]),
      now,
      7 * day,
    );
    expect(plan.base?.key).toBe('c50');
    expect(plan.checkpoints.map((c) => c.key)).toEqual(['c10']);
    expect(plan.bundles.map((x) => x.key)).toEqual(['b1-10', 'b11-50']);
  });

  it('prunes nothing while no checkpoint is as old as the window, and never the newest checkpoint', () => {
    expect(planRetention(index([cp(10, 3), cp(20, 1)], [b(1, 20)]), now, 7 * day)).toEqual({
      base: undefined,
      checkpoints: [],
      bundles: [],
    });
    const old = planRetention(index([cp(10, 30), cp(20, 20)], [b(1, 20), b(21, 25)]), now, 7 * day);
    expect(old.base?.key).toBe('c20');
    expect(old.checkpoints.map((c) => c.key)).toEqual(['c10']);
    expect(old.bundles.map((x) => x.key)).toEqual(['b1-20']);
  });
});
