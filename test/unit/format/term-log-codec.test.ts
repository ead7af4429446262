import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LitebaseError } from '../../../src/errors.js';
import { decodeSegment, encodeSegment } from '../../../src/format/segment-codec.js';
import { encodeRecordFrame, encodeTermLogHeader, termLogFileName } from '../../../src/format/term-log-codec.js';
import { inspectFile } from '../../../src/cli/inspect/inspect-file.js';
import { LogDirectory } from '../../../src/log/log-directory.js';
import { makePages, Prng } from '../../support/golden-segments.js';

/**
 * Term log files (docs/FORMAT.md §1.2): a golden file in fixtures/term-logs/ that the codec must
 * reproduce byte for byte, that a reader written from the document alone (below) must read as the
 * `.json` beside it says, and that LogDirectory and `litebase inspect` read the same way; then
 * damage: every truncation and random bit flips, after which a reader accepts exactly the complete
 * records before the damage and nothing else, and never fails with anything but TERM_LOG_CORRUPT.
 * Regenerate with `UPDATE_GOLDEN=1 npx vitest run test/unit/format/term-log-codec.test.ts`.
 */

const GOLDEN_DIR = path.join(import.meta.dirname, '../../../fixtures/term-logs');
const GOLDEN_NAME = termLogFileName(7n, 3n);
const DATABASE_ID = '6f1c0b52-3d4e-4a8b-9c2d-7e5f10a2b3c4';
const work = mkdtempSync(path.join(tmpdir(), 'litebase-tlog-codec-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Three records at positions 7..9 of term 3: one page, none (a commit that changed nothing), 300 pages. */
function goldenFile(): Buffer {
  const random = new Prng(0x7106);
  let checksum = 0x0123_4567_89ab_cdefn;
  const header = encodeTermLogHeader({
    databaseId: DATABASE_ID,
    term: 3n,
    firstPosition: 7n,
    preChecksum: checksum,
    createdAtMs: 1_767_225_600_000,
  });
  const parts: Buffer[] = [header];
  const pageCounts = [1, 0, 300];
  pageCounts.forEach((count, index) => {
    const preChecksum = checksum;
    checksum = (checksum * 6_364_136_223_846_793_005n + 1_442_695_040_888_963_407n) & ((1n << 64n) - 1n);
    const pages =
      count === 0
        ? []
        : makePages(
            random,
            Array.from({ length: count }, (_, page) => page + 1),
            512,
          );
    const segment = encodeSegment(
      {
        databaseId: DATABASE_ID,
        term: 3n,
        position: 7n + BigInt(index),
        commitTimeMs: 1_767_225_600_000 + index,
        pageSize: 512,
        databaseSizePages: 300,
        transactionCount: count === 0 ? 1 : 2,
        preChecksum,
        postChecksum: checksum,
      },
      pages,
    );
    parts.push(encodeRecordFrame(segment.length), segment);
  });
  return Buffer.concat(parts);
}

interface Golden {
  description: string;
  file: { name: string; bytes: number; sha256: string };
  header: { databaseId: string; term: string; firstPosition: string; preChecksum: string; createdAtMs: number };
  records: Array<{ offset: number; length: number; position: string; sha256: string }>;
}

/** A reader written from docs/FORMAT.md §1.2 alone, with no code of the project's. */
function readFromTheDocument(bytes: Buffer): Golden['header'] & { records: Golden['records'] } {
  const sha = (data: Buffer) => createHash('sha256').update(data).digest();
  expect(bytes.subarray(0, 4).toString('latin1')).toBe('LBTL');
  expect(bytes.readUInt16BE(4)).toBe(1);
  expect(bytes.readUInt16BE(6)).toBe(0);
  expect(sha(bytes.subarray(0, 56)).subarray(0, 8).equals(bytes.subarray(56, 64))).toBe(true);
  const hex = bytes.subarray(8, 24).toString('hex');
  const header = {
    databaseId: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
    term: bytes.readBigUInt64BE(24).toString(),
    firstPosition: bytes.readBigUInt64BE(32).toString(),
    preChecksum: bytes.readBigUInt64BE(40).toString(16).padStart(16, '0'),
    createdAtMs: Number(bytes.readBigUInt64BE(48)),
  };
  const records: Golden['records'] = [];
  let offset = 64;
  while (offset + 16 <= bytes.length) {
    if (bytes.subarray(offset, offset + 4).toString('latin1') !== 'LBRC') break;
    if (
      !sha(bytes.subarray(offset + 8, offset + 16))
        .subarray(0, 4)
        .equals(bytes.subarray(offset + 4, offset + 8))
    )
      break;
    const length = Number(bytes.readBigUInt64BE(offset + 8));
    if (offset + 16 + length > bytes.length) break;
    const segment = bytes.subarray(offset + 16, offset + 16 + length);
    records.push({ offset, length, position: segment.readBigUInt64BE(32).toString(), sha256: sha(segment).toString('hex') });
    offset += 16 + length;
  }
  return { ...header, records };
}

describe('the golden term log file', () => {
  it.runIf(process.env.UPDATE_GOLDEN === '1')('regenerates fixtures/term-logs (UPDATE_GOLDEN=1)', () => {
    const bytes = goldenFile();
    const { records, ...header } = readFromTheDocument(bytes);
    const golden: Golden = {
      description: 'positions 7..9 of term 3: one page, no page, 300 pages of 512 bytes (two chunks); docs/FORMAT.md §1.2',
      file: { name: GOLDEN_NAME, bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') },
      header,
      records,
    };
    mkdirSync(GOLDEN_DIR, { recursive: true });
    writeFileSync(path.join(GOLDEN_DIR, GOLDEN_NAME), bytes);
    writeFileSync(path.join(GOLDEN_DIR, 'golden.json'), `${JSON.stringify(golden, null, 2)}\n`);
  });

  it('is what the codec writes, byte for byte, and what a reader of the document reads', () => {
    const golden = JSON.parse(readFileSync(path.join(GOLDEN_DIR, 'golden.json'), 'utf8')) as Golden;
    const bytes = readFileSync(path.join(GOLDEN_DIR, GOLDEN_NAME));
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(golden.file.sha256);
    expect(goldenFile().equals(bytes)).toBe(true);
    const { records, ...header } = readFromTheDocument(bytes);
    expect(header).toEqual(golden.header);
    expect(records).toEqual(golden.records);
  });

  it('reads as the same segments through LogDirectory, and `litebase inspect` finds it valid', async () => {
    const golden = JSON.parse(readFileSync(path.join(GOLDEN_DIR, 'golden.json'), 'utf8')) as Golden;
    const dir = path.join(work, 'golden');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, GOLDEN_NAME), readFileSync(path.join(GOLDEN_DIR, GOLDEN_NAME)));
    const log = new LogDirectory(dir, { termsDir: path.join(work, 'no-terms') });
    expect(await log.positions()).toEqual([7n, 8n, 9n]);
    for (const record of golden.records) {
      const bytes = await log.read(BigInt(record.position));
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(record.sha256);
      expect(decodeSegment(bytes).header.position).toBe(BigInt(record.position));
    }
    const report = await inspectFile(path.join(dir, GOLDEN_NAME), { pages: false });
    expect(report).toMatchObject({ kind: 'term-log', valid: true, termLog: { term: '3', firstPosition: '7', tailBytes: 0 } });
    expect(report.termLog?.segments.map((segment) => segment.position)).toEqual(['7', '8', '9']);
  });
});

describe('a damaged term log file', () => {
  const golden = (): Golden => JSON.parse(readFileSync(path.join(GOLDEN_DIR, 'golden.json'), 'utf8')) as Golden;

  async function accepted(bytes: Buffer, name: string): Promise<bigint[] | LitebaseError> {
    const dir = path.join(work, name);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, GOLDEN_NAME), bytes);
    try {
      return await new LogDirectory(dir, { termsDir: path.join(work, 'no-terms') }).positions();
    } catch (error) {
      if (error instanceof LitebaseError) return error;
      throw error;
    }
  }

  it('cut anywhere holds exactly the records complete before the cut', async () => {
    const bytes = readFileSync(path.join(GOLDEN_DIR, GOLDEN_NAME));
    const { records } = golden();
    const cuts = new Set<number>([0, 1, 63, 64, 65, bytes.length - 1]);
    for (const record of records) for (const delta of [-1, 0, 1, 15, 16, 17]) cuts.add(record.offset + delta);
    const random = new Prng(42);
    for (let index = 0; index < 60; index++) cuts.add(Math.floor((random.u32() / 2 ** 32) * bytes.length));
    for (const cut of [...cuts].filter((at) => at >= 0 && at <= bytes.length)) {
      const expected = records.filter((record) => record.offset + 16 + record.length <= cut).map((record) => BigInt(record.position));
      expect(await accepted(bytes.subarray(0, cut), `cut-${cut}`), `cut at ${cut}`).toEqual(expected);
    }
  });

  it('with flipped bits is refused as TERM_LOG_CORRUPT (header), or read up to the damaged frame; a damaged segment is left to its verification', async () => {
    const bytes = readFileSync(path.join(GOLDEN_DIR, GOLDEN_NAME));
    const { records } = golden();
    const random = new Prng(7);
    for (let trial = 0; trial < 150; trial++) {
      const damaged = Buffer.from(bytes);
      const at = Math.floor((random.u32() / 2 ** 32) * damaged.length);
      damaged[at] = (damaged[at] as number) ^ (1 << Math.floor((random.u32() / 2 ** 32) * 8));
      const result = await accepted(damaged, `flip-${trial}`);
      if (at < 64) {
        expect(result, `flip at ${at}`).toBeInstanceOf(LitebaseError);
        expect((result as LitebaseError).code).toBe('TERM_LOG_CORRUPT');
        continue;
      }
      expect(Array.isArray(result), `flip at ${at}`).toBe(true);
      const frameHit = records.findIndex((record) => at >= record.offset && at < record.offset + 16);
      const expected =
        frameHit === -1
          ? records.map((record) => BigInt(record.position))
          : records.slice(0, frameHit).map((record) => BigInt(record.position));
      // A flip in a length may still leave a frame whose check matches by chance: never more records than before it.
      expect((result as bigint[]).length, `flip at ${at}`).toBeLessThanOrEqual(records.length);
      if (frameHit !== -1) expect(result, `flip at ${at}`).toEqual(expected);
      else {
        expect(result, `flip at ${at}`).toEqual(expected);
        // The damaged segment itself: its trailer check refuses it when it is read.
        const hit = records.find((record) => at >= record.offset + 16 && at < record.offset + 16 + record.length);
        if (hit) {
          const dir = path.join(work, `flip-${trial}`);
          const log = new LogDirectory(dir, { termsDir: path.join(work, 'no-terms') });
          await log.positions();
          expect(() =>
            decodeSegment(readFileSync(path.join(dir, GOLDEN_NAME)).subarray(hit.offset + 16, hit.offset + 16 + hit.length)),
          ).toThrow(LitebaseError);
        }
      }
    }
  });
});
