import { compressSync } from 'lz4-napi';
import { describe, expect, it } from 'vitest';
import {
  decodeSegment,
  encodeSegment,
  SEGMENT_HEADER_SIZE,
  SEGMENT_TRAILER_SIZE,
  segmentChecksum,
  SegmentFormatError,
  type PageImage,
  type SegmentFormatErrorCode,
  type SegmentHeader,
  type SegmentHeaderInput,
} from '../../../src/format/segment-codec.js';
import { listChunks, makePages, Prng } from '../../support/golden-segments.js';

/**
 * Mutation fuzzing of decodeSegment (docs/ARCHITECTURE.md §2.4: corruption is detected, never applied).
 * Every input is derived from a valid segment. The decoder must either reject it with a
 * SegmentFormatError whose code is allowed for that kind of damage, or, only when the mutation
 * happened to leave the bytes unchanged, decode exactly what the original decodes to. A crash, a
 * different error type, an internal-error rejection, or a different successful decode all fail.
 *
 * The inputs that recompute the trailer are the important ones: they get past the SHA-256 check
 * and so exercise the structural rules and the LZ4 error wrapping on hostile data.
 */

/** A damaged file whose trailer was not recomputed cannot get past the checksum. */
const DAMAGE_CODES: readonly SegmentFormatErrorCode[] = ['SEGMENT_TRUNCATED', 'SEGMENT_BAD_MAGIC', 'SEGMENT_CHECKSUM_MISMATCH'];
const CORRUPT_ONLY: readonly SegmentFormatErrorCode[] = ['SEGMENT_CORRUPT'];

interface Base {
  name: string;
  bytes: Buffer;
  decoded: { header: SegmentHeader; pages: PageImage[] };
}

function base(name: string, header: Partial<SegmentHeaderInput>, pageNumbers: number[], seed: number): Base {
  const full: SegmentHeaderInput = {
    databaseId: '3f2504e0-4f89-41d3-9a0c-0305e82c3301',
    term: 5n,
    position: 42n,
    commitTimeMs: 1_767_225_600_000,
    pageSize: 512,
    databaseSizePages: 2000,
    transactionCount: 3,
    preChecksum: 0xdead_beef_0000_0001n,
    postChecksum: 0xdead_beef_0000_0002n,
    ...header,
  };
  const bytes = encodeSegment(full, makePages(new Prng(seed), pageNumbers, full.pageSize));
  return { name, bytes, decoded: decodeSegment(bytes) };
}

const small = base('small', {}, [1, 2, 7], 11);
const empty = base('empty', {}, [], 12);
const twoChunks = base(
  'two-chunks',
  {},
  Array.from({ length: 300 }, (_, i) => i + 1),
  13,
);
const bigPages = base('big-pages', { pageSize: 8192, databaseSizePages: 20 }, [3, 4, 19], 14);
const bases = [small, empty, twoChunks, bigPages];

function reseal(content: Buffer): Buffer {
  return Buffer.concat([content, segmentChecksum(content)]);
}

function withoutTrailer(bytes: Buffer): Buffer {
  return Buffer.from(bytes.subarray(0, bytes.length - SEGMENT_TRAILER_SIZE));
}

interface Tally {
  inputs: number;
  byCode: Map<string, number>;
  failures: string[];
}

function newTally(): Tally {
  return { inputs: 0, byCode: new Map(), failures: [] };
}

/** Decodes `mutated` and records a failure unless the outcome is one the contract allows. */
function check(tally: Tally, label: string, original: Base, mutated: Buffer, allowed: readonly SegmentFormatErrorCode[]): void {
  tally.inputs++;
  let result: ReturnType<typeof decodeSegment>;
  try {
    result = decodeSegment(mutated);
  } catch (error) {
    const outcome = judgeError(error, allowed);
    if (outcome.failure) tally.failures.push(`${label}: ${outcome.failure}`);
    else tally.byCode.set(outcome.code, (tally.byCode.get(outcome.code) ?? 0) + 1);
    return;
  }
  if (!mutated.equals(original.bytes)) {
    tally.failures.push(`${label}: decoded successfully although the bytes differ from ${original.name}`);
    return;
  }
  const failure = compareDecoded(result, original.decoded);
  if (failure) tally.failures.push(`${label}: identical bytes decoded differently: ${failure}`);
  else tally.byCode.set('identical', (tally.byCode.get('identical') ?? 0) + 1);
}

function judgeError(error: unknown, allowed: readonly SegmentFormatErrorCode[]): { code: string; failure?: string } {
  if (!(error instanceof SegmentFormatError)) {
    return { code: '', failure: `threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}` };
  }
  if (!allowed.includes(error.code))
    return { code: error.code, failure: `code ${error.code} not in ${allowed.join('|')}: ${error.message}` };
  if (error.details.internal === true) return { code: error.code, failure: `internal decoder error: ${error.message}` };
  if (error.message.length < 10) return { code: error.code, failure: `uninformative message ${JSON.stringify(error.message)}` };
  return { code: error.code };
}

function compareDecoded(actual: ReturnType<typeof decodeSegment>, expected: ReturnType<typeof decodeSegment>): string | undefined {
  if (JSON.stringify(actual.header, bigintJson) !== JSON.stringify(expected.header, bigintJson)) return 'header differs';
  if (actual.pages.length !== expected.pages.length) return 'page count differs';
  for (let i = 0; i < actual.pages.length; i++) {
    const a = actual.pages[i];
    const e = expected.pages[i];
    if (!a || !e || a.pageNumber !== e.pageNumber || !a.data.equals(e.data)) return `page ${i} differs`;
  }
  return undefined;
}

const bigintJson = (_key: string, value: unknown): unknown => (typeof value === 'bigint' ? value.toString() : value);

function flipBits(prng: Prng, bytes: Buffer, flips: number): Buffer {
  const copy = Buffer.from(bytes);
  for (let i = 0; i < flips; i++) {
    const at = prng.below(copy.length);
    copy[at] = (copy[at] ?? 0) ^ (1 << prng.below(8));
  }
  return copy;
}

function overwrite(prng: Prng, bytes: Buffer): Buffer {
  const copy = Buffer.from(bytes);
  const runs = prng.between(1, 4);
  for (let r = 0; r < runs; r++) {
    const length = prng.between(1, 16);
    const at = prng.below(copy.length);
    for (let i = at; i < Math.min(copy.length, at + length); i++) {
      // Small values as often as random ones: they hit "plausible" lengths and the identity case.
      copy[i] = prng.chance(0.3) ? prng.below(4) : prng.below(256);
    }
  }
  return copy;
}

function rewriteSame(prng: Prng, bytes: Buffer): Buffer {
  const copy = Buffer.from(bytes);
  const at = prng.below(copy.length);
  copy[at] = bytes[at] ?? 0;
  return copy;
}

function report(tally: Tally): void {
  const summary = [...tally.byCode.entries()].map(([code, n]) => `${code}=${n}`).join(' ');
  expect(tally.failures.slice(0, 10), `${tally.failures.length} failures of ${tally.inputs} (${summary})`).toEqual([]);
}

describe('segment fuzz', () => {
  const totals = { inputs: 0 };
  const run = (fill: (tally: Tally) => void): Tally => {
    const tally = newTally();
    fill(tally);
    totals.inputs += tally.inputs;
    report(tally);
    return tally;
  };

  it('rejects every truncation of a small segment, and sampled truncations of a large one', () => {
    run((tally) => {
      for (const original of [small, empty, bigPages]) {
        for (let length = 0; length < original.bytes.length; length++) {
          check(tally, `${original.name} cut to ${length}`, original, original.bytes.subarray(0, length), DAMAGE_CODES);
        }
      }
      const prng = new Prng(101);
      for (let i = 0; i < 300; i++) {
        const length = prng.below(twoChunks.bytes.length);
        check(tally, `two-chunks cut to ${length}`, twoChunks, twoChunks.bytes.subarray(0, length), DAMAGE_CODES);
      }
    });
  });

  it('rejects single and multiple bit flips anywhere', () => {
    const prng = new Prng(202);
    run((tally) => {
      for (let i = 0; i < 2000; i++) {
        const original = prng.pick(bases);
        const flips = i < 1000 ? 1 : prng.between(2, 12);
        check(tally, `${original.name} #${i} with ${flips} flips`, original, flipBits(prng, original.bytes, flips), DAMAGE_CODES);
      }
    });
  });

  it('rejects random byte overwrites unless they change nothing', () => {
    const prng = new Prng(303);
    const tally = run((tally) => {
      for (let i = 0; i < 1000; i++) {
        const original = prng.pick(bases);
        // Every 50th input writes back the bytes already there: the one case that must decode.
        const mutated = i % 50 === 0 ? rewriteSame(prng, original.bytes) : overwrite(prng, original.bytes);
        check(tally, `${original.name} overwrite #${i}`, original, mutated, DAMAGE_CODES);
      }
    });
    expect(tally.byCode.get('identical')).toBeGreaterThanOrEqual(20);
  });

  it('rejects random garbage of random lengths, with and without a valid magic', () => {
    const prng = new Prng(404);
    run((tally) => {
      for (let i = 0; i < 500; i++) {
        const garbage = prng.bytes(prng.chance(0.2) ? prng.below(120) : prng.below(3000));
        if (i % 2 === 0 && garbage.length >= 4) garbage.write('LBSG', 0, 'ascii');
        check(tally, `garbage #${i} (${garbage.length} bytes)`, small, garbage, DAMAGE_CODES);
      }
    });
  });

  it('rejects a valid header followed by a garbage body under a recomputed trailer', () => {
    const prng = new Prng(505);
    run((tally) => {
      for (let i = 0; i < 1000; i++) {
        const original = prng.pick([small, twoChunks, bigPages]);
        const header = original.bytes.subarray(0, SEGMENT_HEADER_SIZE);
        const body = i % 2 === 0 ? prng.bytes(prng.below(2000)) : plausibleChunk(prng, original.decoded.header);
        check(tally, `${original.name} garbage body #${i}`, original, reseal(Buffer.concat([header, body])), CORRUPT_ONLY);
      }
    });
  });

  it('rejects chunks with lying lengths under a recomputed trailer', () => {
    const prng = new Prng(606);
    run((tally) => {
      for (let i = 0; i < 1500; i++) {
        const original = prng.pick([small, twoChunks, bigPages]);
        const { mutated, label } = lieAboutAChunk(prng, original);
        check(tally, `${original.name} ${label} #${i}`, original, mutated, CORRUPT_ONLY);
      }
    });
  });

  it('rejects header fields that contradict the body, under a recomputed trailer', () => {
    const prng = new Prng(707);
    run((tally) => {
      for (let i = 0; i < 500; i++) {
        const original = prng.pick([small, twoChunks, bigPages]);
        const { mutated, label, allowed } = contradictHeader(prng, original);
        check(tally, `${original.name} ${label} #${i}`, original, mutated, allowed);
      }
    });
  });

  it('ran at least 5,000 inputs', () => {
    expect(totals.inputs).toBeGreaterThanOrEqual(5000);
  });
});

/**
 * One chunk whose header is entirely believable (page count, uncompressed length, compressed
 * length and LZ4 size prefix all agree with the segment header), so that the garbage after the
 * prefix reaches LZ4 itself, or a real LZ4 block of pages that break the page-number rules.
 */
function plausibleChunk(prng: Prng, header: SegmentHeader): Buffer {
  const pages = Math.min(header.pageCount, prng.between(1, 256));
  const uncompressed = pages * (4 + header.pageSize);
  const payload = prng.chance(0.5) ? randomLz4(prng, uncompressed) : compressSync(badPageNumbers(prng, pages, header));
  const chunkHeader = Buffer.alloc(12);
  chunkHeader.writeUInt32BE(pages, 0);
  chunkHeader.writeUInt32BE(uncompressed, 4);
  chunkHeader.writeUInt32BE(payload.length, 8);
  return Buffer.concat([chunkHeader, payload]);
}

function randomLz4(prng: Prng, uncompressed: number): Buffer {
  const payload = prng.bytes(4 + prng.below(600));
  payload.writeUInt32LE(uncompressed, 0);
  return payload;
}

/** Raw chunk bytes whose page numbers are out of order, repeated, zero or beyond the database. */
function badPageNumbers(prng: Prng, pages: number, header: SegmentHeader): Buffer {
  const raw = Buffer.alloc(pages * (4 + header.pageSize));
  const numbers = Array.from({ length: pages }, (_, i) => i + 1);
  const broken = prng.below(pages);
  const kind = prng.below(3);
  numbers[broken] = kind === 0 ? 0 : kind === 1 ? header.databaseSizePages + 1 + prng.below(1000) : (numbers[broken - 1] ?? 0);
  numbers.forEach((n, i) => raw.writeUInt32BE(n, i * (4 + header.pageSize)));
  return raw;
}

/** Changes one length-like field of one chunk (never to its true value) and reseals. */
function lieAboutAChunk(prng: Prng, original: Base): { mutated: Buffer; label: string } {
  const content = withoutTrailer(original.bytes);
  const chunks = listChunks(original.bytes);
  const target = prng.pick(chunks);
  const field = prng.pick(['pagesInChunk', 'uncompressedLength', 'compressedLength', 'lz4Prefix'] as const);
  const at = target.offset + { pagesInChunk: 0, uncompressedLength: 4, compressedLength: 8, lz4Prefix: 12 }[field];
  const truth = field === 'lz4Prefix' ? content.readUInt32LE(at) : content.readUInt32BE(at);
  const lie = differentU32(prng, truth);
  if (field === 'lz4Prefix') content.writeUInt32LE(lie, at);
  else content.writeUInt32BE(lie, at);
  return { mutated: reseal(content), label: `chunk@${target.offset} ${field} ${truth}->${lie}` };
}

/** A u32 other than `truth`: off by a little (the dangerous kind of lie) or anything at all. */
function differentU32(prng: Prng, truth: number): number {
  for (;;) {
    const candidate = prng.chance(0.6) ? truth + prng.between(-8, 8) : prng.chance(0.5) ? prng.u32() : prng.below(300);
    if (candidate !== truth && candidate >= 0 && candidate <= 0xffff_ffff) return candidate;
  }
}

/**
 * Header edits that no valid segment with this body can have: non-zero flags or reserved bytes, a
 * different page size, a different page count, a database smaller than the highest page, a commit
 * time beyond 2^53, or another format version.
 */
function contradictHeader(prng: Prng, original: Base): { mutated: Buffer; label: string; allowed: readonly SegmentFormatErrorCode[] } {
  const content = withoutTrailer(original.bytes);
  const { header, pages } = original.decoded;
  const highest = pages.at(-1)?.pageNumber ?? 0;
  const edit = prng.below(6);
  let label: string;
  let allowed = CORRUPT_ONLY;
  switch (edit) {
    case 0:
      content.writeUInt16BE(prng.between(1, 0xffff), 6);
      label = 'flags';
      break;
    case 1:
      content[80 + prng.below(16)] = prng.between(1, 255);
      label = 'reserved';
      break;
    case 2:
      content.writeUInt32BE(differentU32(prng, header.pageSize), 48);
      label = 'pageSize';
      break;
    case 3:
      content.writeUInt32BE(differentU32(prng, header.pageCount), 56);
      label = 'pageCount';
      break;
    case 4:
      content.writeUInt32BE(prng.below(highest), 52);
      label = 'databaseSizePages below the highest page';
      break;
    default:
      if (prng.chance(0.5)) {
        content.writeBigUInt64BE(BigInt(Number.MAX_SAFE_INTEGER) + 1n + BigInt(prng.u32()), 40);
        label = 'commitTimeMs';
      } else {
        content.writeUInt16BE(prng.between(2, 0xffff), 4);
        label = 'formatVersion';
        allowed = ['SEGMENT_UNSUPPORTED_VERSION'];
      }
  }
  return { mutated: reseal(content), label, allowed };
}
