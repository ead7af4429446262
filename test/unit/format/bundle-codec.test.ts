import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BundleFormatError, openBundle, PageMajorBundle } from '../../../src/format/bundle-codec.js';
import { history, ID, writeBundle } from '../../support/bundle-history.js';

/**
 * Bundles of format 2 (page-major, docs/FORMAT.md §11.1) read back by the codec: every segment of a
 * random history (test/support/bundle-history.ts) must come back exactly as it was written, and
 * damage must be refused with the bundle's key named. Hostile bytes: bundle-codec.fuzz.test.ts.
 */
const work = mkdtempSync(path.join(tmpdir(), 'litebase-bundle-codec-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('bundles of format 2', () => {
  it('give back every segment exactly, and refuse damage with the key named', async () => {
    const segments = history(11, 300);
    const file = path.join(work, 'roundtrip.seg');
    await writeBundle(file, segments);
    const bytes = readFileSync(file);
    const bundle = openBundle(bytes, 'k/roundtrip', { first: 1n, last: 300n, databaseId: ID }) as PageMajorBundle;
    expect(bundle).toBeInstanceOf(PageMajorBundle);
    for (const [index, segment] of segments.entries()) {
      const header = bundle.headers[index];
      expect(header?.position).toBe(segment.position);
      expect(header?.postChecksum).toBe(segment.checksum);
      expect(header?.pageCount).toBe(segment.pages.length);
      const pages = bundle.segmentPages(index);
      expect(pages.map((page) => page.pageNumber)).toEqual(segment.pages.map((page) => page.pageNumber));
      pages.forEach((page, k) =>
        expect(page.data.equals(segment.pages[k]?.data as Buffer), `segment ${segment.position} page ${page.pageNumber}`).toBe(true),
      );
    }
    // Pages rewritten in every segment cost a delta each, not a page: far below the segments' size.
    expect(bytes.length).toBeLessThan(segments.reduce((sum, s) => sum + s.bytes.length, 0) / 2);
    // The header and tables are checked on open, the trailer too unless told not to; then each
    // payload as it is decoded.
    const dataStart = 64 + 48 * 300 + 20 * bytes.readUInt32BE(40) + 20 * bytes.readUInt32BE(44) + 12 * bytes.readUInt32BE(48);
    for (const offset of [10, 70, dataStart - 3]) {
      const damaged = Buffer.from(bytes);
      damaged[offset]! ^= 0x40;
      expect(() => openBundle(damaged, 'k/damaged', { first: 1n, last: 300n, whole: false })).toThrow(BundleFormatError);
      expect(() => openBundle(damaged, 'k/damaged', { first: 1n, last: 300n, whole: false })).toThrow(
        /k\/damaged: the header or tables are damaged|k\/damaged: not a format 2/,
      );
    }
    for (const offset of [dataStart + 30, Math.floor((dataStart + bytes.length) / 2), bytes.length - 20]) {
      const damaged = Buffer.from(bytes);
      damaged[offset]! ^= 0x40;
      expect(() => openBundle(damaged, 'k/whole', { first: 1n, last: 300n })).toThrow(/k\/whole: trailer checksum mismatch/);
      const opened = openBundle(damaged, 'k/data', { first: 1n, last: 300n, whole: false }) as PageMajorBundle;
      expect(() => {
        for (let index = 0; index < 300; index++) opened.segmentPages(index);
      }, `offset ${offset}`).toThrow(/k\/data: /);
    }
    expect(() => openBundle(bytes.subarray(0, bytes.length - 1), 'k/cut', { first: 1n, last: 300n })).toThrow(/k\/cut/);
    expect(() => openBundle(bytes, 'k/name', { first: 1n, last: 299n })).toThrow(/its name says 1..299/);
  });
});
