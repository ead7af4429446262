import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { compressSync } from 'lz4-napi';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpointIntoFile } from '../../../src/replay/checkpoints.js';
import { LitebaseError } from '../../../src/errors.js';
import { pageHash } from '../../../src/format/rolling-checksum.js';
import {
  encodeSegment,
  SEGMENT_HEADER_SIZE,
  SEGMENT_TRAILER_SIZE,
  segmentChecksum,
  SegmentFormatError,
  type PageImage,
  type SegmentHeaderInput,
} from '../../../src/format/segment-codec.js';
import { differentU32, newTally, report, type Tally } from '../../support/fuzz-tally.js';
import { listChunks, makePages, Prng } from '../../support/golden-segments.js';

/**
 * Hostile bytes for the checkpoint decoder (loadCheckpointIntoFile over the streaming segment
 * reader, docs/FORMAT.md §6 and §8; issue 6, item 5). Every input derived from
 * a valid checkpoint must end in a typed format error (SegmentFormatError or a CHECKPOINT_* code),
 * or, when the damage left nothing a checkpoint is judged by, load exactly the original pages.
 * Never another error type, never seconds of work, never a file or a table sized by a lying field.
 * The inputs that recompute the trailer matter most: they get past the SHA-256 and reach the
 * structural checks.
 */

const work = mkdtempSync(path.join(tmpdir(), 'litebase-checkpoint-fuzz-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const DATABASE_ID = '6f1c0b52-3d4e-4a5b-8c9d-0e1f2a3b4c5d';
/** Damage the trailer was not recomputed for can only be seen as one of these. */
const DAMAGE = ['SEGMENT_TRUNCATED', 'SEGMENT_BAD_MAGIC', 'SEGMENT_CHECKSUM_MISMATCH'] as const;
const CHECKPOINT_CODES = ['CHECKPOINT_INVALID', 'CHECKPOINT_FOREIGN', 'CHECKPOINT_CHECKSUM_MISMATCH'];
/** Per input: a checkpoint of a few hundred pages loads in milliseconds. */
const MAX_MS_PER_INPUT = 1500;

interface Base {
  name: string;
  bytes: Buffer;
  header: SegmentHeaderInput;
  pages: PageImage[];
  /** The SQLite file a correct load produces. */
  image: Buffer;
}

function checkpoint(name: string, pageSize: number, pageCount: number, seed: number): Base {
  const pages = makePages(
    new Prng(seed),
    Array.from({ length: pageCount }, (_, i) => i + 1),
    pageSize,
  );
  let checksum = 0n;
  for (const page of pages) checksum ^= pageHash(page.pageNumber, page.data);
  const header: SegmentHeaderInput = {
    databaseId: DATABASE_ID,
    term: 3n,
    position: 120n,
    commitTimeMs: 1_795_000_000_000,
    pageSize,
    databaseSizePages: pageCount,
    transactionCount: 0,
    preChecksum: 0n,
    postChecksum: checksum,
  };
  return { name, bytes: encodeSegment(header, pages), header, pages, image: Buffer.concat(pages.map((page) => page.data)) };
}

const small = checkpoint('small', 512, 3, 1);
const empty = checkpoint('empty', 512, 0, 2);
const twoChunks = checkpoint('two-chunks', 512, 300, 3);
const bigPages = checkpoint('big-pages', 65536, 3, 4);
const bases = [small, empty, twoChunks, bigPages];

const withoutTrailer = (bytes: Buffer): Buffer => Buffer.from(bytes.subarray(0, bytes.length - SEGMENT_TRAILER_SIZE));
const reseal = (content: Buffer): Buffer => Buffer.concat([content, segmentChecksum(content)]);

let fileCount = 0;

/**
 * Load `bytes` as a checkpoint and record a failure unless the outcome is allowed: an error whose
 * code is in `allowed`, or (when `mayLoad`, or when the bytes are the original's) exactly the
 * original pages. Either way the output file must not have grown past what the input can hold.
 */
async function check(
  tally: Tally,
  label: string,
  original: Base,
  bytes: Buffer,
  allowed: readonly string[],
  mayLoad = false,
): Promise<void> {
  tally.inputs++;
  const file = path.join(work, `in-${++fileCount}.ckpt`);
  const out = path.join(work, `out-${fileCount}.sqlite`);
  writeFileSync(file, bytes);
  const started = performance.now();
  let loaded = false;
  try {
    const result = await loadCheckpointIntoFile(file, out, { databaseId: DATABASE_ID });
    loaded = true;
    if (!mayLoad && !bytes.equals(original.bytes)) tally.failures.push(`${label}: loaded although the bytes differ from ${original.name}`);
    else if (!readFileSync(out).equals(original.image)) tally.failures.push(`${label}: loaded different pages`);
    else if (result.hashes.checksum !== original.header.postChecksum) tally.failures.push(`${label}: loaded to another checksum`);
    tally.byCode.set('loaded', (tally.byCode.get('loaded') ?? 0) + 1);
  } catch (error) {
    const code =
      error instanceof SegmentFormatError || (error instanceof LitebaseError && CHECKPOINT_CODES.includes(error.code))
        ? error.code
        : undefined;
    if (code === undefined) {
      tally.failures.push(
        `${label}: threw ${error instanceof Error ? `${error.constructor.name} ${(error as { code?: string }).code ?? ''}: ${error.message}` : String(error)}`,
      );
    } else if (!allowed.includes(code)) {
      tally.failures.push(`${label}: code ${code} not in ${allowed.join('|')}: ${(error as Error).message}`);
    } else if ((error as Error).message.length < 10) {
      tally.failures.push(`${label}: uninformative message`);
    } else {
      tally.byCode.set(code, (tally.byCode.get(code) ?? 0) + 1);
    }
  }
  const elapsed = performance.now() - started;
  tally.slowest = Math.max(tally.slowest, elapsed);
  if (elapsed > MAX_MS_PER_INPUT) tally.failures.push(`${label}: took ${elapsed.toFixed(0)} ms`);
  // A lying page number or database size must not make a huge (sparse) file before it is caught.
  let outSize = 0;
  try {
    outSize = statSync(out).size;
  } catch {
    // never opened: the header was refused first
  }
  const bound = Math.max(original.image.length, 1) * 4 + 2 * 65536 * 256;
  if (outSize > bound) tally.failures.push(`${label}: wrote a ${outSize}-byte file (bound ${bound})${loaded ? '' : ' before refusing'}`);
  rmSync(file, { force: true });
  rmSync(out, { force: true });
}

/** A checkpoint file from parts the caller controls: header fields, and chunks of any pages. */
function assemble(
  header: SegmentHeaderInput & { pageCount: number },
  chunks: ReadonlyArray<ReadonlyArray<{ pageNumber: number; data: Buffer }>>,
): Buffer {
  const { pageCount, ...input } = header;
  const head = Buffer.from(
    encodeSegment({ ...input, databaseSizePages: Math.max(input.databaseSizePages, 0) }, []).subarray(0, SEGMENT_HEADER_SIZE),
  );
  head.writeUInt32BE(pageCount, 56);
  const parts: Buffer[] = [head];
  for (const pages of chunks) {
    const raw = Buffer.alloc(pages.length * (4 + header.pageSize));
    pages.forEach(({ pageNumber, data }, i) => {
      raw.writeUInt32BE(pageNumber, i * (4 + header.pageSize));
      data.copy(raw, i * (4 + header.pageSize) + 4);
    });
    const compressed = compressSync(raw);
    const chunkHeader = Buffer.alloc(12);
    chunkHeader.writeUInt32BE(pages.length, 0);
    chunkHeader.writeUInt32BE(raw.length, 4);
    chunkHeader.writeUInt32BE(compressed.length, 8);
    parts.push(chunkHeader, compressed);
  }
  return reseal(Buffer.concat(parts));
}

function chunked<T>(items: readonly T[], size = 256): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

describe('checkpoint decoder fuzz', () => {
  const totals = { inputs: 0 };
  const run = async (fill: (tally: Tally) => Promise<void>): Promise<Tally> => {
    const tally = newTally();
    await fill(tally);
    totals.inputs += tally.inputs;
    report(tally);
    return tally;
  };

  it('loads every base checkpoint exactly', async () => {
    await run(async (tally) => {
      for (const base of bases) await check(tally, `${base.name} as is`, base, base.bytes, []);
    });
  });

  it('rejects every truncation of small checkpoints and sampled truncations of larger ones', async () => {
    const prng = new Prng(11);
    await run(async (tally) => {
      for (const original of [small, empty]) {
        for (let length = 0; length < original.bytes.length; length++) {
          await check(tally, `${original.name} cut to ${length}`, original, original.bytes.subarray(0, length), DAMAGE);
        }
      }
      for (let i = 0; i < 200; i++) {
        const original = prng.pick([twoChunks, bigPages]);
        const length = prng.below(original.bytes.length);
        await check(tally, `${original.name} cut to ${length}`, original, original.bytes.subarray(0, length), DAMAGE);
      }
    });
  }, 60_000);

  it('rejects bit flips and random bytes whose trailer was not recomputed', async () => {
    const prng = new Prng(22);
    await run(async (tally) => {
      for (let i = 0; i < 600; i++) {
        const original = prng.pick(bases);
        const bytes = Buffer.from(original.bytes);
        const flips = i < 300 ? 1 : prng.between(2, 16);
        for (let f = 0; f < flips; f++) bytes[prng.below(bytes.length)]! ^= 1 << prng.below(8);
        await check(tally, `${original.name} #${i} with ${flips} flips`, original, bytes, DAMAGE);
      }
      for (let i = 0; i < 300; i++) {
        const garbage = prng.bytes(prng.chance(0.3) ? prng.below(120) : prng.below(5000));
        if (i % 2 === 0 && garbage.length >= 4) garbage.write('LBSG', 0, 'ascii');
        await check(tally, `garbage #${i} (${garbage.length} bytes)`, small, garbage, DAMAGE);
      }
    });
  }, 60_000);

  it('rejects header fields a checkpoint cannot have, under a recomputed trailer', async () => {
    const prng = new Prng(33);
    await run(async (tally) => {
      for (let i = 0; i < 600; i++) {
        const original = prng.pick(bases);
        const content = withoutTrailer(original.bytes);
        const edit = prng.below(12);
        let label: string;
        let allowed: readonly string[] = ['SEGMENT_CORRUPT'];
        let mayLoad = false;
        switch (edit) {
          case 0:
            content.writeBigUInt64BE(prng.u64() | 1n, 64);
            label = 'pre-checksum';
            allowed = ['CHECKPOINT_INVALID'];
            break;
          case 1:
            content.writeUInt32BE(prng.between(1, 0xffff_ffff), 60);
            label = 'transaction count';
            allowed = ['CHECKPOINT_INVALID'];
            break;
          case 2:
            content.writeUInt32BE(differentU32(prng, original.pages.length), 56);
            label = 'page count';
            allowed = ['SEGMENT_CORRUPT', 'CHECKPOINT_INVALID'];
            break;
          case 3:
            content.writeUInt32BE(differentU32(prng, original.header.databaseSizePages), 52);
            label = 'database size';
            allowed = ['SEGMENT_CORRUPT', 'CHECKPOINT_INVALID'];
            break;
          case 4: {
            // Both, consistently: a checkpoint of a bigger or smaller database than its body holds.
            const size = differentU32(prng, original.header.databaseSizePages);
            content.writeUInt32BE(size, 52);
            content.writeUInt32BE(size, 56);
            label = `database size and page count ${size}`;
            break;
          }
          case 5:
            content[8 + prng.below(16)]! ^= 1 + prng.below(255);
            label = 'database id';
            allowed = ['CHECKPOINT_FOREIGN'];
            break;
          case 6:
            content.writeBigUInt64BE(original.header.postChecksum ^ (prng.u64() | 1n), 72);
            label = 'post-checksum';
            allowed = ['CHECKPOINT_CHECKSUM_MISMATCH'];
            break;
          case 7:
            content.writeUInt32BE(differentU32(prng, original.header.pageSize), 48);
            label = 'page size';
            break;
          case 8:
            content.writeUInt16BE(prng.between(2, 0xffff), 4);
            label = 'format version';
            allowed = ['SEGMENT_UNSUPPORTED_VERSION'];
            break;
          case 9:
            if (prng.chance(0.5)) content.writeUInt16BE(prng.between(1, 0xffff), 6);
            else content[80 + prng.below(16)] = prng.between(1, 255);
            label = 'flags or reserved';
            break;
          case 10:
            content.writeBigUInt64BE(BigInt(Number.MAX_SAFE_INTEGER) + 1n + BigInt(prng.u32()), 40);
            label = 'commit time beyond 2^53';
            break;
          default:
            // Term and position are not the checkpoint's to judge (its file name is): it loads.
            content.writeBigUInt64BE(prng.u64(), prng.pick([24, 32]));
            label = 'term or position';
            allowed = [];
            mayLoad = true;
        }
        await check(tally, `${original.name} ${label} #${i}`, original, reseal(content), allowed, mayLoad);
      }
    });
  }, 60_000);

  it('rejects chunks with lying lengths under a recomputed trailer', async () => {
    const prng = new Prng(44);
    await run(async (tally) => {
      for (let i = 0; i < 600; i++) {
        const original = prng.pick([small, twoChunks, bigPages]);
        const content = withoutTrailer(original.bytes);
        const target = prng.pick(listChunks(original.bytes));
        const field = prng.pick(['pagesInChunk', 'uncompressedLength', 'compressedLength', 'lz4Prefix'] as const);
        const at = target.offset + { pagesInChunk: 0, uncompressedLength: 4, compressedLength: 8, lz4Prefix: 12 }[field];
        const truth = field === 'lz4Prefix' ? content.readUInt32LE(at) : content.readUInt32BE(at);
        const lie = differentU32(prng, truth);
        if (field === 'lz4Prefix') content.writeUInt32LE(lie, at);
        else content.writeUInt32BE(lie, at);
        await check(tally, `${original.name} chunk@${target.offset} ${field} ${truth}->${lie} #${i}`, original, reseal(content), [
          'SEGMENT_CORRUPT',
        ]);
      }
    });
  }, 60_000);

  it('rejects well-formed chunks whose pages lie (order, gaps, huge numbers, content), recompressed and resealed', async () => {
    const prng = new Prng(55);
    await run(async (tally) => {
      for (let i = 0; i < 500; i++) {
        const original = prng.pick([small, twoChunks, bigPages]);
        const pages = original.pages.map((page) => ({ pageNumber: page.pageNumber, data: Buffer.from(page.data) }));
        const header = { ...original.header, pageCount: pages.length };
        let chunks = chunked(pages);
        let label: string;
        let allowed: readonly string[] = ['SEGMENT_CORRUPT'];
        switch (prng.below(9)) {
          case 0: {
            const a = prng.below(pages.length);
            const b = (a + 1 + prng.below(pages.length - 1)) % pages.length;
            [pages[a]!.pageNumber, pages[b]!.pageNumber] = [pages[b]!.pageNumber, pages[a]!.pageNumber];
            label = `pages ${a} and ${b} swapped`;
            break;
          }
          case 1: {
            const at = prng.between(1, pages.length - 1);
            pages[at]!.pageNumber = pages[at - 1]!.pageNumber;
            label = `page ${at} repeated`;
            break;
          }
          case 2:
            pages[prng.below(pages.length)]!.pageNumber = prng.chance(0.5)
              ? 0
              : original.header.databaseSizePages + 1 + prng.below(1 << 20);
            label = 'page number 0 or past the end';
            break;
          case 3: {
            // Ascending and within a database the header says is huge: only the first page is missing.
            const size = prng.pick([1 << 16, 1 << 20, 1 << 24, 0xffff_ffff]);
            const shifted = pages.map((page, index) => ({ pageNumber: size - pages.length + 1 + index, data: page.data }));
            chunks = chunked(shifted);
            header.databaseSizePages = size;
            header.pageCount = size;
            label = `pages ${size - pages.length + 1}..${size} of a ${size}-page database`;
            allowed = ['SEGMENT_CORRUPT', 'CHECKPOINT_INVALID'];
            break;
          }
          case 4: {
            // A gap in the middle of a database exactly as large as the pages present claim.
            const at = prng.below(pages.length);
            for (let j = at; j < pages.length; j++) pages[j]!.pageNumber += prng.between(1, 5000);
            header.databaseSizePages = pages.at(-1)!.pageNumber;
            header.pageCount = header.databaseSizePages;
            label = `gap before page index ${at}`;
            allowed = ['SEGMENT_CORRUPT', 'CHECKPOINT_INVALID'];
            break;
          }
          case 5: {
            const page = pages[prng.below(pages.length)]!;
            page.data[prng.below(page.data.length)]! ^= 1 << prng.below(8);
            label = 'page content changed';
            allowed = ['CHECKPOINT_CHECKSUM_MISMATCH'];
            break;
          }
          case 6:
            chunks = pages.length > 1 ? [pages.slice(0, 1), ...chunked(pages.slice(1))] : [pages, []];
            label = 'short chunk first';
            break;
          case 7:
            chunks = [...chunks, [{ pageNumber: header.databaseSizePages + 1, data: Buffer.alloc(header.pageSize) }]];
            label = 'extra chunk';
            break;
          default:
            chunks =
              pages.length > 1 ? [pages.slice(0, Math.ceil(pages.length / 2)), pages.slice(Math.ceil(pages.length / 2))] : [[], pages];
            label = 'pages split unevenly';
        }
        await check(tally, `${original.name} ${label} #${i}`, original, assemble(header, chunks), allowed);
      }
    });
  }, 60_000);

  it('rejects a valid header over a garbage or random-LZ4 body, resealed', async () => {
    const prng = new Prng(66);
    await run(async (tally) => {
      for (let i = 0; i < 400; i++) {
        const original = prng.pick([small, twoChunks, bigPages]);
        const head = original.bytes.subarray(0, SEGMENT_HEADER_SIZE);
        let body: Buffer;
        if (i % 2 === 0) {
          body = prng.bytes(prng.below(3000));
        } else {
          const pages = Math.min(original.pages.length, prng.between(1, 256));
          const uncompressed = pages * (4 + original.header.pageSize);
          const payload = prng.bytes(4 + prng.below(800));
          payload.writeUInt32LE(uncompressed, 0);
          const chunkHeader = Buffer.alloc(12);
          chunkHeader.writeUInt32BE(pages, 0);
          chunkHeader.writeUInt32BE(uncompressed, 4);
          chunkHeader.writeUInt32BE(payload.length, 8);
          body = Buffer.concat([chunkHeader, payload]);
        }
        await check(tally, `${original.name} garbage body #${i}`, original, reseal(Buffer.concat([head, body])), ['SEGMENT_CORRUPT']);
      }
    });
  }, 60_000);

  it('ran at least 3,000 inputs', () => {
    expect(totals.inputs).toBeGreaterThanOrEqual(3000);
  });
});
