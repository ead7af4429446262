import { promises as fs } from 'node:fs';
import type { Logger } from 'pino';
import { loadArchiveIndex, type ArchiveIndex } from '../archive/archive-index.js';
import { databaseNamePrefix, isDatabaseId } from '../archive/archive-keys.js';
import type { CheckpointDirectory } from '../replay/checkpoints.js';
import { LitebaseError, systemErrorCode } from '../errors.js';
import type { LogDirectory } from '../log/log-directory.js';
import { readSegmentFileHeader } from '../log/segment-stream.js';
import type { ObjectStore } from '../storage/object-store.js';
import type { CheckpointLocation, CheckpointSource, RestoreCatalog, SegmentRun } from './planner.js';

/**
 * What history exists for a database, gathered for the planner: the archive (through its index,
 * reconciled with a listing) and, on a server, the shared folder (checkpoints and the log).
 */

export function catalogFromIndex(index: ArchiveIndex): RestoreCatalog {
  return {
    database: index.database,
    databaseId: index.databaseId,
    checkpoints: index.checkpoints.map((entry) => ({
      position: entry.position,
      timeMs: entry.timeMs,
      // What a restore from it reads: a manifest's ranges, not what it cost the archive.
      bytes: entry.manifest ? entry.manifest.objectBytes + entry.manifest.rangesBytes : entry.bytes,
      location: {
        kind: entry.manifest ? 'archive-manifest' : 'archive',
        key: entry.key,
        ...(entry.sha256 ? { sha256: entry.sha256 } : {}),
      },
    })),
    runs: index.bundles.map((entry) => ({
      first: entry.first,
      last: entry.last,
      firstTimeMs: entry.firstTimeMs,
      lastTimeMs: entry.lastTimeMs,
      bytes: entry.bytes,
      location: { kind: 'archive', key: entry.key, ...(entry.sha256 ? { sha256: entry.sha256 } : {}) },
    })),
  };
}

export async function loadArchiveCatalog(
  store: ObjectStore,
  database: string,
  databaseId: string,
  options: { logger?: Logger } = {},
): Promise<RestoreCatalog> {
  const { index } = await loadArchiveIndex(store, database, databaseId, options);
  return catalogFromIndex(index);
}

/**
 * The checkpoints and the log on the shared folder. A compaction may delete segments (in ascending
 * order) while they are read: a segment that vanished is left out and the runs are built again.
 * Read the shared folder before the archive: what is deleted from it after that was archived first.
 */
export async function loadSharedCatalog(
  database: string,
  databaseId: string,
  log: LogDirectory,
  checkpoints: CheckpointDirectory,
  logger?: Logger,
): Promise<RestoreCatalog> {
  return { database, databaseId, runs: await logRuns(log), checkpoints: await sharedCheckpoints(checkpoints, databaseId, logger) };
}

/** The shared folder's checkpoints: manifests (read in place with their range files) and legacy full checkpoints. */
async function sharedCheckpoints(checkpoints: CheckpointDirectory, databaseId: string, logger?: Logger): Promise<CheckpointSource[]> {
  const sources: CheckpointSource[] = [];
  for (const position of await checkpoints.positions()) {
    try {
      const info = await checkpoints.describe(position, databaseId); // a manifest when both kinds are there
      const location: CheckpointLocation =
        info.kind === 'manifest'
          ? { kind: 'shared-manifest', file: info.file, rangesDir: checkpoints.rangesDir }
          : { kind: 'shared', file: info.file };
      sources.push({ position, timeMs: info.commitTimeMs, bytes: info.bytes, location });
    } catch (error) {
      if (systemErrorCode(error) === 'ENOENT') continue; // removed since the listing (a newer one is there)
      if (error instanceof LitebaseError && error.code === 'CHECKPOINT_FOREIGN') continue;
      logger?.warn({ err: error, position: position.toString() }, 'checkpoint unreadable; not offered for restore');
    }
  }
  return sources;
}

async function logRuns(log: LogDirectory): Promise<SegmentRun[]> {
  let positions = await log.positions();
  for (;;) {
    try {
      return await runsOf(log, positions);
    } catch (error) {
      if (!(error instanceof VanishedSegment)) throw error;
      const gone = error.position;
      positions = positions.filter((position) => position !== gone);
    }
  }
}

class VanishedSegment extends Error {
  constructor(readonly position: bigint) {
    super(`segment ${position} vanished`);
  }
}

async function runsOf(log: LogDirectory, positions: readonly bigint[]): Promise<SegmentRun[]> {
  const read = async <T>(position: bigint, what: (file: string) => Promise<T>): Promise<T> => {
    try {
      return await what(log.segmentPath(position));
    } catch (error) {
      if (systemErrorCode(error) === 'ENOENT') throw new VanishedSegment(position);
      throw error;
    }
  };
  const runs: SegmentRun[] = [];
  let start = 0;
  while (start < positions.length) {
    let end = start;
    while (end + 1 < positions.length && positions[end + 1] === (positions[end] as bigint) + 1n) end++;
    const first = positions[start] as bigint;
    const last = positions[end] as bigint;
    let bytes = 0;
    for (let i = start; i <= end; i++) bytes += await read(positions[i] as bigint, async (file) => (await fs.stat(file)).size);
    const firstHeader = await read(first, (file) => readSegmentFileHeader(file));
    const lastHeader = first === last ? firstHeader : await read(last, (file) => readSegmentFileHeader(file));
    runs.push({
      first,
      last,
      firstTimeMs: firstHeader.commitTimeMs,
      lastTimeMs: lastHeader.commitTimeMs,
      bytes,
      location: { kind: 'log' },
    });
    start = end + 1;
  }
  return runs;
}

export function mergeCatalogs(a: RestoreCatalog, b: RestoreCatalog): RestoreCatalog {
  return {
    database: a.database,
    databaseId: a.databaseId,
    checkpoints: [...a.checkpoints, ...b.checkpoints],
    runs: [...a.runs, ...b.runs],
  };
}

export interface ArchivedDatabaseId {
  databaseId: string;
  objects: number;
  bytes: number;
  lastModified: Date | undefined;
}

/** The database ids archived under a name, newest (most recently written object) first. */
export async function listArchivedIds(store: ObjectStore, database: string): Promise<ArchivedDatabaseId[]> {
  const prefix = databaseNamePrefix(database);
  const ids = new Map<string, ArchivedDatabaseId>();
  for await (const info of store.list(prefix)) {
    const id = info.key.slice(prefix.length).split('/')[0] ?? '';
    if (!isDatabaseId(id)) continue;
    const entry = ids.get(id) ?? { databaseId: id, objects: 0, bytes: 0, lastModified: undefined };
    entry.objects += 1;
    entry.bytes += info.size;
    if (info.lastModified && (!entry.lastModified || info.lastModified > entry.lastModified)) entry.lastModified = info.lastModified;
    ids.set(id, entry);
  }
  return [...ids.values()].sort((a, b) => (b.lastModified?.getTime() ?? 0) - (a.lastModified?.getTime() ?? 0));
}

/** The id to restore: the one asked for, or the newest archived under the name. */
export async function resolveArchivedId(
  store: ObjectStore,
  database: string,
  requested?: string,
): Promise<{ databaseId: string; others: string[] }> {
  const ids = await listArchivedIds(store, database);
  if (requested !== undefined) {
    if (!ids.some((entry) => entry.databaseId === requested)) {
      throw new LitebaseError('RESTORE_NO_HISTORY', `${store.url} holds no archive of database ${database} with id ${requested}`);
    }
    return { databaseId: requested, others: ids.map((entry) => entry.databaseId).filter((id) => id !== requested) };
  }
  const newest = ids[0];
  if (!newest)
    throw new LitebaseError(
      'RESTORE_NO_HISTORY',
      `${store.url} holds no archive of database ${database} (nothing under ${databaseNamePrefix(database)})`,
    );
  return { databaseId: newest.databaseId, others: ids.slice(1).map((entry) => entry.databaseId) };
}
