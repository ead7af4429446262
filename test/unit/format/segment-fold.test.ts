import { describe, expect, it } from 'vitest';
import { pageHash, PageHashTable } from '../../../src/format/rolling-checksum.js';
import { foldSegments } from '../../../src/format/segment-fold.js';
import type { PageImage } from '../../../src/format/segment-codec.js';
import { Prng } from '../../support/golden-segments.js';

const PAGE_SIZE = 64;

interface TestSegment {
  header: { databaseSizePages: number };
  pages: PageImage[];
}

/** A file as an array of pages: what applying segments one by one does (the reference). */
function applyOneByOne(start: Buffer[], segments: TestSegment[]): Buffer[] {
  let file: Buffer[] = start.map((page) => Buffer.from(page));
  for (const { header, pages } of segments) {
    for (const { pageNumber, data } of pages) {
      while (file.length < pageNumber) file.push(Buffer.alloc(PAGE_SIZE));
      file[pageNumber - 1] = data;
    }
    file = file.slice(0, header.databaseSizePages);
    while (file.length < header.databaseSizePages) file.push(Buffer.alloc(PAGE_SIZE));
  }
  return file;
}

/** The same through the fold: cut to the smallest size, write the last images, set the size. */
function applyFolded(start: Buffer[], segments: TestSegment[]): Buffer[] {
  const run = foldSegments(start.length, segments);
  let file: Buffer[] = start.slice(0, run.smallestSizePages).map((page) => Buffer.from(page));
  while (file.length < run.databaseSizePages) file.push(Buffer.alloc(PAGE_SIZE));
  file = file.slice(0, run.databaseSizePages);
  for (const [pageNumber, data] of run.pages) file[pageNumber - 1] = data;
  return file;
}

function tableOf(file: Buffer[]): PageHashTable {
  const table = new PageHashTable(PAGE_SIZE);
  table.apply(
    file.map((data, index) => ({ pageNumber: index + 1, hash: pageHash(index + 1, data) })),
    file.length,
  );
  return table;
}

function randomRun(random: () => number, startSize: number): TestSegment[] {
  const segments: TestSegment[] = [];
  let size = startSize;
  const count = 1 + Math.floor(random() * 12);
  for (let i = 0; i < count; i++) {
    const roll = random();
    // Mostly growth and rewrites, sometimes a cut (VACUUM, or a DROP followed by auto-vacuum).
    size = roll < 0.15 ? Math.max(1, size - 1 - Math.floor(random() * 6)) : roll < 0.5 ? size + Math.floor(random() * 4) : size;
    const pages: PageImage[] = [];
    const writes = Math.floor(random() * 5);
    for (let w = 0; w < writes && size > 0; w++) {
      const data = Buffer.alloc(PAGE_SIZE, Math.floor(random() * 256));
      pages.push({ pageNumber: 1 + Math.floor(random() * size), data });
    }
    segments.push({ header: { databaseSizePages: size }, pages });
  }
  return segments;
}

describe('foldSegments', () => {
  it('gives the same file and the same rolling checksum as applying each segment in turn', () => {
    for (let seed = 1; seed <= 2000; seed++) {
      const prng = new Prng(seed);
      const random = (): number => prng.float();
      const startSize = Math.floor(random() * 10);
      const start = Array.from({ length: startSize }, (_, index) => Buffer.alloc(PAGE_SIZE, index + 1));
      const segments = randomRun(random, startSize);

      const expected = applyOneByOne(start, segments);
      const folded = applyFolded(start, segments);
      expect(folded, `seed ${seed}`).toEqual(expected);

      // The replica's hash table: cut, then the folded pages and the final size.
      const table = tableOf(start);
      const run = foldSegments(start.length, segments);
      if (run.smallestSizePages < table.databaseSizePages) table.apply([], run.smallestSizePages);
      table.apply(
        [...run.pages].map(([pageNumber, data]) => ({ pageNumber, hash: pageHash(pageNumber, data) })),
        run.databaseSizePages,
      );
      expect(table.checksum, `seed ${seed}`).toBe(tableOf(expected).checksum);
    }
  });

  it('keeps only the last image of a page written by many segments', () => {
    const images = [1, 2, 3].map((fill) => ({ pageNumber: 2, data: Buffer.alloc(PAGE_SIZE, fill) }));
    const run = foldSegments(
      2,
      images.map((image) => ({ header: { databaseSizePages: 2 }, pages: [image] })),
    );
    expect([...run.pages.keys()]).toEqual([2]);
    expect(run.pages.get(2)?.[0]).toBe(3);
    expect(run.smallestSizePages).toBe(2);
  });
});
