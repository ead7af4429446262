import { describe, expect, it } from 'vitest';
import type { ArchiveIndex, ArchivedBundle, ArchivedCheckpoint, ArchivedRange } from '../../../src/archive/archive-index.js';
import { rangeKey } from '../../../src/archive/archive-keys.js';
import { applyRetention, planRetention } from '../../../src/compactor/retention.js';

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
  const index = (checkpoints: ArchivedCheckpoint[], bundles: ArchivedBundle[], ranges: ArchivedRange[] = []): ArchiveIndex => ({
    database: 'app',
    databaseId: ID,
    checkpoints,
    bundles,
    ranges,
  });
  /** A manifest: `bytes` is what it cost the archive, its object is 100 bytes. */
  const manifest = (position: number, ageDays: number, ranges: number): ArchivedCheckpoint => ({
    ...cp(position, ageDays),
    key: `m${position}`,
    bytes: 1000,
    manifest: { objectBytes: 100, ranges, rangesBytes: 5000, rangePages: 4096 },
  });
  /** Range `index` written at `written`, listed by the archived manifests first..last (none: an upload cut short). */
  const range = (index: number, written: number, listed?: [number, number]): ArchivedRange => ({
    key: rangeKey('app', ID, `${String(index).padStart(10, '0')}-${String(written).padStart(20, '0')}-00000000000000aa.range`),
    bytes: 10,
    ...(listed ? { sha256: 'ab', firstListed: BigInt(listed[0]), lastListed: BigInt(listed[1]) } : {}),
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
      ranges: [],
    });
    const old = planRetention(index([cp(10, 30), cp(20, 20)], [b(1, 20), b(21, 25)]), now, 7 * day);
    expect(old.base?.key).toBe('c20');
    expect(old.checkpoints.map((c) => c.key)).toEqual(['c10']);
    expect(old.bundles.map((x) => x.key)).toEqual(['b1-20']);
  });

  it('prunes manifests like checkpoints, and the range files no kept manifest lists', () => {
    // Manifests 10, 50, 80, 120; base 50 (the newest older than 7 days).
    const ranges = [
      range(0, 10, [10, 10]), // replaced at 50: only manifest 10 lists it
      range(1, 10, [10, 120]), // never changed: every manifest lists it
      range(0, 50, [50, 80]), // listed by the base: kept
      range(0, 120, [120, 120]),
      range(2, 8, [10, 10]), // written at 8 (its manifest not archived), listed by 10 only, replaced before 50
      range(3, 40), // listed by no manifest, written before the base: an upload cut short
      range(3, 90), // listed by no manifest, after the base: maybe a manifest on its way
    ];
    const plan = planRetention(
      index([manifest(10, 20, 3), cp(50, 9), manifest(50, 9, 2), manifest(80, 6, 2), manifest(120, 1, 2)], [b(1, 60), b(61, 130)], ranges),
      now,
      7 * day,
    );
    expect(plan.base?.position).toBe(50n);
    expect(plan.checkpoints.map((c) => c.key)).toEqual(['m10']);
    expect(plan.bundles.map((x) => x.key)).toEqual([]);
    expect(plan.ranges).toEqual([ranges[0], ranges[4], ranges[5]]);
    const pruned = index([manifest(10, 20, 3), manifest(50, 9, 2)], [], ranges);
    const result = applyRetention(pruned, planRetention(pruned, now, 7 * day));
    // The manifest's object (100 bytes), not what it cost; three ranges of 10.
    expect(result.bytes).toBe(130);
    expect(result.keys).toHaveLength(4);
    expect(pruned.checkpoints.map((c) => c.key)).toEqual(['m50']);
    expect(pruned.ranges).toEqual([ranges[1], ranges[2], ranges[3], ranges[6]]);
  });
});
