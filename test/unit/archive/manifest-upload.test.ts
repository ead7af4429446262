import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { emptyIndex, loadArchiveIndex, serializeIndex, type ArchiveIndex } from '../../../src/archive/archive-index.js';
import { indexKey, rangeKey } from '../../../src/archive/archive-keys.js';
import { manifestUploadCost, uploadManifest } from '../../../src/archive/manifest-upload.js';
import type { ObjectStore } from '../../../src/storage/object-store.js';
import { openObjectStore } from '../../../src/storage/open-object-store.js';
import { history, ID, type ModelSegment } from '../../support/bundle-history.js';
import { writeRangeCheckpoint, type SharedRangeCheckpoint } from '../../support/range-checkpoints.js';

/**
 * Range checkpoints into the archive (src/archive/manifest-upload.ts) and the index that lists them
 * (src/archive/archive-index.ts): a range file is uploaded once, whatever number of manifests list
 * it; the index is a cache that the listing (and the manifests) can rebuild.
 */
const work = mkdtempSync(path.join(tmpdir(), 'litebase-manifest-upload-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let stores = 0;
function freshStore(): ObjectStore {
  return openObjectStore(pathToFileURL(path.join(work, `store-${stores++}`)).href);
}

async function upload(store: ObjectStore, index: ArchiveIndex, checkpoint: SharedRangeCheckpoint) {
  return uploadManifest({
    store,
    index,
    manifestFile: checkpoint.manifestFile,
    manifest: checkpoint.manifest,
    rangesDir: checkpoint.rangesDir,
  });
}

async function rangeObjects(store: ObjectStore): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  for await (const info of store.list(`databases/app/${ID}/ranges/`)) found.set(info.key, info.size);
  return found;
}

const sum = (ranges: ReadonlyArray<{ bytes: number }>): number => ranges.reduce((total, range) => total + range.bytes, 0);

describe('range checkpoints in the archive', () => {
  const segments = history(31, 280);
  const at = (position: number): ModelSegment => segments[position - 1] as ModelSegment;

  it('uploads a range once: a second manifest uploads only the ranges that changed; the index lists them and the listing rebuilds it', async () => {
    const shared = path.join(work, 'shared-1');
    const a = await writeRangeCheckpoint(shared, at(250), 8);
    const b = await writeRangeCheckpoint(shared, at(260), 8, a);
    // The model writes hot pages and a few random ones: some ranges change in ten segments, most do not.
    expect(b.written.length).toBeGreaterThan(0);
    expect(b.written.length).toBeLessThan(b.manifest.ranges.length / 2);

    const store = freshStore();
    const index = emptyIndex('app', ID);
    const manifestBytesA = statSync(a.manifestFile).size;
    expect(manifestUploadCost(index, a.manifest, manifestBytesA)).toBe(sum(a.manifest.ranges) + manifestBytesA);
    const first = await upload(store, index, a);
    expect(first).toMatchObject({
      rangesUploaded: a.manifest.ranges.length,
      rangesHeld: 0,
      bytes: sum(a.manifest.ranges) + manifestBytesA,
    });

    const manifestBytesB = statSync(b.manifestFile).size;
    const cost = manifestUploadCost(index, b.manifest, manifestBytesB);
    expect(cost).toBe(sum(b.written) + manifestBytesB);
    const second = await upload(store, index, b);
    expect(second).toEqual({
      key: `databases/app/${ID}/manifests/00000000000000000260.json`,
      rangesUploaded: b.written.length,
      rangesHeld: b.manifest.ranges.length - b.written.length,
      bytes: cost,
    });

    // In the store: every range once.
    const objects = await rangeObjects(store);
    expect(objects.size).toBe(a.manifest.ranges.length + b.written.length);
    expect([...objects.values()].reduce((total, size) => total + size, 0)).toBe(sum(a.manifest.ranges) + sum(b.written));

    // In the index: both manifests, each range with the manifests that list it.
    expect(index.checkpoints.map((entry) => [entry.position, entry.bytes, entry.manifest?.ranges])).toEqual([
      [250n, first.bytes, a.manifest.ranges.length],
      [260n, second.bytes, b.manifest.ranges.length],
    ]);
    const inB = new Set(b.manifest.ranges.map((range) => range.file));
    const newInB = new Set(b.written.map((range) => range.file));
    for (const range of index.ranges) {
      const file = path.basename(range.key);
      const listed = newInB.has(file) ? [260n, 260n] : inB.has(file) ? [250n, 260n] : [250n, 250n];
      expect([range.firstListed, range.lastListed], file).toEqual(listed);
      expect(range.sha256).toMatch(/^[0-9a-f]{64}$/);
    }

    // Written and read back; then rebuilt from the listing and the manifests alone.
    await store.put(indexKey('app', ID), serializeIndex(index));
    const loaded = await loadArchiveIndex(store, 'app', ID, {});
    expect(loaded.repaired).toBe(false);
    expect(loaded.index).toEqual(index);
    await store.delete([indexKey('app', ID)]);
    const rebuilt = await loadArchiveIndex(store, 'app', ID, {});
    expect(rebuilt.repaired).toBe(true);
    expect(rebuilt.foreign).toEqual([]);
    expect(rebuilt.index).toEqual(index);
    await store.close();
  });

  it('leaves out a manifest whose range is gone, and adopts ranges an upload cut short left behind', async () => {
    const shared = path.join(work, 'shared-2');
    const a = await writeRangeCheckpoint(shared, at(250), 8);
    const b = await writeRangeCheckpoint(shared, at(260), 8, a);
    const c = await writeRangeCheckpoint(shared, at(280), 8, b);
    const store = freshStore();
    const index = emptyIndex('app', ID);
    await upload(store, index, a);
    await upload(store, index, b);
    await store.put(indexKey('app', ID), serializeIndex(index));

    // C's new ranges uploaded, then a crash before its manifest and the index.
    for (const range of c.written) await store.putFile(rangeKey('app', ID, range.file), path.join(c.rangesDir, range.file));
    // One of them damaged in the store (same size).
    const damaged = c.written[0] as (typeof c.written)[number];
    const damagedKey = rangeKey('app', ID, damaged.file);
    const bytes = readFileSync(path.join(c.rangesDir, damaged.file));
    bytes[bytes.length - 20]! ^= 0xff;
    await store.put(damagedKey, bytes);
    const afterCrash = await loadArchiveIndex(store, 'app', ID, {});
    expect(afterCrash.repaired).toBe(true);
    const orphans = afterCrash.index.ranges.filter((range) => range.lastListed === undefined);
    expect(orphans.map((range) => path.basename(range.key)).sort()).toEqual(c.written.map((range) => range.file).sort());
    expect(orphans.every((range) => range.sha256 === undefined)).toBe(true);
    const retry = await upload(store, afterCrash.index, c);
    // The damaged one again; the others adopted as they are.
    expect(retry.rangesUploaded).toBe(1);
    expect(readFileSync(path.join(c.rangesDir, damaged.file)).equals(await store.get(damagedKey))).toBe(true);
    await store.put(indexKey('app', ID), serializeIndex(afterCrash.index));

    // A range only B lists is lost: B is left out, A and C stay.
    const onlyB = b.written.find((range) => !c.manifest.ranges.some((other) => other.file === range.file));
    expect(onlyB).toBeDefined();
    await store.delete([rangeKey('app', ID, onlyB?.file ?? '')]);
    const lost = await loadArchiveIndex(store, 'app', ID, {});
    expect(lost.repaired).toBe(true);
    expect(lost.index.checkpoints.map((entry) => entry.position)).toEqual([250n, 280n]);
    await store.close();
  });
});
