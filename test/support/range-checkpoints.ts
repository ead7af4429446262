import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { encodeManifest, rangeFileName, type CheckpointManifest, type ManifestRange } from '../../src/format/checkpoint-manifest.js';
import { pageHash } from '../../src/format/rolling-checksum.js';
import type { PageImage } from '../../src/format/segment-codec.js';
import type { CheckpointSource } from '../../src/replay/checkpoints.js';
import { SegmentFileWriter } from '../../src/log/segment-stream.js';
import { formatPosition } from '../../src/storage/layout.js';
import { ID, PAGE, type ModelSegment } from './bundle-history.js';
import { makePages, Prng } from './golden-segments.js';

/**
 * Range checkpoints of a model history (test/support/bundle-history.ts) written as the shared folder
 * holds them (RANGES-SPEC, docs/FORMAT.md §8): `<dir>/ranges/<range file>` and
 * `<dir>/manifests/<position>.json`. Built by hand with the segment container's writer, so the
 * archive and restore tests do not depend on the compactor: a range whose pages did not change
 * since `previous` is carried over (same file), every other one is written anew.
 */
export interface SharedRangeCheckpoint {
  manifest: CheckpointManifest;
  manifestFile: string;
  rangesDir: string;
  /** The range files this checkpoint wrote (the others it shares with `previous`). */
  written: ManifestRange[];
  /** The database at its position (to compare the next checkpoint with). */
  state: Buffer[];
}

export async function writeRangeCheckpoint(
  dir: string,
  at: ModelSegment,
  rangePages: number,
  previous?: SharedRangeCheckpoint,
  term = 1n,
): Promise<SharedRangeCheckpoint> {
  const rangesDir = path.join(dir, 'ranges');
  const manifestsDir = path.join(dir, 'manifests');
  mkdirSync(rangesDir, { recursive: true });
  mkdirSync(manifestsDir, { recursive: true });
  const ranges: ManifestRange[] = [];
  const written: ManifestRange[] = [];
  const size = at.sizePages;
  for (let index = 0; index * rangePages < size; index++) {
    const firstPage = index * rangePages + 1;
    const pages = Math.min(rangePages, size - firstPage + 1);
    const old = previous?.manifest.ranges[index];
    const unchanged =
      old !== undefined &&
      old.pages === pages &&
      at.state.slice(firstPage - 1, firstPage - 1 + pages).every((page, i) => page.equals(previous?.state[firstPage - 1 + i] as Buffer));
    if (unchanged) {
      ranges.push(old);
      continue;
    }
    const file = rangeFileName(index, at.position, randomBytes(8).toString('hex'));
    let checksum = 0n;
    const images = at.state.slice(firstPage - 1, firstPage - 1 + pages).map((data, i) => {
      checksum ^= pageHash(firstPage + i, data);
      return { pageNumber: firstPage + i, data };
    });
    const writer = await SegmentFileWriter.create(path.join(rangesDir, file), {
      databaseId: ID,
      term,
      position: at.position,
      commitTimeMs: at.timeMs,
      pageSize: PAGE,
      databaseSizePages: size,
      pageCount: pages,
      transactionCount: 0,
      preChecksum: 0n,
      postChecksum: checksum,
    });
    await writer.writePages(images);
    const { bytes, sha256 } = await writer.finish();
    const range: ManifestRange = { index, file, firstPage, pages, bytes, sha256, checksum };
    ranges.push(range);
    written.push(range);
  }
  const manifest: CheckpointManifest = {
    databaseId: ID,
    position: at.position,
    term,
    commitTimeMs: at.timeMs,
    pageSize: PAGE,
    databaseSizePages: size,
    checksum: at.checksum,
    rangePages,
    ranges,
  };
  const manifestFile = path.join(manifestsDir, `${formatPosition(at.position)}.json`);
  writeFileSync(manifestFile, encodeManifest(manifest));
  return { manifest, manifestFile, rangesDir, written, state: at.state.map((page) => Buffer.from(page)) };
}

/**
 * A database file of `pageCount` pages of random bytes (from `seed`), each page's hash, and the
 * checkpoint source that describes it at position 1: what `writeCheckpointFromFile` is given.
 */
export function randomDatabaseFile(
  file: string,
  options: { seed: number; pageCount: number; pageSize: number; databaseId: string; position?: bigint },
): { pages: PageImage[]; hashes: BigUint64Array<ArrayBuffer>; source: CheckpointSource } {
  const pages = makePages(
    new Prng(options.seed),
    Array.from({ length: options.pageCount }, (_, i) => i + 1),
    options.pageSize,
  );
  writeFileSync(file, Buffer.concat(pages.map((page) => page.data)));
  const hashes = new BigUint64Array(pages.map((page) => pageHash(page.pageNumber, page.data)));
  const source: CheckpointSource = {
    databaseId: options.databaseId,
    term: 1n,
    position: options.position ?? 1n,
    commitTimeMs: 1,
    pageSize: options.pageSize,
    databaseSizePages: options.pageCount,
    checksum: hashes.reduce((sum, hash) => sum ^ hash, 0n),
  };
  return { pages, hashes, source };
}
