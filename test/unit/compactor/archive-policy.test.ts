import { describe, expect, it } from 'vitest';
import type { ArchiveIndex, ArchivedBundle, ArchivedCheckpoint } from '../../../src/archive/archive-index.js';
import { checkpointArchiveReason } from '../../../src/compactor/archive-policy.js';

/** Which checkpoints the compactor archives (src/compactor/archive-policy.ts), on made-up archive indexes. */
const ID = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';

describe('which checkpoints are archived', () => {
  const day = 24 * 3600 * 1000;
  const policy = { percent: 200, retentionMs: 7 * day };
  const b = (first: number, last: number, bytes: number, time = first * 1000): ArchivedBundle => ({
    key: `b${first}-${last}`,
    first: BigInt(first),
    last: BigInt(last),
    firstTimeMs: time,
    lastTimeMs: time,
    segments: last - first + 1,
    bytes,
  });
  const cp = (position: number, bytes: number, timeMs = position * 1000): ArchivedCheckpoint => ({
    key: `c${position}`,
    position: BigInt(position),
    timeMs,
    bytes,
    checksum: '0000000000000000',
    pageSize: 4096,
    databaseSizePages: 1,
  });
  const index = (checkpoints: ArchivedCheckpoint[], bundles: ArchivedBundle[]): ArchiveIndex => ({
    database: 'app',
    databaseId: ID,
    checkpoints,
    bundles,
    ranges: [],
  });
  const candidate = (position: number, bytes: number, timeMs = position * 1000) => ({ position: BigInt(position), timeMs, bytes });

  it('skips a checkpoint the bundles from position 1 reach cheaply: a database that grew by inserts', () => {
    // 100 MB of log since position 1, a 90 MB checkpoint: the log is the cheaper way to its state.
    expect(checkpointArchiveReason(index([], [b(1, 500, 60e6), b(501, 900, 40e6)]), candidate(900, 90e6), policy)).toBeUndefined();
  });

  it('archives one once the log since the newest archived base is twice its size', () => {
    // An update-heavy database: 10 MB of pages, 25 MB of log since the checkpoint at 100.
    const history = index([cp(100, 10e6)], [b(1, 100, 5e6), b(101, 400, 12e6), b(401, 700, 13e6)]);
    expect(checkpointArchiveReason(history, candidate(700, 10e6), policy)).toBe('log');
    expect(checkpointArchiveReason(history, candidate(400, 10e6), policy)).toBeUndefined();
    expect(checkpointArchiveReason(history, candidate(700, 10e6), { ...policy, percent: 300 })).toBeUndefined();
    expect(checkpointArchiveReason(history, candidate(400, 10e6), { ...policy, percent: 0 })).toBe('log');
    expect(checkpointArchiveReason(history, candidate(100, 10e6), { ...policy, percent: 0 })).toBeUndefined(); // already archived
  });

  it('archives one the archive cannot do without: no base before it, or a gap', () => {
    // A restored database starts from a checkpoint at position 1: no bundle from position 1.
    expect(checkpointArchiveReason(index([], [b(2, 50, 1e3)]), candidate(1, 1e6), policy)).toBe('unreachable');
    expect(checkpointArchiveReason(index([], [b(1, 50, 1e3), b(60, 90, 1e3)]), candidate(90, 1e6), policy)).toBe('unreachable');
    expect(checkpointArchiveReason(index([cp(55, 1e6)], [b(1, 50, 1e3), b(56, 90, 1e3)]), candidate(90, 1e6), policy)).toBeUndefined();
  });

  it('archives one half a retention window after the newest archived base, so retention can prune', () => {
    const history = index([], [b(1, 50, 1e3, 0)]);
    expect(checkpointArchiveReason(history, candidate(50, 1e6, 3 * day), policy)).toBeUndefined();
    expect(checkpointArchiveReason(history, candidate(50, 1e6, 4 * day), policy)).toBe('age');
  });

  it('weighs a range checkpoint by what it would upload: the ranges the archive lacks, not the database', () => {
    // A 1 GB database whose manifest at 100 is archived; 30 MB of log since. The next manifest
    // changed 10 MB of ranges: worth archiving (a full checkpoint of 1 GB would not be).
    const manifest: ArchivedCheckpoint = {
      ...cp(100, 1e9),
      key: 'm100',
      manifest: { objectBytes: 1e5, ranges: 64, rangesBytes: 1e9, rangePages: 4096 },
    };
    const history = index([manifest], [b(1, 100, 1e9), b(101, 400, 30e6)]);
    expect(checkpointArchiveReason(history, candidate(400, 10e6 + 1e5), policy)).toBe('log');
    expect(checkpointArchiveReason(history, candidate(400, 1e9), policy)).toBeUndefined();
  });
});
