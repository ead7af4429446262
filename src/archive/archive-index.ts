import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { errorMessage, LitebaseError } from '../errors.js';
import { formatChecksum } from '../format/rolling-checksum.js';
import { decodeSegmentHeader, SEGMENT_HEADER_SIZE, type SegmentHeader } from '../format/segment-codec.js';
import type { ObjectInfo, ObjectStore } from '../storage/object-store.js';
import { archivePrefix, indexKey, parseArchiveKey, rangeKey } from './archive-keys.js';
import { createHash } from 'node:crypto';
import { BundleFormatError, bundleHeaders } from '../format/bundle-codec.js';
import { decodeManifest, parseRangeFileName, type CheckpointManifest } from '../format/checkpoint-manifest.js';

/**
 * The archive index: a small JSON object per database (`<prefix>/index.json`) that lists the
 * bundles and checkpoints (full ones and range checkpoints' manifests) with their positions and
 * commit times, and the range files the manifests share, so that a restore to a time finds the
 * objects it needs without downloading any other. It is a cache of the listing, never the
 * truth: writers put the objects first and the index last, and every reader reconciles it with a
 * listing (an entry without its object is dropped; an object without an entry is described by
 * reading its headers). So a crash between an upload and the index write, or two compactors racing,
 * cost a few reads later, never a lost or phantom object. docs/FORMAT.md §11 documents the JSON.
 */

export const ARCHIVE_INDEX_FORMAT = 1;

export interface ArchivedBundle {
  key: string;
  first: bigint;
  last: bigint;
  firstTimeMs: number;
  lastTimeMs: number;
  segments: number;
  bytes: number;
  /** SHA-256 of the whole object, when the writer recorded it. */
  sha256?: string;
}

export interface ArchivedCheckpoint {
  /** A full checkpoint's key (`checkpoints/<position>.ckpt`) or a range checkpoint's manifest key (`manifests/<position>.json`). */
  key: string;
  position: bigint;
  timeMs: number;
  /**
   * What the checkpoint cost the archive: a full checkpoint's size; for a manifest, the bytes of
   * the range files it had uploaded (those the archive did not hold yet) plus its own.
   */
  bytes: number;
  /** The database checksum at `position` (16 hex digits). */
  checksum: string;
  pageSize: number;
  databaseSizePages: number;
  /** SHA-256 of the object (the checkpoint, or the manifest). */
  sha256?: string;
  /** Present for a range checkpoint. */
  manifest?: ArchivedManifest;
}

export interface ArchivedManifest {
  /** The manifest object's own size. */
  objectBytes: number;
  /** Range files it lists, and their bytes together: what a restore from it reads. */
  ranges: number;
  rangesBytes: number;
  rangePages: number;
}

/** A range file in the archive: uploaded once, listed by a span of consecutive manifests. */
export interface ArchivedRange {
  key: string;
  bytes: number;
  /** SHA-256 of the object (the manifests that list it record the same). Absent for a range no archived manifest lists. */
  sha256?: string;
  /**
   * The oldest and newest archived manifest positions that list it. Absent: none does (an upload
   * cut short before its manifest). Retention deletes a range whose newest listing is below its base.
   */
  firstListed?: bigint;
  lastListed?: bigint;
}

export interface ArchiveIndex {
  database: string;
  databaseId: string;
  /** Sorted by first position, then last. */
  bundles: ArchivedBundle[];
  /** Sorted by position (a full checkpoint and a manifest may share one: the manifest comes first). */
  checkpoints: ArchivedCheckpoint[];
  /** Sorted by key. */
  ranges: ArchivedRange[];
}

export function emptyIndex(database: string, databaseId: string): ArchiveIndex {
  return { database, databaseId, bundles: [], checkpoints: [], ranges: [] };
}

/** The size of the object an index entry stands for (a manifest's `bytes` is what it cost, not its size). */
export function objectBytes(entry: ArchivedBundle | ArchivedCheckpoint | ArchivedRange): number {
  return 'manifest' in entry && entry.manifest ? entry.manifest.objectBytes : entry.bytes;
}

export function serializeIndex(index: ArchiveIndex, now = new Date()): Buffer {
  const json = {
    format: ARCHIVE_INDEX_FORMAT,
    database: index.database,
    databaseId: index.databaseId,
    updatedAt: now.toISOString(),
    bundles: index.bundles.map((bundle) => ({
      key: bundle.key,
      first: bundle.first.toString(),
      last: bundle.last.toString(),
      firstTime: new Date(bundle.firstTimeMs).toISOString(),
      lastTime: new Date(bundle.lastTimeMs).toISOString(),
      firstTimeMs: bundle.firstTimeMs,
      lastTimeMs: bundle.lastTimeMs,
      segments: bundle.segments,
      bytes: bundle.bytes,
      ...(bundle.sha256 ? { sha256: bundle.sha256 } : {}),
    })),
    checkpoints: index.checkpoints.map((checkpoint) => ({
      key: checkpoint.key,
      position: checkpoint.position.toString(),
      time: new Date(checkpoint.timeMs).toISOString(),
      timeMs: checkpoint.timeMs,
      bytes: checkpoint.bytes,
      checksum: checkpoint.checksum,
      pageSize: checkpoint.pageSize,
      databaseSizePages: checkpoint.databaseSizePages,
      ...(checkpoint.sha256 ? { sha256: checkpoint.sha256 } : {}),
      ...(checkpoint.manifest ? { manifest: { ...checkpoint.manifest } } : {}),
    })),
    ranges: index.ranges.map((range) => ({
      key: range.key,
      bytes: range.bytes,
      ...(range.sha256 ? { sha256: range.sha256 } : {}),
      ...(range.firstListed !== undefined ? { firstListed: range.firstListed.toString() } : {}),
      ...(range.lastListed !== undefined ? { lastListed: range.lastListed.toString() } : {}),
    })),
  };
  return Buffer.from(JSON.stringify(json, null, 1) + '\n');
}

/** Reads an index; anything malformed answers undefined (the caller rebuilds from the listing). */
export function parseIndex(bytes: Uint8Array, database: string, databaseId: string): ArchiveIndex | undefined {
  try {
    const json = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
    if (json.format !== ARCHIVE_INDEX_FORMAT || json.databaseId !== databaseId) return undefined;
    if (!Array.isArray(json.bundles) || !Array.isArray(json.checkpoints)) return undefined;
    const bundles = json.bundles.map((raw: unknown): ArchivedBundle => {
      const entry = raw as Record<string, unknown>;
      return {
        key: requireString(entry.key),
        first: BigInt(requireString(entry.first)),
        last: BigInt(requireString(entry.last)),
        firstTimeMs: requireNumber(entry.firstTimeMs),
        lastTimeMs: requireNumber(entry.lastTimeMs),
        segments: requireNumber(entry.segments),
        bytes: requireNumber(entry.bytes),
        ...(typeof entry.sha256 === 'string' ? { sha256: entry.sha256 } : {}),
      };
    });
    const checkpoints = json.checkpoints.map((raw: unknown): ArchivedCheckpoint => {
      const entry = raw as Record<string, unknown>;
      return {
        key: requireString(entry.key),
        position: BigInt(requireString(entry.position)),
        timeMs: requireNumber(entry.timeMs),
        bytes: requireNumber(entry.bytes),
        checksum: requireString(entry.checksum),
        pageSize: requireNumber(entry.pageSize),
        databaseSizePages: requireNumber(entry.databaseSizePages),
        ...(typeof entry.sha256 === 'string' ? { sha256: entry.sha256 } : {}),
        ...(entry.manifest === undefined ? {} : { manifest: parseManifestFacts(entry.manifest) }),
      };
    });
    // Indexes written before range checkpoints have no ranges.
    if (json.ranges !== undefined && !Array.isArray(json.ranges)) return undefined;
    const ranges = ((json.ranges as unknown[] | undefined) ?? []).map((raw: unknown): ArchivedRange => {
      const entry = raw as Record<string, unknown>;
      return {
        key: requireString(entry.key),
        bytes: requireNumber(entry.bytes),
        ...(typeof entry.sha256 === 'string' ? { sha256: entry.sha256 } : {}),
        ...(entry.firstListed === undefined ? {} : { firstListed: BigInt(requireString(entry.firstListed)) }),
        ...(entry.lastListed === undefined ? {} : { lastListed: BigInt(requireString(entry.lastListed)) }),
      };
    });
    return sortIndex({ database, databaseId, bundles, checkpoints, ranges });
  } catch {
    return undefined;
  }
}

function parseManifestFacts(raw: unknown): ArchivedManifest {
  const facts = raw as Record<string, unknown>;
  return {
    objectBytes: requireNumber(facts.objectBytes),
    ranges: requireNumber(facts.ranges),
    rangesBytes: requireNumber(facts.rangesBytes),
    rangePages: requireNumber(facts.rangePages),
  };
}

function requireString(value: unknown): string {
  if (typeof value !== 'string') throw new Error('expected a string');
  return value;
}

function requireNumber(value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new Error('expected a number');
  return value;
}

export function sortIndex(index: ArchiveIndex): ArchiveIndex {
  index.bundles.sort((a, b) => compareBig(a.first, b.first) || compareBig(a.last, b.last));
  index.checkpoints.sort((a, b) => compareBig(a.position, b.position) || Number(!a.manifest) - Number(!b.manifest));
  index.ranges.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return index;
}

export function compareBig(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The highest archived position, or 0. */
export function archivedThrough(index: ArchiveIndex): bigint {
  let last = 0n;
  for (const bundle of index.bundles) if (bundle.last > last) last = bundle.last;
  return last;
}

/** Whether every position in first..last is inside some bundle. */
export function isArchived(index: ArchiveIndex, position: bigint): boolean {
  return index.bundles.some((bundle) => bundle.first <= position && position <= bundle.last);
}

export interface LoadIndexOptions {
  logger?: Logger;
}

export interface LoadedIndex {
  index: ArchiveIndex;
  /** The index object differs from what the listing shows (the caller may write the repaired one). */
  repaired: boolean;
  /** Keys below the prefix that are none of the archive's objects nor the index. */
  foreign: string[];
}

/**
 * The index of one database id, reconciled with a listing of its objects. Range files are the one
 * kind an object cannot describe alone (which manifests list it): when the listing holds ranges
 * the index lacks, every archived manifest is read to learn their listings. A manifest some of
 * whose ranges are gone is left out (a restore could not use it).
 */
export async function loadArchiveIndex(
  store: ObjectStore,
  database: string,
  databaseId: string,
  options: LoadIndexOptions,
): Promise<LoadedIndex> {
  const prefix = archivePrefix(database, databaseId);
  const listed = new Map<string, ObjectInfo>();
  let indexInfo: ObjectInfo | undefined;
  for await (const info of store.list(prefix)) {
    const parsed = parseArchiveKey(prefix, info.key);
    if (parsed?.kind === 'index') indexInfo = info;
    else listed.set(info.key, info);
  }
  let stored: ArchiveIndex | undefined;
  if (indexInfo) {
    try {
      stored = parseIndex(await store.get(indexKey(database, databaseId)), database, databaseId);
    } catch (error) {
      options.logger?.warn({ err: error, key: indexInfo.key }, 'archive index unreadable; rebuilding it from the listing');
    }
    if (!stored) options.logger?.warn({ key: indexInfo.key }, 'archive index malformed; rebuilding it from the listing');
  }
  const known = stored ?? emptyIndex(database, databaseId);
  const index = emptyIndex(database, databaseId);
  let repaired = stored === undefined && listed.size > 0;
  const byKey = new Map<string, ArchivedBundle | ArchivedCheckpoint | ArchivedRange>();
  for (const entry of [...known.bundles, ...known.checkpoints, ...known.ranges]) byKey.set(entry.key, entry);
  if (byKey.size !== [...byKey.keys()].filter((key) => listed.has(key)).length) repaired = true;
  const foreign: string[] = [];
  /** Manifests read here (described, or read for their ranges' listings). */
  const read = new Map<string, CheckpointManifest>();
  const unknownRanges = new Map<string, ObjectInfo>();
  for (const [key, info] of listed) {
    const parsed = parseArchiveKey(prefix, key);
    if (!parsed || parsed.kind === 'index') {
      foreign.push(key);
      continue;
    }
    const entry = byKey.get(key);
    if (
      entry &&
      objectBytes(entry) === info.size &&
      (parsed.kind === 'manifest') === ('manifest' in entry && entry.manifest !== undefined)
    ) {
      if (parsed.kind === 'bundle') index.bundles.push(entry as ArchivedBundle);
      else if (parsed.kind === 'range') index.ranges.push(entry as ArchivedRange);
      else index.checkpoints.push(entry as ArchivedCheckpoint);
      continue;
    }
    repaired = true;
    if (parsed.kind === 'range') {
      unknownRanges.set(key, info);
      continue;
    }
    try {
      if (parsed.kind === 'checkpoint') {
        const header = await readObjectHeader(store, key);
        index.checkpoints.push({
          key,
          position: parsed.position,
          timeMs: header.commitTimeMs,
          bytes: info.size,
          checksum: formatChecksum(header.postChecksum),
          pageSize: header.pageSize,
          databaseSizePages: header.databaseSizePages,
        });
      } else if (parsed.kind === 'manifest') {
        const { manifest, entry: described } = await describeManifestObject(store, key, parsed.position, databaseId);
        read.set(key, manifest);
        index.checkpoints.push(described);
      } else {
        index.bundles.push(await describeBundleObject(store, key, info.size, parsed.first, parsed.last));
      }
    } catch (error) {
      // An object that cannot be described is left out of the index: a restore will not use it.
      options.logger?.error({ err: error, key }, 'archived object cannot be read; it is left out of the index');
    }
  }
  if (unknownRanges.size > 0 || read.size > 0) {
    const unreadable = await learnRangeListings(store, index, read, unknownRanges, databaseId, options);
    index.checkpoints = index.checkpoints.filter((entry) => !unreadable.has(entry.key));
  }
  if (dropManifestsMissingRanges(index, options)) repaired = true;
  return { index: sortIndex(index), repaired, foreign };
}

/**
 * Ranges the index did not know: which archived manifests list them, from the manifests
 * themselves (all of them, read once; a range is listed by a span of consecutive manifests). A
 * range whose size differs from what its manifests say is left unlisted, so those manifests are
 * left out and the next upload of the range replaces it. Answers the manifests that could not be
 * read (left out). A range no manifest lists (an upload cut
 * short) is kept unlisted: the next upload that needs it adopts it, retention deletes it once the
 * window's base is past its position.
 */
async function learnRangeListings(
  store: ObjectStore,
  index: ArchiveIndex,
  read: Map<string, CheckpointManifest>,
  unknownRanges: Map<string, ObjectInfo>,
  databaseId: string,
  options: LoadIndexOptions,
): Promise<Set<string>> {
  const unreadable = new Set<string>();
  if (unknownRanges.size > 0) {
    for (const entry of index.checkpoints) {
      if (!entry.manifest || read.has(entry.key)) continue;
      try {
        read.set(entry.key, decodeManifest(await store.get(entry.key), entry.key, databaseId));
      } catch (error) {
        options.logger?.error({ err: error, key: entry.key }, 'archived manifest cannot be read; it is left out of the index');
        unreadable.add(entry.key);
      }
    }
  }
  const ranges = new Map(index.ranges.map((range) => [range.key, range]));
  for (const [key, info] of unknownRanges) ranges.set(key, { key, bytes: info.size });
  for (const [manifestKey, manifest] of read) {
    for (const listedRange of manifest.ranges) {
      const key = rangeKey(index.database, index.databaseId, listedRange.file);
      const range = ranges.get(key);
      if (!range || range.bytes !== listedRange.bytes) continue;
      if (range.sha256 !== undefined && range.sha256 !== listedRange.sha256) {
        options.logger?.error(
          { key, manifest: manifestKey },
          'archived range does not match what a manifest lists; the manifest is left out',
        );
        continue;
      }
      range.sha256 = listedRange.sha256;
      if (range.firstListed === undefined || manifest.position < range.firstListed) range.firstListed = manifest.position;
      if (range.lastListed === undefined || manifest.position > range.lastListed) range.lastListed = manifest.position;
    }
  }
  index.ranges = [...ranges.values()];
  return unreadable;
}

/** Drops the manifests that list more ranges than the index holds for them (a range object is gone); answers whether it dropped any. */
function dropManifestsMissingRanges(index: ArchiveIndex, options: LoadIndexOptions): boolean {
  if (!index.checkpoints.some((entry) => entry.manifest)) return false;
  // Ranges listed at position p: those listed from at or before p, less those listed last before p.
  const firsts: bigint[] = [];
  const lasts: bigint[] = [];
  for (const range of index.ranges) {
    if (range.firstListed === undefined || range.lastListed === undefined) continue;
    firsts.push(range.firstListed);
    lasts.push(range.lastListed);
  }
  firsts.sort(compareBig);
  lasts.sort(compareBig);
  const keep = index.checkpoints.filter((entry) => {
    if (!entry.manifest) return true;
    const held = countAtMost(firsts, entry.position) - countAtMost(lasts, entry.position - 1n);
    if (held >= entry.manifest.ranges) return true;
    options.logger?.error(
      { key: entry.key, ranges: entry.manifest.ranges, held },
      'archived manifest lists range files the archive does not hold; it is left out of the index',
    );
    return false;
  });
  const dropped = keep.length !== index.checkpoints.length;
  index.checkpoints = keep;
  return dropped;
}

/** How many values of an ascending list are at most `limit`. */
function countAtMost(sorted: readonly bigint[], limit: bigint): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((sorted[mid] as bigint) <= limit) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Reads a manifest the index does not describe. Its cost (`bytes`) is counted as its own ranges (those written at its position) and itself. */
async function describeManifestObject(
  store: ObjectStore,
  key: string,
  position: bigint,
  databaseId: string,
): Promise<{ manifest: CheckpointManifest; entry: ArchivedCheckpoint }> {
  const bytes = await store.get(key);
  const manifest = decodeManifest(bytes, key, databaseId);
  if (manifest.position !== position) {
    throw new LitebaseError('ARCHIVE_CORRUPT', `${key} holds position ${manifest.position}, its name says ${position}`, {
      details: { key },
    });
  }
  let rangesBytes = 0;
  let ownBytes = 0;
  for (const range of manifest.ranges) {
    rangesBytes += range.bytes;
    if (parseRangeFileName(range.file)?.position === position) ownBytes += range.bytes;
  }
  return { manifest, entry: manifestEntry(key, manifest, bytes, ownBytes + bytes.length, rangesBytes) };
}

/** The index entry of an archived manifest. */
export function manifestEntry(
  key: string,
  manifest: CheckpointManifest,
  bytes: Uint8Array,
  cost: number,
  rangesBytes = manifest.ranges.reduce((sum, range) => sum + range.bytes, 0),
): ArchivedCheckpoint {
  return {
    key,
    position: manifest.position,
    timeMs: manifest.commitTimeMs,
    bytes: cost,
    checksum: formatChecksum(manifest.checksum),
    pageSize: manifest.pageSize,
    databaseSizePages: manifest.databaseSizePages,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    manifest: { objectBytes: bytes.length, ranges: manifest.ranges.length, rangesBytes, rangePages: manifest.rangePages },
  };
}

/** Reads the first 96 bytes of an object (a segment or checkpoint) and decodes the header. */
export async function readObjectHeader(store: ObjectStore, key: string, skip = 0): Promise<SegmentHeader> {
  const stream = await store.getStream(key);
  const wanted = skip + SEGMENT_HEADER_SIZE;
  const parts: Buffer[] = [];
  let have = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      parts.push(chunk);
      have += chunk.length;
      if (have >= wanted) break;
    }
  } finally {
    (stream as Readable).destroy();
  }
  const bytes = Buffer.concat(parts);
  if (bytes.length < wanted) {
    throw new LitebaseError('ARCHIVE_CORRUPT', `${key}: ${bytes.length} bytes, too short for a segment header`, { details: { key } });
  }
  try {
    return decodeSegmentHeader(bytes.subarray(skip, wanted));
  } catch (error) {
    throw new LitebaseError('ARCHIVE_CORRUPT', `${key}: ${errorMessage(error)}`, { details: { key }, cause: error });
  }
}

/** Downloads a bundle that the index does not describe and reads its segment headers. */
async function describeBundleObject(store: ObjectStore, key: string, size: number, first: bigint, last: bigint): Promise<ArchivedBundle> {
  // A bundle is at most about LITEBASE_ARCHIVE_BUNDLE_BYTES (plus one segment): read it whole.
  const bytes = await store.get(key);
  const headers = bundleHeaders(bytes, key);
  const firstHeader = headers[0];
  const lastHeader = headers.at(-1);
  if (!firstHeader || !lastHeader || firstHeader.position !== first || lastHeader.position !== last) {
    throw new BundleFormatError(
      `${key}: holds positions ${firstHeader?.position}..${lastHeader?.position}, its name says ${first}..${last}`,
      { key },
    );
  }
  return {
    key,
    first,
    last,
    firstTimeMs: firstHeader.commitTimeMs,
    lastTimeMs: lastHeader.commitTimeMs,
    segments: headers.length,
    bytes: size,
    sha256: createHash('sha256').update(bytes).digest('hex'),
  };
}
