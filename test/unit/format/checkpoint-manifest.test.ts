import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LitebaseError } from '../../../src/errors.js';
import {
  decodeManifest,
  encodeManifest,
  parseRangeFileName,
  rangeFileName,
  type CheckpointManifest,
} from '../../../src/format/checkpoint-manifest.js';
import { pageHash } from '../../../src/format/rolling-checksum.js';
import { inspectFile } from '../../../src/cli/inspect/inspect-file.js';
import { CheckpointDirectory, loadCheckpoint, writeCheckpointFromFile } from '../../../src/replay/checkpoints.js';
import { makePages, Prng } from '../../support/golden-segments.js';

/**
 * The checkpoint manifest (docs/FORMAT.md §8): a golden checkpoint in fixtures/checkpoints/ (a
 * manifest and its range files) that must decode, re-encode byte for byte and load to the pages
 * recorded beside it; and hostile manifests, each of which must be refused with CHECKPOINT_INVALID
 * (or CHECKPOINT_FOREIGN), never another error. Regenerate the golden checkpoint with
 * `UPDATE_GOLDEN=1 npx vitest run test/unit/format/checkpoint-manifest.test.ts` and review the diff.
 */

const GOLDEN = path.join(import.meta.dirname, '../../../fixtures/checkpoints/three-ranges');
const DATABASE_ID = '6f1c0b52-3d4e-4a8b-9c2d-7e5f10a2b3c4';
const PAGE_SIZE = 512;
const work = mkdtempSync(path.join(tmpdir(), 'litebase-manifest-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface GoldenPages {
  description: string;
  databaseSizePages: number;
  rangePages: number;
  pages: Array<{ pageNumber: number; sha256: string }>;
}

function goldenSource(): { file: Buffer; pages: Array<{ pageNumber: number; data: Uint8Array }> } {
  const pages = makePages(
    new Prng(77),
    Array.from({ length: 10 }, (_, i) => i + 1),
    PAGE_SIZE,
  );
  const file = Buffer.alloc(10 * PAGE_SIZE);
  for (const { pageNumber, data } of pages) file.set(data, (pageNumber - 1) * PAGE_SIZE);
  return { file, pages };
}

describe('checkpoint manifest golden files', () => {
  it.skipIf(process.env.UPDATE_GOLDEN !== '1')('regenerates fixtures/checkpoints/three-ranges', async () => {
    rmSync(GOLDEN, { recursive: true, force: true });
    mkdirSync(GOLDEN, { recursive: true });
    const { file, pages } = goldenSource();
    const sqlite = path.join(work, 'golden.sqlite');
    writeFileSync(sqlite, file);
    const checksum = pages.reduce((sum, page) => sum ^ pageHash(page.pageNumber, page.data), 0n);
    await writeCheckpointFromFile(
      new CheckpointDirectory(GOLDEN),
      sqlite,
      {
        databaseId: DATABASE_ID,
        term: 2n,
        position: 42n,
        commitTimeMs: 1767225600000,
        pageSize: PAGE_SIZE,
        databaseSizePages: 10,
        checksum,
      },
      4,
    );
    const description: GoldenPages = {
      description: 'ten 512-byte pages in ranges of 4: two full ranges and a short one, written at position 42',
      databaseSizePages: 10,
      rangePages: 4,
      pages: pages.map(({ pageNumber, data }) => ({ pageNumber, sha256: createHash('sha256').update(data).digest('hex') })),
    };
    writeFileSync(path.join(GOLDEN, 'pages.json'), JSON.stringify(description, null, 1) + '\n');
  });

  it('decodes, re-encodes byte for byte, and loads to the recorded pages', async () => {
    expect(existsSync(GOLDEN)).toBe(true);
    const directory = new CheckpointDirectory(GOLDEN);
    const expected = JSON.parse(readFileSync(path.join(GOLDEN, 'pages.json'), 'utf8')) as GoldenPages;
    const bytes = readFileSync(directory.manifestPath(42n));
    const manifest = decodeManifest(bytes, 'golden', DATABASE_ID);
    expect(encodeManifest(manifest).equals(bytes)).toBe(true);
    expect(manifest.ranges.map((range) => [range.index, range.firstPage, range.pages])).toEqual([
      [0, 1, 4],
      [1, 5, 4],
      [2, 9, 2],
    ]);
    for (const range of manifest.ranges) {
      const file = readFileSync(directory.rangePath(range.file));
      expect(file.length).toBe(range.bytes);
      expect(createHash('sha256').update(file).digest('hex')).toBe(range.sha256);
      expect(parseRangeFileName(range.file)).toEqual({ index: range.index, position: 42n });
    }
    const target = path.join(work, 'loaded.sqlite');
    await loadCheckpoint(await directory.describe(42n, DATABASE_ID), target, DATABASE_ID);
    const loaded = readFileSync(target);
    expect(loaded.length).toBe(expected.databaseSizePages * PAGE_SIZE);
    expect(
      expected.pages.map(({ pageNumber }) => ({
        pageNumber,
        sha256: createHash('sha256')
          .update(loaded.subarray((pageNumber - 1) * PAGE_SIZE, pageNumber * PAGE_SIZE))
          .digest('hex'),
      })),
    ).toEqual(expected.pages);
    // The source is reproducible: the fixture's pages are what the generator made.
    expect(loaded.equals(goldenSource().file)).toBe(true);
  });
});

describe('hostile manifests', () => {
  const valid = (): CheckpointManifest => decodeManifest(readFileSync(new CheckpointDirectory(GOLDEN).manifestPath(42n)), 'golden');

  function refused(mutate: (json: Record<string, unknown>) => void, code = 'CHECKPOINT_INVALID'): void {
    const json = JSON.parse(encodeManifest(valid()).toString('utf8')) as Record<string, unknown>;
    mutate(json);
    let caught: unknown;
    try {
      decodeManifest(Buffer.from(JSON.stringify(json)), 'hostile', DATABASE_ID);
    } catch (error) {
      caught = error;
    }
    expect(caught, JSON.stringify(json).slice(0, 200)).toBeInstanceOf(LitebaseError);
    expect((caught as LitebaseError).code).toBe(code);
  }

  const ranges = (json: Record<string, unknown>): Array<Record<string, unknown>> => json.ranges as Array<Record<string, unknown>>;

  it('refuses each broken rule with CHECKPOINT_INVALID', () => {
    refused((json) => (json.format = 'something-else'));
    refused((json) => (json.version = 2));
    refused((json) => (json.position = '0'));
    refused((json) => (json.position = '18446744073709551616'));
    refused((json) => (json.position = 42));
    refused((json) => (json.pageSize = 1000));
    refused((json) => (json.databaseSizePages = 11));
    refused((json) => (json.databaseSizePages = -1));
    refused((json) => (json.rangePages = 0));
    refused((json) => (json.rangePages = 5));
    refused((json) => (json.checksum = '0000000000000000'));
    refused((json) => (json.checksum = 'xyz'));
    refused((json) => (json.databaseId = 'not-a-uuid'));
    refused((json) => (json.ranges = 'none'));
    refused((json) => ranges(json).pop());
    refused((json) => ranges(json).reverse());
    refused((json) => ranges(json).push({ ...ranges(json)[0] }));
    refused((json) => ((ranges(json)[1] as Record<string, unknown>).index = 2));
    refused((json) => ((ranges(json)[1] as Record<string, unknown>).firstPage = 4));
    refused((json) => ((ranges(json)[2] as Record<string, unknown>).pages = 4));
    refused((json) => ((ranges(json)[0] as Record<string, unknown>).file = '../../etc/passwd'));
    refused((json) => ((ranges(json)[0] as Record<string, unknown>).file = rangeFileName(1, 42n, '0123456789abcdef')));
    refused((json) => ((ranges(json)[0] as Record<string, unknown>).file = rangeFileName(0, 43n, '0123456789abcdef')));
    refused((json) => ((ranges(json)[0] as Record<string, unknown>).bytes = 3));
    refused((json) => ((ranges(json)[0] as Record<string, unknown>).sha256 = 'abc'));
    refused((json) => ((ranges(json)[0] as Record<string, unknown>).checksum = '0000000000000001'));
    refused((json) => (ranges(json)[0] = null as unknown as Record<string, unknown>));
  });

  it('refuses a manifest of another database with CHECKPOINT_FOREIGN', () => {
    refused((json) => (json.databaseId = '00000000-0000-4000-8000-000000000000'), 'CHECKPOINT_FOREIGN');
  });

  it('refuses random damage with a typed error, or, when every rule still holds, loads the same pages or refuses to', async () => {
    const bytes = encodeManifest(valid());
    const copy = path.join(work, 'damaged');
    mkdirSync(path.join(copy, 'manifests'), { recursive: true });
    mkdirSync(path.join(copy, 'ranges'), { recursive: true });
    for (const name of readdirSync(path.join(GOLDEN, 'ranges'))) {
      writeFileSync(path.join(copy, 'ranges', name), readFileSync(path.join(GOLDEN, 'ranges', name)));
    }
    const directory = new CheckpointDirectory(copy);
    const prng = new Prng(3);
    const original = goldenSource().file;
    let refusedCount = 0;
    for (let i = 0; i < 2000; i++) {
      const damaged = Buffer.from(bytes);
      const flips = 1 + (prng.u32() % 3);
      for (let f = 0; f < flips; f++) damaged[prng.u32() % damaged.length] = prng.u32() & 0xff;
      try {
        decodeManifest(damaged, 'damaged', DATABASE_ID);
      } catch (error) {
        expect(error).toBeInstanceOf(LitebaseError);
        expect(['CHECKPOINT_INVALID', 'CHECKPOINT_FOREIGN']).toContain((error as LitebaseError).code);
        refusedCount += 1;
        continue;
      }
      // Damage the manifest's rules cannot see (a time, a term, a digit of a SHA-256): the range
      // files are checked against it as they load.
      writeFileSync(directory.manifestPath(42n), damaged);
      const target = path.join(work, 'damaged.sqlite');
      try {
        await loadCheckpoint(await directory.describe(42n, DATABASE_ID), target, DATABASE_ID);
        expect(readFileSync(target).equals(original)).toBe(true);
      } catch (error) {
        expect(error).toBeInstanceOf(LitebaseError);
        expect((error as LitebaseError).code).toMatch(/^(CHECKPOINT_|SEGMENT_)/);
      }
    }
    expect(refusedCount).toBeGreaterThan(1500);
  });

  it('litebase inspect verifies a range file and names damage in it', async () => {
    const name = readdirSync(path.join(GOLDEN, 'ranges')).sort()[1] as string;
    const file = path.join(GOLDEN, 'ranges', name);
    const report = await inspectFile(file, { pages: false });
    expect(report).toMatchObject({ kind: 'range', valid: true, checkpoint: { pagesVerified: 4, firstPage: 5, lastPage: 8 } });
    const damaged = path.join(work, name);
    const bytes = readFileSync(file);
    bytes[bytes.length - 20] = (bytes[bytes.length - 20] as number) ^ 1;
    writeFileSync(damaged, bytes);
    const bad = await inspectFile(damaged, { pages: false });
    expect(bad.valid).toBe(false);
    expect(bad.problem?.code).toBe('SEGMENT_CHECKSUM_MISMATCH');
  });

  it('names range files so that two writers never collide and parses only its own names', () => {
    expect(rangeFileName(3, 42n, '0123456789abcdef')).toBe('0000000003-00000000000000000042-0123456789abcdef.range');
    expect(parseRangeFileName('0000000003-00000000000000000042-0123456789abcdef.range')).toEqual({ index: 3, position: 42n });
    expect(parseRangeFileName('.tmp-0000000003-00000000000000000042-0123456789abcdef.range-abc')).toBeUndefined();
    expect(() => rangeFileName(3, 42n, 'short')).toThrow(RangeError);
    expect(readdirSync(path.join(GOLDEN, 'ranges'))).toHaveLength(3);
  });
});
