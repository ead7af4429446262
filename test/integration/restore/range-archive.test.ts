import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadArchiveIndex, serializeIndex } from '../../../src/archive/archive-index.js';
import { bundleKey, indexKey } from '../../../src/archive/archive-keys.js';
import { uploadManifest } from '../../../src/archive/manifest-upload.js';
import { CheckpointDirectory, writeCheckpointFromFile } from '../../../src/replay/checkpoints.js';
import { formatChecksum } from '../../../src/format/rolling-checksum.js';
import type { ObjectStore } from '../../../src/storage/object-store.js';
import { openObjectStore } from '../../../src/storage/open-object-store.js';
import { history, ID, PAGE, writeBundle, type ModelSegment } from '../../support/bundle-history.js';
import { runCli } from '../../support/cli.js';
import { writeRangeCheckpoint, type SharedRangeCheckpoint } from '../../support/range-checkpoints.js';
import { tempDir } from '../../support/server.js';

/**
 * Range checkpoints archived and restored end to end (docs/FORMAT.md §11): checkpoints of a model
 * history on a shared folder (the first written by the replay floor's own writer, the next ones
 * carrying unchanged range files over), archived with uploadManifest into a file:// store beside
 * bundles of the whole log; each archive uploads only the range files the store lacks. Then the
 * offline restore (`litebase restore --output`, a child process) rebuilds points before, at and
 * between the checkpoints from the store alone, byte for byte.
 */
const work = tempDir('litebase-range-archive-');
afterAll(() => rmSync(work, { recursive: true, force: true }));

const segments = history(7, 600);
const at = (position: number): ModelSegment => segments[position - 1] as ModelSegment;
const RANGE_PAGES = 16;

async function rangeObjects(store: ObjectStore): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  for await (const info of store.list(`databases/app/${ID}/ranges/`)) found.set(info.key, info.size);
  return found;
}

describe('range checkpoints through the archive', () => {
  it('uploads each range file once, and restores any point from manifests, ranges and bundles alone', async () => {
    const storeDir = path.join(work, 'store');
    const storeUrl = pathToFileURL(storeDir).href;
    const store = openObjectStore(storeUrl);
    try {
      // The history in bundles, as the compactor archives it.
      for (const [first, last] of [
        [1, 150],
        [151, 420],
        [421, 600],
      ] as const) {
        const file = path.join(work, `bundle-${first}.seg`);
        await writeBundle(file, segments.slice(first - 1, last));
        await store.putFile(bundleKey('app', ID, BigInt(first), BigInt(last)), file);
      }

      // Checkpoints at 200 (from a file, by the replay floor's writer), 212 and 600 (changed ranges only).
      const directory = new CheckpointDirectory(path.join(work, 'shared', 'checkpoints'));
      const stateFile = path.join(work, 'state-200');
      writeFileSync(stateFile, Buffer.concat(at(200).state));
      const written = await writeCheckpointFromFile(
        directory,
        stateFile,
        {
          databaseId: ID,
          term: 1n,
          position: 200n,
          commitTimeMs: at(200).timeMs,
          pageSize: PAGE,
          databaseSizePages: at(200).sizePages,
          checksum: at(200).checksum,
        },
        RANGE_PAGES,
      );
      const first: SharedRangeCheckpoint = {
        manifest: written.manifest,
        manifestFile: directory.manifestPath(200n),
        rangesDir: directory.rangesDir,
        written: written.manifest.ranges,
        state: at(200).state,
      };
      const second = await writeRangeCheckpoint(directory.dir, at(212), RANGE_PAGES, first);
      const third = await writeRangeCheckpoint(directory.dir, at(600), RANGE_PAGES, second);

      const { index } = await loadArchiveIndex(store, 'app', ID, {});
      for (const checkpoint of [first, second, third]) {
        const before = await rangeObjects(store);
        const result = await uploadManifest({
          store,
          index,
          manifestFile: checkpoint.manifestFile,
          manifest: checkpoint.manifest,
          rangesDir: checkpoint.rangesDir,
        });
        const after = await rangeObjects(store);
        const added = [...after.keys()].filter((key) => !before.has(key));
        // Exactly the ranges this checkpoint wrote; the unchanged ones are in the store already.
        expect(added.map((key) => path.basename(key)).sort()).toEqual(checkpoint.written.map((range) => range.file).sort());
        expect(added.reduce((sum, key) => sum + (after.get(key) as number), 0)).toBe(
          checkpoint.written.reduce((sum, range) => sum + range.bytes, 0),
        );
        expect(result.rangesUploaded).toBe(checkpoint.written.length);
        expect(result.rangesHeld).toBe(checkpoint.manifest.ranges.length - checkpoint.written.length);
      }
      expect(second.written.length).toBeLessThan(second.manifest.ranges.length);
      await store.put(indexKey('app', ID), serializeIndex(index));

      // Offline restores from the store alone: at, between and before the checkpoints, by position and by time.
      const targets: Array<[string[], number]> = [
        [['--position', '120'], 120],
        [['--position', '200'], 200],
        [['--position', '333'], 333],
        [['--position', '205'], 205],
        [['--position', '212'], 212],
        [['--position', '600'], 600],
        [['--timestamp', new Date(at(555).timeMs).toISOString()], 555],
      ];
      for (const [[flag, value], position] of targets) {
        const output = path.join(work, `restored-${position}.sqlite`);
        const result = await runCli([
          'restore',
          'app',
          flag as string,
          value as string,
          '--output',
          output,
          '--object-store',
          storeUrl,
          '--no-check',
          '--json',
        ]);
        expect(result.code, result.stderr).toBe(0);
        const summary = JSON.parse(result.stdout.trim().split('\n').at(-1) as string) as { position: string; checksum: string };
        expect(summary.position).toBe(String(position));
        expect(summary.checksum).toBe(formatChecksum(at(position).checksum));
        expect(readFileSync(output).equals(Buffer.concat(at(position).state)), `position ${position}`).toBe(true);
      }
    } finally {
      await store.close();
    }
  }, 120_000);
});
