import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { Compactor } from '../../../src/compactor/compactor.js';
import { PageMajorBundle, openBundle } from '../../../src/format/bundle-codec.js';
import { pageHash, PageHashTable } from '../../../src/format/rolling-checksum.js';
import { encodeSegment, type PageImage } from '../../../src/format/segment-codec.js';
import { LogDirectory } from '../../../src/log/log-directory.js';
import { LARGE_SEGMENT_BYTES } from '../../../src/log/segment-runs.js';
import { LocalLayout, SharedLayout } from '../../../src/storage/layout.js';
import { openObjectStore } from '../../../src/storage/open-object-store.js';
import { tempDir } from '../../support/server.js';

/**
 * Archiving a segment larger than LARGE_SEGMENT_BYTES (src/compactor/compactor.ts): it is copied
 * into its bundle chunk by chunk from its streaming reader, never read whole, and the bundle holds
 * exactly its pages; while its trailer does not match, archiving stops before it (logged) and the
 * segments before it are archived, and the next run, once it is whole again, goes on from it.
 */
const work = tempDir('litebase-archive-large-');
afterAll(() => rmSync(work, { recursive: true, force: true }));

const DATABASE_ID = '0b7d2f8e-51c4-4d3a-9e6f-2a1b3c4d5e6f';
const PAGE_SIZE = 4096;

/** A log of segments of the given page counts, each writing pages 1..count with random bytes. */
function writeLog(log: LogDirectory, counts: readonly number[]): Array<{ bytes: Buffer; pages: PageImage[] }> {
  const hashes = new PageHashTable(PAGE_SIZE);
  let size = 0;
  return counts.map((count, i) => {
    const pages = Array.from({ length: count }, (_, k) => ({ pageNumber: k + 1, data: randomBytes(PAGE_SIZE) }));
    const pre = hashes.checksum;
    size = Math.max(size, count);
    hashes.apply(
      pages.map(({ pageNumber, data }) => ({ pageNumber, hash: pageHash(pageNumber, data) })),
      size,
    );
    const position = BigInt(i + 1);
    const bytes = encodeSegment(
      {
        databaseId: DATABASE_ID,
        term: 1n,
        position,
        commitTimeMs: Date.now(),
        pageSize: PAGE_SIZE,
        databaseSizePages: size,
        transactionCount: 1,
        preChecksum: pre,
        postChecksum: hashes.checksum,
      },
      pages,
    );
    writeFileSync(log.segmentPath(position), bytes);
    return { bytes, pages };
  });
}

describe('archiving a large segment', () => {
  it('streams it into its bundle, and stops before it while it is damaged', async () => {
    const shared = new SharedLayout(path.join(work, 'shared'));
    const local = new LocalLayout(path.join(work, 'local'));
    const storeDir = path.join(work, 'store');
    mkdirSync(storeDir, { recursive: true });
    mkdirSync(shared.logDir('app'), { recursive: true });
    const log = new LogDirectory(shared.logDir('app'));
    const largePages = Math.ceil((LARGE_SEGMENT_BYTES * 1.1) / PAGE_SIZE);
    const segments = writeLog(log, [3, largePages, 2]);
    const large = segments[1] as { bytes: Buffer; pages: PageImage[] };
    expect(large.bytes.length).toBeGreaterThan(LARGE_SEGMENT_BYTES);

    const lines: string[] = [];
    const logger = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          lines.push(chunk.toString());
          callback();
        },
      }),
    );
    const store = openObjectStore(pathToFileURL(storeDir).href);
    const compactor = new Compactor({
      meta: { name: 'app', id: DATABASE_ID, createdAt: new Date().toISOString(), pageSize: PAGE_SIZE },
      shared,
      local,
      store,
      settings: { logBytes: 0, logSegments: 0, archiveIntervalMs: 0, bundleBytes: 65536, retentionMs: 7 * 24 * 3_600_000 },
      logger,
      canWrite: () => true,
    });
    try {
      // 1. A byte of its body flipped: its trailer no longer matches, and archiving stops before it.
      const damaged = Buffer.from(large.bytes);
      damaged[Math.floor(damaged.length / 2)]! ^= 0x40;
      writeFileSync(log.segmentPath(2n), damaged);
      const first = await compactor.compact('interval', false);
      expect(first.archived).toMatchObject({ first: '1', last: '1', segments: 1 });
      const stopped = lines.filter((line) => line.includes('archiving stops before it'));
      expect(stopped).toHaveLength(1);
      expect(stopped[0]).toContain('SEGMENT_CHECKSUM_MISMATCH');
      expect(stopped[0]).toContain(log.segmentPath(2n));

      // 2. Whole again: the next run archives it (a bundle of its own, past the bundle size) and the rest.
      writeFileSync(log.segmentPath(2n), large.bytes);
      const second = await compactor.compact('interval', false);
      expect(second.archived).toMatchObject({ first: '2', last: '3', segments: 2 });
      expect(lines.filter((line) => line.includes('archiving stops before it'))).toHaveLength(1);
      const key = second.archived?.objects[0] as string;
      expect(key).toMatch(/\/segments\/0+2-0+2\.seg$/);
      const bundle = openBundle(readFileSync(path.join(storeDir, key)), key, { first: 2n, last: 2n, databaseId: DATABASE_ID });
      expect(bundle).toBeInstanceOf(PageMajorBundle);
      const bundled = (bundle as PageMajorBundle).segmentPages(0);
      expect(bundled.length).toBe(large.pages.length);
      for (const [i, page] of bundled.entries()) {
        const original = large.pages[i] as PageImage;
        expect(page.pageNumber).toBe(original.pageNumber);
        if (!page.data.equals(original.data)) expect.fail(`page ${page.pageNumber} differs in the bundle`);
      }
    } finally {
      await compactor.stop();
      await store.close();
    }
  }, 120_000);
});
