import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { pageHash, PageHashTable } from '../../../src/format/rolling-checksum.js';

const PAGE = 512;
const page = (fill: number) => Buffer.alloc(PAGE, fill);

function fullChecksum(pages: Map<number, Buffer>, size: number): bigint {
  let sum = 0n;
  for (let p = 1; p <= size; p++) sum ^= pageHash(p, pages.get(p) ?? Buffer.alloc(PAGE));
  return sum;
}

describe('rolling checksum', () => {
  it('equals a from-scratch checksum after any sequence of writes, growth and shrinking', () => {
    const table = new PageHashTable(PAGE);
    const pages = new Map<number, Buffer>();
    let size = 0;
    for (let step = 0; step < 200; step++) {
      const newSize = Math.max(1, size + Math.floor(Math.random() * 7) - 2);
      const changed = new Map<number, Buffer>();
      for (let i = 0; i < 3; i++) changed.set(1 + Math.floor(Math.random() * newSize), randomBytes(PAGE));
      for (const p of [...pages.keys()]) if (p > newSize) pages.delete(p);
      for (const [p, data] of changed) pages.set(p, data);
      table.apply(
        [...changed].map(([pageNumber, data]) => ({ pageNumber, hash: pageHash(pageNumber, data) })),
        newSize,
      );
      size = newSize;
      expect(table.checksum).toBe(fullChecksum(pages, size));
    }
  });

  it('depends on which page holds which bytes', () => {
    const a = new PageHashTable(PAGE);
    a.apply(
      [
        { pageNumber: 1, hash: pageHash(1, page(1)) },
        { pageNumber: 2, hash: pageHash(2, page(2)) },
      ],
      2,
    );
    const b = new PageHashTable(PAGE);
    b.apply(
      [
        { pageNumber: 1, hash: pageHash(1, page(2)) },
        { pageNumber: 2, hash: pageHash(2, page(1)) },
      ],
      2,
    );
    expect(a.checksum).not.toBe(b.checksum);
  });
});
