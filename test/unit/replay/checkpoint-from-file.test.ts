import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LitebaseError } from '../../../src/errors.js';
import { PageHashTable } from '../../../src/format/rolling-checksum.js';
import { CheckpointDirectory, loadCheckpoint, writeCheckpointFromFile } from '../../../src/replay/checkpoints.js';
import { writeRangeFile } from '../../../src/replay/range-files.js';
import { randomDatabaseFile } from '../../support/range-checkpoints.js';

/**
 * A range checkpoint written from a database file (a restore's new checkpoint, docs/FORMAT.md §8):
 * with the page hashes the restore computed, every page read back is checked against them, and the
 * hashes computed for that check are the ones the range files record (no second hash of each page).
 */

const work = mkdtempSync(path.join(tmpdir(), 'litebase-checkpoint-from-file-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const DATABASE_ID = '0b6c2f4e-5a1d-4e3b-8c7f-2d9e6a4b1c30';
const PAGE_SIZE = 512;
const PAGES = 11; // three ranges of 4 pages, the last one short

function sourceFile(name: string, seed: number) {
  const file = path.join(work, `${name}.sqlite`);
  return { file, ...randomDatabaseFile(file, { seed, pageCount: PAGES, pageSize: PAGE_SIZE, databaseId: DATABASE_ID }) };
}

describe('writeCheckpointFromFile', () => {
  it('with the expected page hashes, writes the same ranges and checksums as without, and loads back byte for byte', async () => {
    const { file, hashes, source } = sourceFile('same', 1);
    const plain = new CheckpointDirectory(path.join(work, 'plain'));
    const checked = new CheckpointDirectory(path.join(work, 'checked'));
    const { manifest: withoutHashes } = await writeCheckpointFromFile(plain, file, source, 4);
    const { manifest: withHashes } = await writeCheckpointFromFile(checked, file, source, 4, PageHashTable.fromHashes(PAGE_SIZE, hashes));
    expect(withHashes.checksum).toBe(source.checksum);
    expect(withHashes.ranges.map((range) => [range.firstPage, range.pages, range.checksum])).toEqual(
      withoutHashes.ranges.map((range) => [range.firstPage, range.pages, range.checksum]),
    );
    // Each range's checksum is the XOR of its own pages' hashes.
    for (const range of withHashes.ranges) {
      const own = hashes.slice(range.firstPage - 1, range.firstPage - 1 + range.pages).reduce((sum, hash) => sum ^ hash, 0n);
      expect(range.checksum).toBe(own);
    }
    const loaded = path.join(work, 'loaded.sqlite');
    await loadCheckpoint(await checked.describe(1n, DATABASE_ID), loaded, DATABASE_ID);
    expect(readFileSync(loaded).equals(readFileSync(file))).toBe(true);
  });

  it('refuses a file whose page differs from the hash it should have, naming the page', async () => {
    const { file, hashes, source } = sourceFile('differs', 2);
    const wrong = hashes.slice();
    wrong[6] = (wrong[6] as bigint) ^ 1n; // page 7, in the second range
    const directory = new CheckpointDirectory(path.join(work, 'differs'));
    const error = await writeCheckpointFromFile(directory, file, source, 4, PageHashTable.fromHashes(PAGE_SIZE, wrong)).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(LitebaseError);
    expect((error as LitebaseError).code).toBe('CHECKPOINT_SOURCE_MISMATCH');
    expect((error as LitebaseError).message).toContain('page 7 ');
    expect(await directory.positions()).toEqual([]);
  });
});

describe('writeRangeFile', () => {
  it('refuses page hashes that are not one per page', async () => {
    const { hashes, source } = sourceFile('count', 3);
    const images = Buffer.alloc(4 * PAGE_SIZE);
    await expect(writeRangeFile(path.join(work, 'count-ranges'), source, 0, 1, images, hashes.slice(0, 3))).rejects.toThrow(
      '3 page hashes for 4 pages',
    );
  });
});
