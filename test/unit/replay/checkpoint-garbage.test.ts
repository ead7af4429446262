import { mkdtempSync, readdirSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LitebaseError } from '../../../src/errors.js';
import { CheckpointDirectory, loadCheckpoint, writeCheckpointFromFile } from '../../../src/replay/checkpoints.js';
import { writeRangeFile } from '../../../src/replay/range-files.js';
import { makePages, Prng } from '../../support/golden-segments.js';
import { randomDatabaseFile } from '../../support/range-checkpoints.js';

/**
 * Garbage collection of checkpoints on the shared folder (docs/FORMAT.md §8.3): a replaced
 * checkpoint and the range files only it lists stay for the grace period, so a node that began
 * loading it while it was the newest can finish; after the grace period they go, and a load that
 * started too long ago fails with CHECKPOINT_RANGE_MISSING (and starts again from the newest).
 */

const work = mkdtempSync(path.join(tmpdir(), 'litebase-checkpoint-gc-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const DATABASE_ID = '6f1c0b52-3d4e-4a8b-9c2d-7e5f10a2b3c4';
const PAGE_SIZE = 512;
const GRACE = 60_000;

function setMtime(file: string, ms: number): void {
  utimesSync(file, ms / 1000, ms / 1000);
}

describe('checkpoint garbage collection', () => {
  it('keeps a replaced checkpoint and its ranges for the grace period, then removes only what no manifest lists', async () => {
    const directory = new CheckpointDirectory(path.join(work, 'checkpoints'));
    const file = path.join(work, 'source.sqlite');
    const { source } = randomDatabaseFile(file, { seed: 1, pageCount: 8, pageSize: PAGE_SIZE, databaseId: DATABASE_ID });
    const { manifest: first } = await writeCheckpointFromFile(directory, file, source, 4);
    // The second checkpoint changed range 1 only: it lists range 0 of the first again.
    const changed = makePages(new Prng(2), [5, 6, 7, 8], PAGE_SIZE);
    const range1 = await writeRangeFile(
      directory.rangesDir,
      { ...source, position: 2n },
      1,
      5,
      Buffer.concat(changed.map((page) => page.data)),
    );
    const range0 = first.ranges[0];
    if (!range0) throw new Error('no range 0');
    await directory.publishManifest({ ...first, position: 2n, checksum: range0.checksum ^ range1.checksum, ranges: [range0, range1] });
    // A compaction still writing: a range file no manifest lists yet, just written.
    const inFlight = await writeRangeFile(directory.rangesDir, { ...source, position: 3n }, 0, 1, Buffer.alloc(PAGE_SIZE));

    const now = Date.now();
    setMtime(directory.manifestPath(1n), now - 10 * GRACE);
    setMtime(directory.manifestPath(2n), now - GRACE / 2); // replaced the first half a grace period ago
    for (const range of first.ranges) setMtime(directory.rangePath(range.file), now - 10 * GRACE);
    setMtime(directory.rangePath(range1.file), now - GRACE / 2);
    setMtime(directory.rangePath(inFlight.file), now + GRACE / 2);

    // A node began loading the first checkpoint while it was the newest.
    const reading = await directory.describe(1n, DATABASE_ID);
    expect(await directory.collectGarbage({ graceMs: GRACE, nowMs: now })).toEqual({ checkpoints: 0, ranges: 0, bytes: 0 });
    await loadCheckpoint(reading, path.join(work, 'loaded.sqlite'), DATABASE_ID);

    // A grace period later: the first manifest goes, and its range 1 (listed by no one else); range 0 stays.
    const later = now + GRACE;
    const report = await directory.collectGarbage({ graceMs: GRACE, nowMs: later });
    expect(report.checkpoints).toBe(1);
    expect(report.ranges).toBe(1);
    expect(await directory.positions()).toEqual([2n]);
    expect(readdirSync(directory.rangesDir).sort()).toEqual([range0.file, range1.file, inFlight.file].sort());
    const late = await loadCheckpoint(reading, path.join(work, 'late.sqlite'), DATABASE_ID).catch((error: unknown) => error);
    expect(late).toBeInstanceOf(LitebaseError);
    expect((late as LitebaseError).code).toBe('CHECKPOINT_RANGE_MISSING');
    await loadCheckpoint(await directory.describe(2n, DATABASE_ID), path.join(work, 'newest.sqlite'), DATABASE_ID);

    // The unlisted file of the compaction that never finished goes once it is a grace period old.
    setMtime(directory.rangePath(inFlight.file), later - 2 * GRACE);
    expect((await directory.collectGarbage({ graceMs: GRACE, nowMs: later })).ranges).toBe(1);
    expect(readdirSync(directory.rangesDir).sort()).toEqual([range0.file, range1.file].sort());
  });
});
