import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadArchiveIndex, serializeIndex, type ArchiveIndex } from '../../../src/archive/archive-index.js';
import { bundleKey, indexKey, rangeKey } from '../../../src/archive/archive-keys.js';
import { uploadManifest } from '../../../src/archive/manifest-upload.js';
import { executeRestore } from '../../../src/restore/executor.js';
import { planRestore, type RestoreCatalog, type RestoreTarget } from '../../../src/restore/planner.js';
import { catalogFromIndex, loadSharedCatalog, mergeCatalogs } from '../../../src/restore/sources.js';
import { CheckpointDirectory } from '../../../src/replay/checkpoints.js';
import { LogDirectory } from '../../../src/log/log-directory.js';
import type { ObjectStore } from '../../../src/storage/object-store.js';
import { openObjectStore } from '../../../src/storage/open-object-store.js';
import { history, ID, writeBundle, type ModelSegment } from '../../support/bundle-history.js';
import { writeRangeCheckpoint, type SharedRangeCheckpoint } from '../../support/range-checkpoints.js';

/**
 * The base of a restore (src/restore/base-checkpoint.ts) as a range checkpoint: a manifest and its
 * range files, in the archive or on the shared folder, under the bundles read newest first. Every
 * restore must give the model's bytes and checksum; a damaged or missing range is refused, named.
 */
const work = mkdtempSync(path.join(tmpdir(), 'litebase-base-checkpoint-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const segments = history(29, 700);
const at = (position: number): ModelSegment => segments[position - 1] as ModelSegment;

/** Bundles 1..700 and range checkpoints at 250 and 500 (the second sharing the first's unchanged ranges), archived. */
async function archive(name: string): Promise<{ store: ObjectStore; index: ArchiveIndex; shared: SharedRangeCheckpoint[] }> {
  const store = openObjectStore(pathToFileURL(path.join(work, name)).href);
  const cuts = [0, 200, 401, 700];
  for (let i = 0; i + 1 < cuts.length; i++) {
    const first = (cuts[i] as number) + 1;
    const last = cuts[i + 1] as number;
    const file = path.join(work, `${name}-b-${first}.seg`);
    await writeBundle(file, segments.slice(first - 1, last));
    await store.putFile(bundleKey('app', ID, BigInt(first), BigInt(last)), file);
  }
  const sharedDir = path.join(work, `${name}-shared`);
  const first = await writeRangeCheckpoint(sharedDir, at(250), 16);
  const second = await writeRangeCheckpoint(sharedDir, at(500), 16, first);
  const { index } = await loadArchiveIndex(store, 'app', ID, {});
  for (const checkpoint of [first, second]) {
    await uploadManifest({
      store,
      index,
      manifestFile: checkpoint.manifestFile,
      manifest: checkpoint.manifest,
      rangesDir: checkpoint.rangesDir,
    });
  }
  await store.put(indexKey('app', ID), serializeIndex(index));
  return { store, index, shared: [first, second] };
}

let runs = 0;
async function restoreAndCompare(
  catalog: RestoreCatalog,
  store: ObjectStore,
  target: RestoreTarget,
  position: number,
  hashThread: boolean,
) {
  const plan = planRestore(catalog, target);
  const output = path.join(work, `restored-${runs++}.sqlite`);
  const outcome = await executeRestore(plan, output, { workDir: path.join(work, `w-${runs}`), store, hashThread, threadWriteMinBytes: 0 });
  const expected = at(position);
  expect(outcome.position).toBe(BigInt(position));
  expect(outcome.checksum).toBe(expected.checksum);
  expect(readFileSync(output).equals(Buffer.concat(expected.state))).toBe(true);
  rmSync(output);
  return plan;
}

describe('a range checkpoint as the base of a restore', () => {
  it('restores every kind of point exactly from archived manifests, and from a shared one first when both hold it', async () => {
    const { store, index, shared } = await archive('store');
    const second = shared[1] as SharedRangeCheckpoint;
    const catalog = catalogFromIndex(index);
    expect(catalog.checkpoints.map((checkpoint) => [checkpoint.position, checkpoint.location.kind])).toEqual([
      [250n, 'archive-manifest'],
      [500n, 'archive-manifest'],
    ]);
    for (const hashThread of [false, true]) {
      for (const position of [1, 249, 250, 251, 320, 401, 499, 500, 501, 699, 700]) {
        const plan = await restoreAndCompare(catalog, store, { position: BigInt(position) }, position, hashThread);
        expect(plan.basePosition).toBe(position >= 500 ? 500n : position >= 250 ? 250n : 0n);
      }
      for (const position of [260, 500, 650])
        await restoreAndCompare(catalog, store, { timeMs: at(position).timeMs + 5 }, position, hashThread);
    }
    // The shared folder holds the manifests and their ranges: read in place, nothing downloaded for the base.
    const sharedCatalog = await loadSharedCatalog(
      'app',
      ID,
      new LogDirectory(path.join(work, 'no-log')),
      new CheckpointDirectory(path.dirname(second.rangesDir)),
    );
    expect(sharedCatalog.checkpoints.map((checkpoint) => [checkpoint.position, checkpoint.location.kind])).toEqual([
      [250n, 'shared-manifest'],
      [500n, 'shared-manifest'],
    ]);
    const withShared = mergeCatalogs(catalog, sharedCatalog);
    for (const position of [500, 501, 650]) {
      const plan = await restoreAndCompare(withShared, store, { position: BigInt(position) }, position, false);
      expect(plan.base?.location.kind).toBe('shared-manifest');
    }
    await store.close();
  }, 120_000);

  it('refuses a damaged or missing range, naming it', async () => {
    const { store, index, shared } = await archive('store-damaged');
    const second = shared[1] as SharedRangeCheckpoint;
    const catalog = catalogFromIndex(index);
    const range = second.written[0];
    expect(range).toBeDefined();
    const key = rangeKey('app', ID, range?.file ?? '');
    const original = await store.get(key);
    const damaged = Buffer.from(original);
    damaged[200]! ^= 0x01;
    await store.put(key, damaged);
    const plan = planRestore(catalog, { position: 500n });
    await expect(executeRestore(plan, path.join(work, 'damaged.sqlite'), { workDir: path.join(work, 'wd'), store })).rejects.toMatchObject({
      code: 'ARCHIVE_CORRUPT',
      message: expect.stringContaining(key) as string,
    });
    await store.delete([key]);
    await expect(executeRestore(plan, path.join(work, 'missing.sqlite'), { workDir: path.join(work, 'wm'), store })).rejects.toMatchObject({
      code: 'ARCHIVE_CORRUPT',
      message: expect.stringContaining(key) as string,
    });
    // The listing knows it is gone: the manifest at 500 is left out, a restore to 500 starts at 250.
    const { index: reconciled } = await loadArchiveIndex(store, 'app', ID, {});
    expect(reconciled.checkpoints.map((checkpoint) => checkpoint.position)).toEqual([250n]);
    await restoreAndCompare(catalogFromIndex(reconciled), store, { position: 500n }, 500, false);
    await store.close();
  }, 60_000);
});
