import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { foldLogIntoCheckpoint } from '../../../src/compactor/range-fold.js';
import type { CheckpointManifest } from '../../../src/format/checkpoint-manifest.js';
import { PageHashTable, pageHash } from '../../../src/format/rolling-checksum.js';
import { encodeSegment, type PageImage } from '../../../src/format/segment-codec.js';
import { LogDirectory } from '../../../src/log/log-directory.js';
import { CheckpointDirectory, loadCheckpoint } from '../../../src/replay/checkpoints.js';
import { LitebaseError } from '../../../src/errors.js';
import { formatPosition } from '../../../src/storage/layout.js';
import { Prng } from '../../support/golden-segments.js';

/**
 * The fold (src/compactor/range-fold.ts) against a model: a random history of segments (pages
 * written, the database grown and cut), folded in several compactions with small ranges, must load
 * to exactly the model's file every time; ranges that no segment touched are listed again, not
 * rewritten; and a fold whose result does not sum to the log's checksum publishes nothing.
 */

const work = mkdtempSync(path.join(tmpdir(), 'litebase-range-fold-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const DATABASE_ID = '6f1c0b52-3d4e-4a5b-8c9d-0e1f2a3b4c5d';
const PAGE_SIZE = 512;
const logger = pino({ level: 'silent' });

/** A database as the log describes it: page images by number, and its checksum table. */
class Model {
  pages = new Map<number, Buffer>();
  size = 0;
  hashes = new PageHashTable(PAGE_SIZE);
  position = 0n;

  constructor(
    readonly dir: string,
    readonly log: LogDirectory,
  ) {}

  /** Append one segment: write `pages` and set the size to `size`. */
  commit(written: Map<number, Buffer>, size: number): void {
    const pre = this.hashes.checksum;
    const images: PageImage[] = [...written.entries()]
      .filter(([pageNumber]) => pageNumber <= size)
      .sort((a, b) => a[0] - b[0])
      .map(([pageNumber, data]) => ({ pageNumber, data }));
    for (const [pageNumber] of this.pages) if (pageNumber > size) this.pages.delete(pageNumber);
    for (const { pageNumber, data } of images) this.pages.set(pageNumber, Buffer.from(data));
    this.hashes.apply(
      images.map(({ pageNumber, data }) => ({ pageNumber, hash: pageHash(pageNumber, data) })),
      size,
    );
    this.size = size;
    this.position += 1n;
    const bytes = encodeSegment(
      {
        databaseId: DATABASE_ID,
        term: 1n,
        position: this.position,
        commitTimeMs: 1_767_225_600_000 + Number(this.position),
        pageSize: PAGE_SIZE,
        databaseSizePages: size,
        transactionCount: 1,
        preChecksum: pre,
        postChecksum: this.hashes.checksum,
      },
      images,
    );
    writeFileSync(path.join(this.log.dir, `${formatPosition(this.position)}.seg`), bytes);
  }

  /** The SQLite file the model describes: pages never written are zeros. */
  file(): Buffer {
    const out = Buffer.alloc(this.size * PAGE_SIZE);
    for (const [pageNumber, data] of this.pages) if (pageNumber <= this.size) data.copy(out, (pageNumber - 1) * PAGE_SIZE);
    return out;
  }
}

function setup(name: string): { model: Model; directory: CheckpointDirectory; log: LogDirectory } {
  const dir = path.join(work, name);
  mkdirSync(path.join(dir, 'log'), { recursive: true });
  const log = new LogDirectory(path.join(dir, 'log'));
  return { model: new Model(dir, log), directory: CheckpointDirectory.besideLog(log.dir), log };
}

function randomPage(prng: Prng): Buffer {
  const page = Buffer.alloc(PAGE_SIZE);
  for (let i = 0; i < PAGE_SIZE; i += 4) page.writeUInt32BE(prng.u32() >>> 0, i);
  return page;
}

async function fold(
  directory: CheckpointDirectory,
  log: LogDirectory,
  base: CheckpointManifest | undefined,
  rangePages: number,
): Promise<CheckpointManifest | undefined> {
  const result = await foldLogIntoCheckpoint({
    directory,
    log,
    databaseId: DATABASE_ID,
    base,
    rangePages,
    workDir: path.join(directory.dir, '..', 'work'),
    logger,
    checkStop: () => undefined,
  });
  return result?.manifest;
}

async function loaded(directory: CheckpointDirectory, manifest: CheckpointManifest, name: string): Promise<Buffer> {
  const target = path.join(work, `${name}.sqlite`);
  await loadCheckpoint(await directory.describe(manifest.position, DATABASE_ID), target, DATABASE_ID);
  return readFileSync(target);
}

describe('folding the log onto range files', () => {
  it('matches the model through random writes, growth and truncation, over several compactions', async () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const prng = new Prng(seed);
      const { model, directory, log } = setup(`model-${seed}`);
      let base: CheckpointManifest | undefined;
      for (let compaction = 0; compaction < 6; compaction++) {
        const segments = 1 + (prng.u32() % 6);
        for (let s = 0; s < segments; s++) {
          // Mostly growth and writes; now and then the database is cut (VACUUM, incremental vacuum).
          const roll = prng.u32() % 10;
          const size = roll < 2 ? Math.max(0, model.size - (prng.u32() % 12)) : model.size + (prng.u32() % 9);
          const written = new Map<number, Buffer>();
          const writes = prng.u32() % 8;
          for (let w = 0; w < writes && size > 0; w++) written.set(1 + (prng.u32() % size), randomPage(prng));
          model.commit(written, size);
        }
        const manifest = await fold(directory, log, base, 4);
        expect(manifest?.position).toBe(model.position);
        expect(manifest?.checksum).toBe(model.hashes.checksum);
        expect(manifest?.databaseSizePages).toBe(model.size);
        const file = await loaded(directory, manifest as CheckpointManifest, `model-${seed}-${compaction}`);
        expect(file.equals(model.file())).toBe(true);
        base = manifest;
      }
    }
  });

  it('rewrites only the ranges that hold a changed page and lists the others again', async () => {
    const { model, directory, log } = setup('reuse');
    const prng = new Prng(9);
    const all = new Map<number, Buffer>();
    for (let pageNumber = 1; pageNumber <= 40; pageNumber++) all.set(pageNumber, randomPage(prng));
    model.commit(all, 40);
    const first = (await fold(directory, log, undefined, 8)) as CheckpointManifest;
    expect(first.ranges).toHaveLength(5);
    model.commit(new Map([[19, randomPage(prng)]]), 40); // range 2 (pages 17..24)
    const second = (await fold(directory, log, first, 8)) as CheckpointManifest;
    const rewritten = second.ranges.filter((range, index) => range.file !== first.ranges[index]?.file).map((range) => range.index);
    expect(rewritten).toEqual([2]);
    expect(readdirSync(directory.rangesDir).filter((name) => name.endsWith('.range'))).toHaveLength(6);
    expect((await loaded(directory, second, 'reuse')).equals(model.file())).toBe(true);
  });

  it('gives zeros to pages cut off and grown back without a write between two compactions', async () => {
    const { model, directory, log } = setup('regrow');
    const prng = new Prng(11);
    const all = new Map<number, Buffer>();
    for (let pageNumber = 1; pageNumber <= 16; pageNumber++) all.set(pageNumber, randomPage(prng));
    model.commit(all, 16);
    const first = (await fold(directory, log, undefined, 8)) as CheckpointManifest;
    model.commit(new Map(), 10); // cut into the second range
    model.commit(new Map(), 16); // and grown back: pages 11..16 are zeros now
    const second = (await fold(directory, log, first, 8)) as CheckpointManifest;
    expect(second.ranges[0]?.file).toBe(first.ranges[0]?.file);
    expect(second.ranges[1]?.file).not.toBe(first.ranges[1]?.file);
    expect((await loaded(directory, second, 'regrow')).equals(model.file())).toBe(true);
  });

  it('answers undefined when nothing follows the base, and stops before a gap', async () => {
    const { model, directory, log } = setup('gap');
    const prng = new Prng(4);
    model.commit(new Map([[1, randomPage(prng)]]), 1);
    model.commit(new Map([[2, randomPage(prng)]]), 2);
    model.commit(new Map([[3, randomPage(prng)]]), 3);
    rmSync(log.segmentPath(2n));
    const manifest = (await fold(directory, log, undefined, 4)) as CheckpointManifest;
    expect(manifest.position).toBe(1n);
    expect(await fold(directory, log, manifest, 4)).toBeUndefined();
  });

  it('publishes nothing when the result does not sum to the log (a damaged segment that passed its trailer)', async () => {
    const { model, directory, log } = setup('mismatch');
    const prng = new Prng(5);
    model.commit(new Map([[1, randomPage(prng)]]), 2);
    // Rewrite the segment claiming another post-checksum: the chain itself is consistent, the pages are not.
    const bytes = encodeSegment(
      {
        databaseId: DATABASE_ID,
        term: 1n,
        position: 2n,
        commitTimeMs: 1_767_225_600_002,
        pageSize: PAGE_SIZE,
        databaseSizePages: 2,
        transactionCount: 1,
        preChecksum: model.hashes.checksum,
        postChecksum: 0x1234n,
      },
      [{ pageNumber: 2, data: randomPage(prng) }],
    );
    writeFileSync(log.segmentPath(2n), bytes);
    const error = await fold(directory, log, undefined, 4).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(LitebaseError);
    expect((error as LitebaseError).code).toBe('CHECKPOINT_FOLD_MISMATCH');
    expect(await directory.positions()).toEqual([]);
    expect(readdirSync(directory.rangesDir)).toEqual([]);
  });
});
