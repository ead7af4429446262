import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { run } from '../../../src/cli/main.js';
import type { InspectReport } from '../../../src/cli/inspect/report.js';
import { BundleWriter } from '../../../src/archive/bundle-writer.js';
import { writeLegacyCheckpointFromFile } from '../../../src/replay/checkpoints.js';
import { formatChecksum, pageHash, PageHashTable } from '../../../src/format/rolling-checksum.js';
import { encodeSegment, segmentChecksum, type PageImage } from '../../../src/format/segment-codec.js';
import { runCli } from '../../support/cli.js';
import { GOLDEN_DIR, Prng } from '../../support/golden-segments.js';

/**
 * `litebase inspect` over the golden segments of fixtures/segments/ and over checkpoints and
 * bundles made here by the real writers: valid files print what the writers put in them and exit
 * 0; each kind damaged in its header, in a page and by truncation exits 1 naming the check that
 * failed (and, after a failed trailer, where the damage is); unreadable files and unknown kinds
 * exit 2. Most cases run the command in-process (`run`); a few run the built binary.
 */

const ID = '6f1c0b52-3d4e-4a8b-9c2d-7e5f10a2b3c4';
const work = mkdtempSync(path.join(tmpdir(), 'litebase-inspect-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Outcome {
  code: number;
  out: string;
  err: string;
}

async function inspect(...args: string[]): Promise<Outcome> {
  let out = '';
  let err = '';
  const code = await run(['node', 'litebase', 'inspect', ...args], {
    out: (text) => void (out += `${text}\n`),
    err: (text) => void (err += `${text}\n`),
  });
  return { code, out, err };
}

async function inspectJson(...args: string[]): Promise<{ code: number; report: InspectReport; err: string }> {
  const { code, out, err } = await inspect('--json', ...args);
  return { code, report: JSON.parse(out) as InspectReport, err };
}

/** A copy of `file` in the work folder, changed by `damage`. */
function damaged(file: string, name: string, damage: (bytes: Buffer) => Buffer): string {
  const target = path.join(work, name);
  writeFileSync(target, damage(Buffer.from(readFileSync(file))));
  return target;
}

function flip(offset: number): (bytes: Buffer) => Buffer {
  return (bytes) => {
    bytes[offset] = (bytes[offset] ?? 0) ^ 0x10;
    return bytes;
  };
}

/** The file's bytes with a new trailer: damage a writer could have made, which the trailer does not catch. */
function resealed(change: (bytes: Buffer) => void): (bytes: Buffer) => Buffer {
  return (bytes) => {
    change(bytes);
    segmentChecksum(bytes.subarray(0, bytes.length - 8)).copy(bytes, bytes.length - 8);
    return bytes;
  };
}

interface GoldenCase {
  header: Record<string, unknown>;
  chunks: Array<{ offset: number; pagesInChunk: number; uncompressedLength: number; compressedLength: number }>;
  pages: Array<{ pageNumber: number }>;
}

const GOLDEN = ['empty', 'one-page-4096', 'two-chunks-300-pages', 'max-values-512', 'two-pages-65536'];
const golden = (name: string): string => path.join(GOLDEN_DIR, `${name}.seg`);

describe('segments', () => {
  it.each(GOLDEN)('golden %s: header, chunks and pages as the fixture says, exit 0', async (name) => {
    const expected = JSON.parse(readFileSync(path.join(GOLDEN_DIR, `${name}.json`), 'utf8')) as GoldenCase;
    const { code, report } = await inspectJson('--pages', golden(name));
    expect(code).toBe(0);
    expect(report).toMatchObject({ kind: 'segment', valid: true, bytes: readFileSync(golden(name)).length });
    expect(report.problem).toBeUndefined();
    const { commitTime: _time, ...header } = report.segment?.header ?? {};
    expect(header).toEqual(expected.header);
    expect(
      report.segment?.chunks.map(({ offset, pagesInChunk, uncompressedLength, compressedLength }) => ({
        offset,
        pagesInChunk,
        uncompressedLength,
        compressedLength,
      })),
    ).toEqual(expected.chunks);
    expect(report.segment?.pagesVerified).toBe(expected.pages.length);
    expect(report.segment?.pages?.map((page) => page.pageNumber)).toEqual(expected.pages.map((page) => page.pageNumber));
  });

  it('prints the header, chunks, trailer and, with --pages, every page hash', async () => {
    const { code, out } = await inspect('--pages', golden('one-page-4096'));
    expect(code).toBe(0);
    const bytes = readFileSync(golden('one-page-4096'));
    expect(out).toContain('post-checksum    83dd93cdeb2c22e3');
    expect(out).toContain(`trailer          ${bytes.subarray(-8).toString('hex')}`);
    expect(out).toMatch(/^ {2}chunk +offset +pages +first\.\.last +raw bytes +compressed\n {2}0 +96 +1 +1\.\.1 +4100 +219$/m);
    // One page of a one-page database from empty: its page hash is the post-checksum.
    expect(out).toMatch(/^ {2}page +chunk +page hash\n {2}1 +0 +83dd93cdeb2c22e3$/m);
    expect(out.trim().split('\n').at(-1)).toBe('valid segment');
  });

  const base = golden('two-chunks-300-pages');
  const secondChunk = 34741; // fixtures/segments/two-chunks-300-pages.json

  it('a flipped header byte: the trailer fails, and the second pass says the chunks are fine', async () => {
    const { code, report, err } = await inspectJson(damaged(base, 'header.seg', flip(25)));
    expect(code).toBe(1);
    expect(report.problem?.code).toBe('SEGMENT_CHECKSUM_MISMATCH');
    expect(report.located).toEqual({ note: expect.stringMatching(/pages sum to the post-checksum: the damage is in a header field/) });
    expect(report.segment?.header?.term).not.toBe('3'); // printed as found
    expect(err).toMatch(/^error SEGMENT_CHECKSUM_MISMATCH: .*header\.seg: trailer checksum mismatch/);
  });

  it('a flipped version: the second pass names the field', async () => {
    const { code, report } = await inspectJson(damaged(base, 'version.seg', flip(5)));
    expect(code).toBe(1);
    expect(report.problem?.code).toBe('SEGMENT_CHECKSUM_MISMATCH');
    expect(report.located).toMatchObject({ code: 'SEGMENT_UNSUPPORTED_VERSION' });
  });

  it('a flipped byte in a page: the trailer fails, and the pages no longer sum to the post-checksum', async () => {
    const { code, report } = await inspectJson(damaged(base, 'page.seg', flip(secondChunk + 12 + 3000)));
    expect(code).toBe(1);
    expect(report.problem?.code).toBe('SEGMENT_CHECKSUM_MISMATCH');
    expect(report.located).toSatisfy((located: InspectReport['located']) =>
      // An LZ4 byte either still decodes (to other page bytes) or breaks the block: both name it.
      'note' in (located ?? {})
        ? /pages sum to checksum [0-9a-f]{16}, the header says 68bac6269f695cdb/.test((located as { note: string }).note)
        : /chunk 1 at offset 34741/.test((located as { message: string }).message),
    );
  });

  it('truncated: the second pass names the chunk that runs past the end', async () => {
    const { code, report } = await inspectJson(damaged(base, 'cut.seg', (bytes) => bytes.subarray(0, secondChunk + 100)));
    expect(code).toBe(1);
    expect(report.problem?.code).toBe('SEGMENT_CHECKSUM_MISMATCH');
    expect(report.located).toMatchObject({
      code: 'SEGMENT_CORRUPT',
      message: expect.stringContaining(`chunk 1 at offset ${secondChunk}: compressed length`),
    });
    const short = await inspectJson(damaged(base, 'stub.seg', (bytes) => bytes.subarray(0, 50)));
    expect(short.code).toBe(1);
    expect(short.report.problem).toMatchObject({ code: 'SEGMENT_TRUNCATED', details: { expected: 104, found: 50 } });
  });

  it('damage under a valid trailer (a writer bug) fails the check it breaks, naming the chunk', async () => {
    const zeroPages = damaged(
      base,
      'zero-pages.seg',
      resealed((bytes) => bytes.writeUInt32BE(0, secondChunk)),
    );
    const { code, report } = await inspectJson(zeroPages);
    expect(code).toBe(1);
    expect(report.problem).toMatchObject({
      code: 'SEGMENT_CORRUPT',
      message: expect.stringContaining(`chunk 1 at offset ${secondChunk}: pages in chunk is 0, expected 1..256`),
    });
    expect(report.located).toBeUndefined();
  });

  it('a segment whose file name is another position', async () => {
    const file = path.join(work, '00000000000000000005.seg');
    copyFileSync(golden('one-page-4096'), file);
    const { code, report } = await inspectJson(file);
    expect(code).toBe(1);
    expect(report.problem).toMatchObject({
      code: 'LOG_FOREIGN_SEGMENT',
      message: expect.stringContaining('the header says position 1, the file name 5'),
    });
  });

  it('a damaged magic is no known kind (exit 2) unless --kind says what the file is (exit 1)', async () => {
    const file = damaged(base, 'magic.seg', flip(0));
    const unknown = await inspect(file);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(
      /^error INSPECT_UNKNOWN_KIND: .*magic\.seg: not a segment, checkpoint or bundle \(first bytes 5c42534700010000/,
    );
    const told = await inspectJson('--kind', 'segment', file);
    expect(told.code).toBe(1);
    expect(told.report.problem?.code).toBe('SEGMENT_BAD_MAGIC');
  });

  it('usage errors exit 2: a missing file, a folder, an unknown --kind', async () => {
    const missing = await inspect(path.join(work, 'no-such.seg'));
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/^error INSPECT_FILE_UNREADABLE: cannot read .*no-such\.seg: ENOENT/);
    expect((await inspect(work)).code).toBe(2);
    expect((await inspect('--kind', 'wal', base)).code).toBe(2);
    expect((await inspect()).code).toBe(2);
  });
});

describe('checkpoints', () => {
  const PAGE = 1024;
  const PAGES = 600; // three chunks: 256, 256, 88
  const prng = new Prng(42);
  const database = Buffer.alloc(PAGES * PAGE);
  for (let i = 0; i < database.length; i += 16) database[i] = prng.below(256);
  const hashes = Array.from({ length: PAGES }, (_, i) => pageHash(i + 1, database.subarray(i * PAGE, (i + 1) * PAGE)));
  const checksum = hashes.reduce((sum, hash) => sum ^ hash, 0n);
  const file = path.join(work, '00000000000000000042.ckpt');

  it('written by the compactor: every page checked, and they sum to the post-checksum', async () => {
    const sqlite = path.join(work, 'source.db');
    writeFileSync(sqlite, database);
    const source = {
      databaseId: ID,
      term: 2n,
      position: 42n,
      commitTimeMs: 1_767_225_600_000,
      pageSize: PAGE,
      databaseSizePages: PAGES,
      checksum,
    };
    await writeLegacyCheckpointFromFile(file, sqlite, source);
    const { code, report } = await inspectJson('--pages', file);
    expect(code).toBe(0);
    expect(report).toMatchObject({ kind: 'checkpoint', valid: true });
    const checkpoint = report.checkpoint;
    expect(checkpoint?.header).toMatchObject({
      position: '42',
      term: '2',
      pageCount: PAGES,
      databaseSizePages: PAGES,
      transactionCount: 0,
      preChecksum: '0000000000000000',
      postChecksum: formatChecksum(checksum),
    });
    expect(checkpoint?.checksum).toBe(formatChecksum(checksum));
    expect(checkpoint?.chunks.map((chunk) => [chunk.pagesInChunk, chunk.firstPage, chunk.lastPage])).toEqual([
      [256, 1, 256],
      [256, 257, 512],
      [88, 513, 600],
    ]);
    expect(checkpoint?.chunks[0]?.offset).toBe(96);
    expect(checkpoint?.pagesVerified).toBe(PAGES);
    expect(checkpoint?.pages?.map((page) => page.pageHash)).toEqual(hashes.map(formatChecksum));
    // Under another name it is told from a segment by its header (pre-checksum 0, every page, no transactions).
    const renamed = path.join(work, 'copy.bin');
    copyFileSync(file, renamed);
    expect((await inspectJson(renamed)).report.kind).toBe('checkpoint');
  });

  it('damaged in the header, in a page, or truncated: exit 1 with the check and where', async () => {
    const header = await inspectJson(damaged(file, 'h.ckpt', flip(30)));
    expect(header.code).toBe(1);
    expect(header.report.problem).toMatchObject({
      code: 'SEGMENT_CHECKSUM_MISMATCH',
      message: expect.stringContaining('h.ckpt: trailer checksum mismatch'),
    });
    expect(header.report.located).toEqual({
      note: expect.stringContaining('pages sum to the post-checksum: the damage is in a header field'),
    });

    const page = await inspectJson(damaged(file, 'p.ckpt', flip(96 + 12 + 500)));
    expect(page.code).toBe(1);
    expect(page.report.problem?.code).toBe('SEGMENT_CHECKSUM_MISMATCH');
    expect(page.report.located).toBeDefined();

    const cut = await inspectJson(damaged(file, 'c.ckpt', (bytes) => bytes.subarray(0, bytes.length - 1000)));
    expect(cut.code).toBe(1);
    expect(cut.report.problem?.code).toBe('SEGMENT_CHECKSUM_MISMATCH');
    expect(cut.report.located).toMatchObject({
      code: 'SEGMENT_CORRUPT',
      message: expect.stringMatching(/chunk 2 at offset \d+: compressed length/),
    });
  });

  it('a sealed file that breaks a checkpoint rule: a wrong post-checksum, a transaction count, a gap', async () => {
    const pages = (numbers: number[]): PageImage[] =>
      numbers.map((pageNumber) => ({ pageNumber, data: database.subarray((pageNumber - 1) * PAGE, pageNumber * PAGE) }));
    const header = {
      databaseId: ID,
      term: 1n,
      position: 7n,
      commitTimeMs: 1,
      pageSize: PAGE,
      databaseSizePages: 3,
      transactionCount: 0,
      preChecksum: 0n,
    };
    const sum = hashes[0]! ^ hashes[1]! ^ hashes[2]!;

    writeFileSync(path.join(work, 'wrong-sum.ckpt'), encodeSegment({ ...header, postChecksum: sum ^ 1n }, pages([1, 2, 3])));
    const wrongSum = await inspectJson(path.join(work, 'wrong-sum.ckpt'));
    expect(wrongSum.code).toBe(1);
    expect(wrongSum.report.problem).toMatchObject({
      code: 'CHECKPOINT_CHECKSUM_MISMATCH',
      message: expect.stringContaining(`its pages sum to checksum ${formatChecksum(sum)}`),
    });

    writeFileSync(path.join(work, 'txn.ckpt'), encodeSegment({ ...header, transactionCount: 1, postChecksum: sum }, pages([1, 2, 3])));
    expect((await inspectJson(path.join(work, 'txn.ckpt'))).report.problem).toMatchObject({
      code: 'CHECKPOINT_INVALID',
      message: expect.stringContaining('transaction count is 1'),
    });

    const gap = encodeSegment({ ...header, databaseSizePages: 4, postChecksum: sum }, pages([1, 2, 4]));
    gap.writeUInt32BE(3, 56); // page count 3 of a 4-page database passes the segment rules; resealed
    writeFileSync(path.join(work, 'gap.ckpt'), resealed(() => undefined)(gap));
    expect((await inspectJson(path.join(work, 'gap.ckpt'))).report.problem).toMatchObject({ code: 'CHECKPOINT_INVALID' });
  });
});

describe('bundles', () => {
  const PAGE = 1024;

  /** A chained history: page 1 rewritten by every segment (deep older-image chains), the database growing. */
  function history(count: number): Buffer[] {
    const prng = new Prng(7);
    const table = new PageHashTable(PAGE);
    const db: Buffer[] = [];
    const segments: Buffer[] = [];
    for (let position = 1; position <= count; position++) {
      const size = Math.min(db.length + prng.between(1, 6), 150);
      const written = new Set([1, prng.between(1, size), ...Array.from({ length: size - db.length }, (_, i) => db.length + i + 1)]);
      const pages = [...written]
        .sort((a, b) => a - b)
        .map((pageNumber) => {
          const data = Buffer.from(db[pageNumber - 1] ?? Buffer.alloc(PAGE, pageNumber % 251));
          for (let k = 0; k < 8; k++) data[prng.below(PAGE)] = prng.below(256);
          db[pageNumber - 1] = data;
          return { pageNumber, data };
        });
      const preChecksum = table.checksum;
      table.apply(
        pages.map(({ pageNumber, data }) => ({ pageNumber, hash: pageHash(pageNumber, data) })),
        size,
      );
      segments.push(
        encodeSegment(
          {
            databaseId: ID,
            term: 1n,
            position: BigInt(position),
            commitTimeMs: 1_767_225_600_000 + position,
            pageSize: PAGE,
            databaseSizePages: size,
            transactionCount: 1,
            preChecksum,
            postChecksum: table.checksum,
          },
          pages,
        ),
      );
    }
    return segments;
  }

  const segments = history(40);
  const images = segments.reduce((sum, segment) => sum + segment.readUInt32BE(56), 0);
  const file = path.join(work, '00000000000000000001-00000000000000000040.seg');

  async function writeBundle(target: string, parts: readonly Buffer[]): Promise<void> {
    const writer = await BundleWriter.create(target);
    for (const segment of parts) writer.append(segment);
    await writer.finish();
  }

  it('format 2, written by the compactor: tables, blocks and every image checked', async () => {
    await writeBundle(file, segments);
    const { code, report } = await inspectJson('--pages', file);
    expect(code).toBe(0);
    expect(report).toMatchObject({ kind: 'bundle', valid: true });
    const bundle = report.bundle;
    expect(bundle).toMatchObject({
      format: 2,
      databaseId: ID,
      firstPosition: '1',
      lastPosition: '40',
      pageSize: PAGE,
      imagesVerified: images,
    });
    expect(bundle?.segments.map((s) => s.position)).toEqual(segments.map((_, i) => String(i + 1)));
    expect(bundle?.segments[39]?.postChecksum).toBe(formatChecksum(segments[39]!.readBigUInt64BE(72)));
    expect(bundle?.tables).toMatchObject({ pages: 150, olderImages: images - 150, blocks: 3 }); // 64 pages of 1 KiB a block
    expect(bundle?.blocks?.map((b) => b.pages)).toEqual([64, 64, 22]);
    expect(bundle?.images).toHaveLength(images);
    // Page 1's images: its newest from segment 40, then every older one down to segment 1.
    expect(bundle?.images?.filter((image) => image.pageNumber === 1).map((image) => image.position)).toEqual(
      segments.map((_, i) => String(40 - i)),
    );
    const text = await inspect(file);
    expect(text.out).toContain('positions        1..40 (40 segments)');
    expect(text.out.trim().split('\n').at(-1)).toBe('valid bundle');
  });

  it('damaged in a block, an older image, the tables, or truncated: exit 1, and the piece that is damaged', async () => {
    const report = (await inspectJson(file)).report;
    const block1 = report.bundle?.blocks?.[1];
    const block = await inspectJson(damaged(file, 'block.seg', flip((block1?.offset ?? 0) + 20)));
    expect(block.code).toBe(1);
    expect(block.report.problem).toMatchObject({ code: 'ARCHIVE_CORRUPT', message: expect.stringContaining('trailer checksum mismatch') });
    expect(block.report.located).toMatchObject({
      code: 'ARCHIVE_CORRUPT',
      message: expect.stringContaining(`block 1 at offset ${block1?.offset} has CRC-32`),
    });

    const older = await inspectJson(damaged(file, 'older.seg', flip((report.bundle?.tables?.historyStart ?? 0) + 6)));
    expect(older.code).toBe(1);
    expect(older.report.located).toMatchObject({ message: expect.stringMatching(/older image 0 of page 1 at offset \d+ has CRC-32/) });

    const tables = await inspectJson(damaged(file, 'tables.seg', flip(64 + 48 * 3 + 2)));
    expect(tables.code).toBe(1);
    expect(tables.report.located).toMatchObject({
      message: expect.stringContaining('the header or tables are damaged (tables checksum mismatch)'),
    });

    const cut = await inspectJson(damaged(file, 'cut-bundle.seg', (bytes) => bytes.subarray(0, bytes.length - 500)));
    expect(cut.code).toBe(1);
    expect(cut.report.problem?.code).toBe('ARCHIVE_CORRUPT');
    expect(cut.report.located).toMatchObject({ message: expect.stringContaining('the tables account for') });
  });

  it('a bundle whose segments do not chain, or whose name says other positions', async () => {
    const broken = [...segments.slice(0, 5)];
    const sixth = Buffer.from(segments[5]!);
    sixth.writeBigUInt64BE(sixth.readBigUInt64BE(64) ^ 1n, 64); // another pre-checksum, resealed
    broken.push(resealed(() => undefined)(sixth));
    const chainFile = path.join(work, 'chain.seg');
    await writeBundle(chainFile, broken);
    const chain = await inspectJson(chainFile);
    expect(chain.code).toBe(1);
    expect(chain.report.problem).toMatchObject({
      code: 'ARCHIVE_CORRUPT',
      message: expect.stringContaining('the checksum chain is broken: position 6 starts from checksum'),
    });

    const misnamed = path.join(work, '00000000000000000002-00000000000000000041.seg');
    copyFileSync(file, misnamed);
    expect((await inspectJson(misnamed)).report.problem).toMatchObject({
      code: 'ARCHIVE_CORRUPT',
      message: expect.stringContaining('holds positions 1..40, its name says 2..41'),
    });
  });

  it('format 1 (records of whole segments): each segment verified; a damaged record named by its offset', async () => {
    const records = segments.slice(0, 10).flatMap((segment) => {
      const length = Buffer.alloc(4);
      length.writeUInt32BE(segment.length);
      return [length, segment];
    });
    const legacy = path.join(work, 'legacy.seg');
    writeFileSync(legacy, Buffer.concat(records));
    const { code, report } = await inspectJson('--pages', legacy);
    expect(code).toBe(0);
    const expectedImages = segments.slice(0, 10).reduce((sum, segment) => sum + segment.readUInt32BE(56), 0);
    expect(report.bundle).toMatchObject({ format: 1, firstPosition: '1', lastPosition: '10', imagesVerified: expectedImages });
    expect(report.bundle?.segments[1]).toMatchObject({ position: '2', offset: 4 + segments[0]!.length, bytes: segments[1]!.length });
    expect(report.bundle?.images).toHaveLength(expectedImages);

    const secondRecord = 4 + segments[0]!.length;
    const bad = await inspectJson(damaged(legacy, 'legacy-bad.seg', flip(secondRecord + 4 + 200)));
    expect(bad.code).toBe(1);
    expect(bad.report.problem).toMatchObject({
      code: 'SEGMENT_CHECKSUM_MISMATCH',
      message: expect.stringContaining(`(record at offset ${secondRecord}): trailer checksum mismatch`),
    });
    const cut = await inspectJson(damaged(legacy, 'legacy-cut.seg', (bytes) => bytes.subarray(0, bytes.length - 10)));
    expect(cut.code).toBe(1);
    expect(cut.report.problem).toMatchObject({ code: 'ARCHIVE_CORRUPT', message: expect.stringContaining('declares') });
  });
});

describe('the litebase binary', () => {
  it('exits 0 on a valid file, 1 with the reason on a damaged one, 2 on a missing one', async () => {
    const valid = await runCli(['inspect', golden('two-chunks-300-pages')]);
    expect(valid.code).toBe(0);
    expect(valid.stdout).toContain('position         2');
    expect(valid.stdout.trim().split('\n').at(-1)).toBe('valid segment');

    const bad = damaged(golden('two-chunks-300-pages'), 'binary-damaged.seg', flip(5));
    const invalid = await runCli(['inspect', '--json', bad]);
    expect(invalid.code).toBe(1);
    expect(JSON.parse(invalid.stdout)).toMatchObject({
      valid: false,
      problem: { code: 'SEGMENT_CHECKSUM_MISMATCH' },
      located: { code: 'SEGMENT_UNSUPPORTED_VERSION' },
    });
    expect(invalid.stderr).toMatch(
      /^error SEGMENT_CHECKSUM_MISMATCH: .*trailer checksum mismatch.*\n {2}checked piece by piece: SEGMENT_UNSUPPORTED_VERSION/,
    );

    const missing = await runCli(['inspect', path.join(work, 'missing.ckpt')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('error INSPECT_FILE_UNREADABLE');
  });
});
