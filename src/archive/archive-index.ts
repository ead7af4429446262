import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { errorMessage, LitebaseError } from '../errors.js';
import { formatChecksum } from '../format/rolling-checksum.js';
import { decodeSegmentHeader, SEGMENT_HEADER_SIZE, type SegmentHeader } from '../format/segment-codec.js';
import type { ObjectInfo, ObjectStore } from '../storage/object-store.js';
import { archivePrefix, indexKey, parseArchiveKey } from './archive-keys.js';
import { createHash } from 'node:crypto';
import { BundleFormatError, bundleHeaders } from '../format/bundle-codec.js';

/**
 * The archive index: a small JSON object per database (`<prefix>/index.json`) that lists the
 * bundles and checkpoints with their positions and commit times, so that a restore to a time finds
 * the objects it needs without downloading any other. It is a cache of the listing, never the
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
  key: string;
  position: bigint;
  timeMs: number;
  bytes: number;
  /** The database checksum at `position` (16 hex digits). */
  checksum: string;
  pageSize: number;
  databaseSizePages: number;
  sha256?: string;
}

export interface ArchiveIndex {
  database: string;
  databaseId: string;
  /** Sorted by first position, then last. */
  bundles: ArchivedBundle[];
  /** Sorted by position. */
  checkpoints: ArchivedCheckpoint[];
}

export function emptyIndex(database: string, databaseId: string): ArchiveIndex {
  return { database, databaseId, bundles: [], checkpoints: [] };
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
      };
    });
    return sortIndex({ database, databaseId, bundles, checkpoints });
  } catch {
    return undefined;
  }
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
  index.checkpoints.sort((a, b) => compareBig(a.position, b.position));
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
  /** Keys below the prefix that are neither bundles, checkpoints nor the index. */
  foreign: string[];
}

/** The index of one database id, reconciled with a listing of its objects. */
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
  const byKey = new Map<string, ArchivedBundle | ArchivedCheckpoint>();
  for (const entry of [...known.bundles, ...known.checkpoints]) byKey.set(entry.key, entry);
  if (byKey.size !== [...byKey.keys()].filter((key) => listed.has(key)).length) repaired = true;
  const foreign: string[] = [];
  for (const [key, info] of listed) {
    const parsed = parseArchiveKey(prefix, key);
    if (!parsed || parsed.kind === 'index') {
      foreign.push(key);
      continue;
    }
    const entry = byKey.get(key);
    if (entry && entry.bytes === info.size) {
      if (parsed.kind === 'bundle') index.bundles.push(entry as ArchivedBundle);
      else index.checkpoints.push(entry as ArchivedCheckpoint);
      continue;
    }
    repaired = true;
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
      } else {
        index.bundles.push(await describeBundleObject(store, key, info.size, parsed.first, parsed.last));
      }
    } catch (error) {
      // An object that cannot be described is left out of the index: a restore will not use it.
      options.logger?.error({ err: error, key }, 'archived object cannot be read; it is left out of the index');
    }
  }
  return { index: sortIndex(index), repaired, foreign };
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
