import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BundleWriter } from '../../../src/archive/bundle-writer.js';
import { BundleFormatError, openBundle, PageMajorBundle } from '../../../src/format/bundle-codec.js';
import { encodeSegment, segmentChecksum } from '../../../src/format/segment-codec.js';
import type { SegmentSource } from '../../../src/format/segment-source.js';
import { makePages, Prng } from '../../support/golden-segments.js';
import { differentU32, newTally, report, type Tally } from '../../support/fuzz-tally.js';

/**
 * Hostile bytes for the archive bundle reader (docs/FORMAT.md §11): damaged, truncated and lying
 * bundles of both formats, with and without a recomputed trailer, and garbage. Every input must be
 * read exactly or refused with a BundleFormatError; never another error type, never seconds of work.
 */
const work = mkdtempSync(path.join(tmpdir(), 'litebase-bundle-fuzz-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
/** Per input: a bundle of a few dozen segments reads in milliseconds. */
const MAX_MS_PER_INPUT = 1500;

describe('bundle reader fuzz', () => {
  const BUNDLE_DB = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
  interface BundleBase {
    name: string;
    bytes: Buffer;
    first: bigint;
    last: bigint;
    /** What collect() over every segment gives, page by page. */
    collected: Map<number, Buffer>;
    /** Page numbers of each segment, as segmentPages() rebuilds them (format 2). */
    perSegment: string[];
  }

  /** Segments first..first+n-1 that rewrite some pages many times (history entries, deltas). */
  function segments(seed: number, count: number, pageSize: number, first: bigint): Buffer[] {
    const prng = new Prng(seed);
    let size = 8;
    const out: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      size = Math.max(1, size + prng.between(-1, 3));
      const numbers = new Set<number>();
      for (let j = prng.between(1, Math.min(size, 40)); j > 0; j--) numbers.add(prng.between(1, size));
      const pages = makePages(
        prng,
        [...numbers].sort((a, b) => a - b),
        pageSize,
      );
      out.push(
        encodeSegment(
          {
            databaseId: BUNDLE_DB,
            term: 2n,
            position: first + BigInt(i),
            commitTimeMs: 1_795_000_000_000 + i,
            pageSize,
            databaseSizePages: size,
            transactionCount: 1,
            preChecksum: BigInt(i),
            postChecksum: BigInt(i + 1),
          },
          pages,
        ),
      );
    }
    return out;
  }

  async function collectAll(source: SegmentSource): Promise<{ collected: Map<number, Buffer>; perSegment: string[] }> {
    const collected = new Map<number, Buffer>();
    await source.collect(
      0,
      source.headers.length - 1,
      () => true,
      (pageNumber, image) => collected.set(pageNumber, Buffer.from(image)),
    );
    const perSegment =
      source instanceof PageMajorBundle
        ? source.headers.map((_, i) =>
            source
              .segmentPages(i)
              .map((p) => `${p.pageNumber}:${p.data.subarray(0, 8).toString('hex')}`)
              .join(','),
          )
        : [];
    return { collected, perSegment };
  }

  async function formatTwo(name: string, seed: number, count: number, pageSize: number): Promise<BundleBase> {
    const file = path.join(work, `${name}.bundle`);
    const writer = await BundleWriter.create(file);
    for (const segment of segments(seed, count, pageSize, 50n)) writer.append(segment);
    await writer.finish();
    const bytes = readFileSync(file);
    const first = 50n;
    const last = 50n + BigInt(count - 1);
    return { name, bytes, first, last, ...(await collectAll(openBundle(bytes, name, { first, last, databaseId: BUNDLE_DB }))) };
  }

  async function formatOne(name: string, seed: number, count: number): Promise<BundleBase> {
    const records = segments(seed, count, 512, 7n).flatMap((segment) => {
      const length = Buffer.alloc(4);
      length.writeUInt32BE(segment.length);
      return [length, segment];
    });
    const bytes = Buffer.concat(records);
    const first = 7n;
    const last = 7n + BigInt(count - 1);
    return { name, bytes, first, last, ...(await collectAll(openBundle(bytes, name, { first, last, databaseId: BUNDLE_DB }))) };
  }

  /** Open and read `bytes` whole; failures unless it is a BundleFormatError or (when allowed) a clean read. */
  async function checkBundle(
    tally: Tally,
    label: string,
    original: BundleBase,
    bytes: Buffer,
    mayRead: 'identical' | 'any' | 'never',
  ): Promise<void> {
    tally.inputs++;
    const started = performance.now();
    try {
      const source = openBundle(bytes, original.name, { first: original.first, last: original.last, databaseId: BUNDLE_DB });
      const read = await collectAll(source);
      const same =
        read.collected.size === original.collected.size &&
        [...read.collected].every(([pageNumber, image]) => original.collected.get(pageNumber)?.equals(image)) &&
        read.perSegment.join('|') === original.perSegment.join('|');
      if (mayRead === 'never' && !bytes.equals(original.bytes)) tally.failures.push(`${label}: read although the bytes differ`);
      else if (mayRead === 'identical' && !same) tally.failures.push(`${label}: read different pages`);
      tally.byCode.set('read', (tally.byCode.get('read') ?? 0) + 1);
    } catch (error) {
      if (!(error instanceof BundleFormatError)) {
        tally.failures.push(`${label}: threw ${error instanceof Error ? `${error.constructor.name}: ${error.message}` : String(error)}`);
      } else {
        tally.byCode.set(error.code, (tally.byCode.get(error.code) ?? 0) + 1);
      }
    }
    const elapsed = performance.now() - started;
    tally.slowest = Math.max(tally.slowest, elapsed);
    if (elapsed > MAX_MS_PER_INPUT) tally.failures.push(`${label}: took ${elapsed.toFixed(0)} ms`);
  }

  const resealBundle = (bytes: Buffer): Buffer => {
    const body = bytes.subarray(0, bytes.length - 8);
    return Buffer.concat([body, segmentChecksum(body)]);
  };

  it('rejects damaged, truncated and lying bundles of both formats with a BundleFormatError', async () => {
    const small = await formatTwo('bundle-small', 5, 6, 512);
    const many = await formatTwo('bundle-many', 6, 24, 1024);
    const big = await formatTwo('bundle-big-pages', 7, 5, 65536);
    const old = await formatOne('bundle-format-1', 8, 12);
    const twos = [small, many, big];
    const prng = new Prng(123);
    const tally = newTally();
    for (const base of [...twos, old]) await checkBundle(tally, `${base.name} as is`, base, base.bytes, 'identical');
    for (let i = 0; i < 400; i++) {
      const base = prng.pick([...twos, old]);
      await checkBundle(tally, `${base.name} cut #${i}`, base, base.bytes.subarray(0, prng.below(base.bytes.length)), 'never');
    }
    for (let i = 0; i < 600; i++) {
      const base = prng.pick(twos);
      const bytes = Buffer.from(base.bytes);
      for (let f = prng.between(1, 6); f > 0; f--) bytes[prng.below(bytes.length)]! ^= 1 << prng.below(8);
      await checkBundle(tally, `${base.name} flips #${i}`, base, bytes, 'never');
    }
    for (let i = 0; i < 1500; i++) {
      // Resealed: the trailer holds, the tables or data lie.
      const base = prng.pick(twos);
      const bytes = Buffer.from(base.bytes);
      const end = bytes.length - 8;
      const segmentCount = bytes.readUInt32BE(32);
      const pageCount = bytes.readUInt32BE(40);
      const historyCount = bytes.readUInt32BE(44);
      const blockCount = bytes.readUInt32BE(48);
      const tablesEnd = 64 + segmentCount * 48 + pageCount * 12 + historyCount * 8 + blockCount * 8;
      const region = prng.below(3);
      let mayRead: 'never' | 'any' = 'never';
      let label: string;
      if (region === 0) {
        const field = prng.pick([4, 6, 24, 32, 36, 40, 44, 48, 52]);
        if (field === 4 || field === 6) bytes.writeUInt16BE(differentU32(prng, bytes.readUInt16BE(field)) & 0xffff, field);
        else if (field === 24) bytes.writeBigUInt64BE(prng.chance(0.5) ? 0n : prng.u64(), field);
        else bytes.writeUInt32BE(differentU32(prng, bytes.readUInt32BE(field)), field);
        label = `header field @${field}`;
        // A rewritten version or flags field can land on the same value after masking.
        if (field === 4 || field === 6) mayRead = 'any';
      } else if (region === 1) {
        const at = 64 + prng.below(Math.max(1, tablesEnd - 64 - 4));
        bytes.writeUInt32BE(differentU32(prng, bytes.readUInt32BE(at)), at);
        label = `table word @${at}`;
        // Some table fields are not cross-checked (a term, a checksum, a commit time): those read.
        mayRead = 'any';
      } else {
        const at = tablesEnd + prng.below(Math.max(1, end - tablesEnd));
        for (let k = prng.between(1, 8); k > 0 && at + k < end; k--) bytes[at + k] = prng.below(256);
        label = `data @${at}`;
        // Compressed images have no checksum of their own under a recomputed trailer.
        mayRead = 'any';
      }
      await checkBundle(tally, `${base.name} ${label} #${i}`, base, resealBundle(bytes), mayRead);
    }
    for (let i = 0; i < 400; i++) {
      // Format 1: lying record lengths, garbage records, out-of-order segments.
      const bytes = Buffer.from(old.bytes);
      const kind = prng.below(3);
      if (kind === 0) {
        let offset = 0;
        for (let r = prng.below(12); r > 0 && offset < bytes.length; r--) offset += 4 + bytes.readUInt32BE(offset);
        if (offset < bytes.length) bytes.writeUInt32BE(differentU32(prng, bytes.readUInt32BE(offset)), offset);
      } else if (kind === 1) {
        const at = prng.below(bytes.length);
        bytes.writeUInt32BE(prng.u32(), Math.min(at, bytes.length - 4));
      } else {
        bytes[prng.below(bytes.length)]! ^= 1 << prng.below(8);
      }
      // A flip inside a segment body is only found when that segment is read, which collect does.
      await checkBundle(tally, `format 1 kind ${kind} #${i}`, old, bytes, 'never');
    }
    for (let i = 0; i < 300; i++) {
      const garbage = prng.bytes(prng.below(4000));
      if (i % 2 === 0 && garbage.length >= 6) {
        garbage.write('LBBN', 0, 'ascii');
        garbage.writeUInt16BE(2, 4);
      }
      await checkBundle(
        tally,
        `garbage #${i}`,
        small,
        i % 4 === 0 ? resealBundle(garbage.length >= 8 ? garbage : Buffer.alloc(8)) : garbage,
        'never',
      );
    }
    report(tally);
    expect(tally.inputs).toBeGreaterThanOrEqual(3000);
  }, 60_000);
});
