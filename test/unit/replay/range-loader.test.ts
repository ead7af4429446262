import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LitebaseError } from '../../../src/errors.js';
import { pageHash } from '../../../src/format/rolling-checksum.js';
import { SEGMENT_HEADER_SIZE } from '../../../src/format/segment-codec.js';
import { CheckpointDirectory, loadCheckpoint, writeCheckpointFromFile } from '../../../src/replay/checkpoints.js';
import { randomDatabaseFile } from '../../support/range-checkpoints.js';

/**
 * Loading a range checkpoint, on threads and on the calling thread (src/replay/range-loader.ts): the loaded file holds every
 * page, the hash table sums to the checkpoint's checksum, and a range whose pages are damaged
 * fails the load with a checkpoint error. The trailer is not what a load relies on (docs/FORMAT.md
 * §8.2): a damaged trailer over intact pages still loads.
 */

const work = mkdtempSync(path.join(tmpdir(), 'litebase-range-loader-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const DATABASE_ID = '6f1c0b52-3d4e-4a8b-9c2d-7e5f10a2b3c4';
const PAGE_SIZE = 1024;
const PAGES = 300;

async function checkpoint(name: string): Promise<{ directory: CheckpointDirectory; source: Buffer; checksum: bigint }> {
  const directory = new CheckpointDirectory(path.join(work, name));
  const file = path.join(work, `${name}.sqlite`);
  const made = randomDatabaseFile(file, { seed: 7, pageCount: PAGES, pageSize: PAGE_SIZE, databaseId: DATABASE_ID, position: 9n });
  const source = Buffer.concat(made.pages.map((page) => page.data));
  const checksum = made.source.checksum;
  await writeCheckpointFromFile(directory, file, made.source, 32);
  return { directory, source, checksum };
}

/** Change one byte of the range file listed at `index`, `offsetFromEnd` bytes before its end. */
async function damage(directory: CheckpointDirectory, index: number, offset: (size: number) => number): Promise<void> {
  const manifest = (await directory.describe(9n, DATABASE_ID)).manifest;
  const range = manifest?.ranges[index];
  if (!range) throw new Error(`no range ${index}`);
  const file = directory.rangePath(range.file);
  const bytes = readFileSync(file);
  const at = offset(bytes.length);
  bytes[at] = (bytes[at] ?? 0) ^ 0x5a;
  writeFileSync(file, bytes);
}

describe.each([
  ['on threads', true],
  ['on the calling thread', false],
])('loading a range checkpoint %s', (_label, threads) => {
  it('writes every page and returns the hash table of the checkpoint', async () => {
    const { directory, source, checksum } = await checkpoint(`whole-${threads}`);
    const info = await directory.describe(9n, DATABASE_ID);
    expect(info.parts.length).toBe(Math.ceil(PAGES / 32));
    const progress: number[] = [];
    const out = path.join(work, `whole-loaded-${threads}.sqlite`);
    const hashes = await loadCheckpoint(info, out, DATABASE_ID, { onProgress: (done) => progress.push(done), threads });
    expect(readFileSync(out).equals(source)).toBe(true);
    expect(hashes.checksum).toBe(checksum);
    expect(hashes.databaseSizePages).toBe(PAGES);
    expect(hashes.hashOf(PAGES)).toBe(pageHash(PAGES, source.subarray((PAGES - 1) * PAGE_SIZE)));
    expect(progress.at(-1)).toBe(info.bytes);
  });

  it('fails with a checkpoint error when a page of a range is damaged', async () => {
    const { directory } = await checkpoint(`damaged-body-${threads}`);
    // Inside the first chunk's compressed pages (random pages do not compress: bytes are pages).
    await damage(directory, 4, () => SEGMENT_HEADER_SIZE + 12 + 4 + 2000);
    const error = await loadCheckpoint(
      await directory.describe(9n, DATABASE_ID),
      path.join(work, `damaged-body-${threads}.sqlite`),
      DATABASE_ID,
      { threads },
    ).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(LitebaseError);
    expect(['CHECKPOINT_CHECKSUM_MISMATCH', 'SEGMENT_CORRUPT']).toContain((error as LitebaseError).code);
    expect((error as LitebaseError).message).toContain('.range');
  });

  it('loads a range whose trailer alone is damaged: the page hashes prove the pages', async () => {
    const { directory, source, checksum } = await checkpoint(`damaged-trailer-${threads}`);
    await damage(directory, 2, (size) => size - 3);
    const out = path.join(work, `damaged-trailer-${threads}.sqlite`);
    const hashes = await loadCheckpoint(await directory.describe(9n, DATABASE_ID), out, DATABASE_ID, { threads });
    expect(hashes.checksum).toBe(checksum);
    expect(readFileSync(out).equals(source)).toBe(true);
  });

  it('fails with CHECKPOINT_RANGE_MISSING when a range file is gone', async () => {
    const { directory } = await checkpoint(`missing-${threads}`);
    const info = await directory.describe(9n, DATABASE_ID);
    rmSync(info.parts[3]?.file ?? '');
    const error = await loadCheckpoint(info, path.join(work, `missing-${threads}.sqlite`), DATABASE_ID, { threads }).catch(
      (caught: unknown) => caught,
    );
    expect((error as LitebaseError).code).toBe('CHECKPOINT_RANGE_MISSING');
  });
});
