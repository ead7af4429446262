import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadArchiveIndex } from '../../../src/archive/archive-index.js';
import { bundleKey, checkpointKey } from '../../../src/archive/archive-keys.js';
import { writeLegacyCheckpointFromFile } from '../../../src/replay/checkpoints.js';
import { executeRestore } from '../../../src/restore/executor.js';
import { planRestore, type RestoreTarget } from '../../../src/restore/planner.js';
import { catalogFromIndex } from '../../../src/restore/sources.js';
import { openObjectStore } from '../../../src/storage/open-object-store.js';
import { history, ID, PAGE, writeBundle, writeLegacyBundle, type ModelSegment } from '../../support/bundle-history.js';

/**
 * The newest-first restore (docs/FORMAT.md §11.4) over bundles of both formats and a checkpoint,
 * against an in-memory model of a database (test/support/bundle-history.ts): restores to many
 * positions and times, hashing on a worker thread and on the calling one, must give the model's
 * bytes and checksum.
 */
const work = mkdtempSync(path.join(tmpdir(), 'litebase-bundle-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('newest-first restore', () => {
  it('restores every kind of point exactly, hashing on a worker thread or not, across both bundle formats and a checkpoint', async () => {
    const segments = history(29, 700);
    const storeDir = path.join(work, 'store');
    const store = openObjectStore(pathToFileURL(storeDir).href);
    const at = (position: number): ModelSegment => segments[position - 1] as ModelSegment;
    // Format 1 for 1..90 (an archive written before format 2), format 2 after, in uneven bundles.
    const cuts = [0, 90, 91, 250, 400, 401, 560, 700];
    for (let i = 0; i + 1 < cuts.length; i++) {
      const first = (cuts[i] as number) + 1;
      const last = cuts[i + 1] as number;
      const file = path.join(work, `b-${first}.seg`);
      if (i === 0) writeLegacyBundle(file, segments.slice(first - 1, last));
      else await writeBundle(file, segments.slice(first - 1, last));
      await store.putFile(bundleKey('app', ID, BigInt(first), BigInt(last)), file);
    }
    // A checkpoint at 333, from a file holding the model's pages there.
    const checkpointAt = at(333);
    const source = path.join(work, 'db-333');
    writeFileSync(source, Buffer.concat(checkpointAt.state));
    const checkpointFile = path.join(work, 'c-333.ckpt');
    await writeLegacyCheckpointFromFile(checkpointFile, source, {
      databaseId: ID,
      term: 1n,
      position: 333n,
      commitTimeMs: checkpointAt.timeMs,
      pageSize: PAGE,
      databaseSizePages: checkpointAt.sizePages,
      checksum: checkpointAt.checksum,
    });
    await store.putFile(checkpointKey('app', ID, 333n), checkpointFile);
    const { index } = await loadArchiveIndex(store, 'app', ID, {});
    expect(index.bundles).toHaveLength(cuts.length - 1);
    expect(index.checkpoints).toHaveLength(1);
    const catalog = catalogFromIndex(index);

    const targets: Array<[RestoreTarget, number]> = [];
    for (const position of [1, 2, 89, 90, 91, 92, 150, 250, 251, 332, 333, 334, 399, 400, 401, 402, 480, 559, 560, 561, 650, 699, 700]) {
      targets.push([{ position: BigInt(position) }, position]);
    }
    for (const position of [45, 333, 345, 698]) targets.push([{ timeMs: at(position).timeMs + 5 }, position]);
    let run = 0;
    for (const hashThread of [false, true]) {
      for (const [target, position] of targets) {
        const plan = planRestore(catalog, target);
        const output = path.join(work, `restored-${run++}.sqlite`);
        // With threads, every bundle step is decoded and written on the page-writing threads.
        const outcome = await executeRestore(plan, output, {
          workDir: path.join(work, `w-${run}`),
          store,
          hashThread,
          threadWriteMinBytes: 0,
        });
        const expected = at(position);
        const what = `hash thread ${hashThread}, target ${JSON.stringify(target, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`;
        expect(outcome.position, what).toBe(BigInt(position));
        expect(outcome.checksum, what).toBe(expected.checksum);
        expect(outcome.databaseSizePages, what).toBe(expected.sizePages);
        expect(readFileSync(output).equals(Buffer.concat(expected.state)), what).toBe(true);
        expect(outcome.hashes().checksum, what).toBe(expected.checksum);
        rmSync(output);
      }
    }
    await store.close();
  }, 120_000);

  it('stops before the first segment committed after a time, even in an older bundle (a clock that stepped back)', async () => {
    // Segment 50 carries a time far ahead (a Primary whose clock was wrong, then a failover).
    const timeOf = (position: number): number => 1_000_000 + 10 * (position === 50 ? 90 : position);
    const segments = history(17, 100, timeOf);
    const storeDir = path.join(work, 'store-clock');
    const store = openObjectStore(pathToFileURL(storeDir).href);
    for (const [first, last] of [
      [1, 60],
      [61, 100],
    ] as const) {
      const file = path.join(work, `clock-${first}.seg`);
      await writeBundle(file, segments.slice(first - 1, last));
      await store.putFile(bundleKey('app', ID, BigInt(first), BigInt(last)), file);
    }
    const { index } = await loadArchiveIndex(store, 'app', ID, {});
    const plan = planRestore(catalogFromIndex(index), { timeMs: timeOf(70) + 5 });
    const output = path.join(work, 'clock.sqlite');
    const outcome = await executeRestore(plan, output, { workDir: path.join(work, 'w-clock'), store });
    const expected = segments[48] as ModelSegment;
    expect(outcome.position).toBe(49n);
    expect(outcome.checksum).toBe(expected.checksum);
    expect(readFileSync(output).equals(Buffer.concat(expected.state))).toBe(true);
    await store.close();
  });

  it('refuses a damaged bundle, naming it', async () => {
    const segments = history(5, 200);
    const storeDir = path.join(work, 'store-damaged');
    const store = openObjectStore(pathToFileURL(storeDir).href);
    const file = path.join(work, 'damaged.seg');
    await writeBundle(file, segments);
    const key = bundleKey('app', ID, 1n, 200n);
    await store.putFile(key, file);
    const { index } = await loadArchiveIndex(store, 'app', ID, {});
    const original = readFileSync(file);
    // In the segment table (checked whenever the bundle is opened), and in the first block (each
    // image handed out is checked: a restore to the end hands out every newest image).
    const dataStart = 64 + 48 * 200 + 20 * original.readUInt32BE(40) + 20 * original.readUInt32BE(44) + 12 * original.readUInt32BE(48);
    for (const [offset, position] of [
      [64 + 48 * 10 + 40, 150n],
      [dataStart + 50, 200n],
    ] as const) {
      const bytes = Buffer.from(original);
      bytes[offset]! ^= 0x01;
      await store.put(key, bytes);
      for (const hashThread of [false, true]) {
        const plan = planRestore(catalogFromIndex(index), { position });
        await expect(
          executeRestore(plan, path.join(work, `damaged-${hashThread}.sqlite`), {
            workDir: path.join(work, `wd-${hashThread}`),
            store,
            hashThread,
            threadWriteMinBytes: 0,
          }),
          `offset ${offset}`,
        ).rejects.toMatchObject({
          code: 'ARCHIVE_CORRUPT',
          message: expect.stringContaining(key) as string,
        });
      }
    }
    await store.close();
  });
});
