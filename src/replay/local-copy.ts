import { closeSync, fstatSync, fsyncSync, ftruncateSync, openSync, promises as fs, readFileSync, writeSync, writevSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { CheckpointDirectory, loadCheckpoint } from './checkpoints.js';
import { LitebaseError, systemErrorCode } from '../errors.js';
import { LogDirectory, type SegmentLocation } from '../log/log-directory.js';
import { formatChecksum, pageHash, PageHashTable } from '../format/rolling-checksum.js';
import type { PageImage, SegmentHeader } from '../format/segment-codec.js';
import { foldSegments, type FoldedRun } from '../format/segment-fold.js';
import { batchSource, SegmentPrefetcher } from '../log/segment-prefetch.js';
import { readSegmentRun, type SegmentRun } from '../log/segment-runs.js';
import { applyLargeSegment, type LargeApplyStart } from './large-segment.js';
import { writeFileAtomic } from '../storage/fs-util.js';

/**
 * The node-local SQLite file of one database is a cache of the log (docs/ARCHITECTURE.md §11). Its state file
 * records which log position the SQLite file (without its -wal) reflects. Rebuilding means:
 * drop the local WAL (it may hold transactions that never became durable), replay the log after
 * that position straight into the file, then hash every page and compare with the log's checksum.
 * Replaying a segment is idempotent (it holds page images, not deltas), so a crash between a
 * local checkpoint and the state file update only means some segments are replayed twice.
 */
export interface LocalState {
  databaseId: string;
  position: string;
  checksum: string;
}

export interface LocalCopyPaths {
  sqliteFile: string;
  stateFile: string;
}

export interface RecoveredCopy {
  position: bigint;
  hashes: PageHashTable;
  /** Segments replayed into the file during this recovery. */
  replayedSegments: number;
  /** The checkpoint the file was rebuilt from, when the log no longer started after the local state. */
  checkpoint?: bigint;
}

const DEFAULT_PAGE_SIZE = 4096;
/** A replay this long reads ahead on a worker thread (below it, starting the thread costs more). */
const PREFETCH_FROM_SEGMENTS = 1024;
const SCAN_CHUNK_PAGES = 256;

export function readLocalState(stateFile: string): LocalState | undefined {
  try {
    const parsed = JSON.parse(readFileSync(stateFile, 'utf8')) as Partial<LocalState>;
    if (typeof parsed.databaseId === 'string' && typeof parsed.position === 'string' && typeof parsed.checksum === 'string') {
      return { databaseId: parsed.databaseId, position: parsed.position, checksum: parsed.checksum };
    }
  } catch {
    // Missing or torn: the caller rebuilds from the start of the log.
  }
  return undefined;
}

export async function writeLocalState(stateFile: string, state: LocalState): Promise<void> {
  await writeFileAtomic(stateFile, JSON.stringify(state) + '\n');
}

/**
 * Page hashes of local copies this process wrote whole and knows (a restore's output, renamed into
 * place as a new database's copy), by file: the next recovery of that file at that position takes
 * them instead of hashing the file again (recoverLocalCopy). Used once.
 */
const handedOver = new Map<string, { databaseId: string; position: bigint; hashes: PageHashTable }>();

/** `hashes` describe `sqliteFile` at `position` of database `databaseId`, as its local state file says. */
export function handOverPageHashes(sqliteFile: string, databaseId: string, position: bigint, hashes: PageHashTable): void {
  handedOver.set(path.resolve(sqliteFile), { databaseId, position, hashes });
}

async function removeIfPresent(file: string): Promise<void> {
  await fs.rm(file, { force: true });
}

/** Write page images into the SQLite file and set its size: what a segment does to a database. */
export async function applyPagesToFile(
  handle: fs.FileHandle,
  pages: readonly PageImage[],
  pageSize: number,
  databaseSizePages: number,
): Promise<void> {
  // Synchronous calls on the open descriptor: a segment is a few pages, and a thread-pool round
  // trip per page cost more than the writes (catch-up ran at a thirtieth of the disk's speed).
  for (const page of pages) writeSync(handle.fd, page.data, 0, page.data.length, (page.pageNumber - 1) * pageSize);
  const size = databaseSizePages * pageSize;
  if (fstatSync(handle.fd).size !== size) ftruncateSync(handle.fd, size);
}

/**
 * Write a folded run of segments (src/log/segment-fold.ts) into the SQLite file: cut what the run
 * cut, write the last image of each page once, then set the final size (growing leaves zeros).
 */
export function applyRunToFile(fd: number, run: FoldedRun, pageSize: number, startSizePages: number): void {
  if (run.smallestSizePages < startSizePages) ftruncateSync(fd, run.smallestSizePages * pageSize);
  // Neighbouring pages go out in one call: a run that appends to a table writes long stretches.
  const numbers = [...run.pages.keys()].sort((a, b) => a - b);
  for (let i = 0; i < numbers.length;) {
    const first = numbers[i] as number;
    const stretch: Buffer[] = [];
    while (i < numbers.length && numbers[i] === first + stretch.length && stretch.length < MAX_PAGES_PER_WRITE) {
      stretch.push(run.pages.get(first + stretch.length) as Buffer);
      i++;
    }
    writePagesAt(fd, stretch, (first - 1) * pageSize);
  }
  const size = run.databaseSizePages * pageSize;
  if (fstatSync(fd).size !== size) ftruncateSync(fd, size);
}

/** Stretches of neighbouring pages are written with one writev, up to this many pages (IOV_MAX is 1024). */
const MAX_PAGES_PER_WRITE = 256;

function writePagesAt(fd: number, pages: readonly Buffer[], offset: number): void {
  let written = writevSync(fd, pages, offset);
  // A short write is rare (a signal; a full disk reports an error instead): finish what is left.
  let start = 0;
  for (const page of pages) {
    const end = start + page.length;
    while (written < end) written += writeSync(fd, page, written - start, end - written, offset + written);
    start = end;
  }
}

/** Fold a run into the page hash table: the same cut, then the pages and the final size. */
export function applyRunToHashes(hashes: PageHashTable, run: FoldedRun): void {
  if (run.smallestSizePages < hashes.databaseSizePages) hashes.apply([], run.smallestSizePages);
  const changed: Array<{ pageNumber: number; hash: bigint }> = [];
  for (const [pageNumber, data] of run.pages) changed.push({ pageNumber, hash: pageHash(pageNumber, data) });
  hashes.apply(changed, run.databaseSizePages);
}

/** Hash every page of the file, in bounded chunks, into a fresh table. */
export async function scanPageHashes(sqliteFile: string, pageSize: number): Promise<PageHashTable> {
  const table = new PageHashTable(pageSize);
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(sqliteFile, 'r');
  } catch (error) {
    if (systemErrorCode(error) === 'ENOENT') return table;
    throw error;
  }
  try {
    const { size } = await handle.stat();
    const totalPages = Math.floor(size / pageSize);
    const buffer = Buffer.allocUnsafe(SCAN_CHUNK_PAGES * pageSize);
    for (let first = 1; first <= totalPages; first += SCAN_CHUNK_PAGES) {
      const count = Math.min(SCAN_CHUNK_PAGES, totalPages - first + 1);
      const { bytesRead } = await handle.read(buffer, 0, count * pageSize, (first - 1) * pageSize);
      if (bytesRead !== count * pageSize) throw new Error(`short read of ${sqliteFile} at page ${first}`);
      const pages = [];
      for (let i = 0; i < count; i++) {
        pages.push({ pageNumber: first + i, hash: pageHash(first + i, buffer.subarray(i * pageSize, (i + 1) * pageSize)) });
      }
      table.apply(pages, first + count - 1);
    }
  } finally {
    await handle.close();
  }
  return table;
}

interface ReplayOutcome {
  position: bigint;
  expectedChecksum: bigint;
  pageSize: number;
  replayedSegments: number;
  /** False when the page hashes handed to the replay no longer describe the file (a large segment went in). */
  hashesKept: boolean;
}

async function replayLog(
  paths: LocalCopyPaths,
  log: LogDirectory,
  databaseId: string,
  from: { position: bigint; checksum: bigint },
  logger: Logger,
  /** The page hashes of the file at `from` when known (a checkpoint just loaded): kept up to date. */
  hashes?: PageHashTable,
): Promise<ReplayOutcome> {
  // The newest segment when replay starts: stopping short of it means a hole in the log.
  const newest = (await log.positions()).at(-1) ?? 0n;
  let expected = from.checksum;
  let position = from.position;
  let pageSize = 0;
  let hashesKept = hashes !== undefined;
  await fs.mkdir(path.dirname(paths.sqliteFile), { recursive: true });
  const fd = openSync(paths.sqliteFile, from.position === 0n ? 'w' : 'r+');
  // A long replay reads the next files on worker threads while this one decodes and writes.
  const prefetcher = newest - from.position >= PREFETCH_FROM_SEGMENTS ? new SegmentPrefetcher(log, position + 1n) : undefined;
  let readingAhead = prefetcher !== undefined;
  try {
    for (;;) {
      let run: SegmentRun;
      const batch = readingAhead ? await prefetcher?.next().catch((error: unknown) => readAheadFailed(error, logger)) : undefined;
      if (batch && batch.files.length > 0 && batch.first === position + 1n) {
        run = readSegmentRun(
          log,
          { databaseId, position, checksum: expected },
          { segments: batch.files.length, bytes: Infinity, pageBytes: Infinity },
          batchSource(batch),
        );
      } else {
        // Runs, not single segments: each page is written once per run however often it changed.
        // Also the rest of a long replay: what was written since the workers looked.
        readingAhead = false;
        run = readSegmentRun(log, { databaseId, position, checksum: expected });
      }
      const last = run.segments.at(-1);
      if (last) {
        pageSize = last.header.pageSize;
        const startSize = Math.floor(fstatSync(fd).size / pageSize);
        const folded = foldSegments(startSize, run.segments);
        applyRunToFile(fd, folded, pageSize, startSize);
        if (hashes) applyRunToHashes(hashes, folded);
        expected = last.header.postChecksum;
        position = last.header.position;
      }
      const stop = run.stop;
      if (stop.kind === 'large') {
        // Too large to read whole: from its file, chunk by chunk (src/replay/large-segment.ts).
        const applied = await applyLargeSegmentOrThrow(fd, stop.location, stop.file, {
          databaseId,
          position: stop.position,
          checksum: expected,
        });
        hashesKept = false; // it wrote the file without updating the table: the file is hashed at the end
        pageSize = applied.pageSize;
        expected = applied.postChecksum;
        position = applied.position;
        continue;
      }
      if (stop.kind === 'limit' || (stop.kind === 'end' && readingAhead)) continue;
      if (stop.kind === 'corrupt') throw new LitebaseError(stop.code, stop.message);
      if (stop.kind === 'diverged') {
        throw new LitebaseError(
          'LOG_CHAIN_BROKEN',
          `${stop.file} starts from checksum ${formatChecksum(stop.preChecksum)}, expected ${formatChecksum(expected)}`,
        );
      }
      if (position < newest) {
        throw new LitebaseError('LOG_GAP', `the log of database ${databaseId} has no segment ${position + 1n} (it goes on to ${newest})`);
      }
      break;
    }
    // The state file will name this position: a power loss must not leave the file behind it
    // (that would cost a rebuild from the whole log).
    fsyncSync(fd);
  } finally {
    closeSync(fd);
    await prefetcher?.close();
  }
  return { position, expectedChecksum: expected, pageSize, replayedSegments: Number(position - from.position), hashesKept };
}

/** applyLargeSegment for a replay, where whatever stops it is an error of the log (as for a run). */
async function applyLargeSegmentOrThrow(
  fd: number,
  location: SegmentLocation,
  file: string,
  start: LargeApplyStart,
): Promise<SegmentHeader> {
  const outcome = await applyLargeSegment(fd, location, start, undefined, file);
  if (outcome.kind === 'applied') return outcome.header;
  if (outcome.kind === 'missing')
    throw new LitebaseError('LOG_GAP', `the log of database ${start.databaseId} has no segment ${start.position} any more`);
  if (outcome.kind === 'diverged') {
    throw new LitebaseError(
      'LOG_CHAIN_BROKEN',
      `${file} starts from checksum ${formatChecksum(outcome.preChecksum)}, expected ${formatChecksum(start.checksum)}`,
    );
  }
  throw new LitebaseError(outcome.code, outcome.message);
}

/** The read-ahead threads are only a speed-up: without them the log is read on this thread. */
export function readAheadFailed(error: unknown, logger: Logger): undefined {
  logger.warn({ err: error }, 'reading the log ahead on worker threads failed; reading it on the main thread');
  return undefined;
}

/**
 * Bring the local copy to the end of the log and prove it: the rolling checksum of the file must
 * equal the last segment's post-checksum. If the local copy is damaged, it is thrown away and
 * rebuilt from the whole log. When the log no longer starts right after the local state (the
 * compactor deleted segments it had archived), the file is first rebuilt from the newest checkpoint
 * in `checkpoints` (by default the log folder's sibling), then the log after it is replayed.
 */
export async function recoverLocalCopy(
  paths: LocalCopyPaths,
  log: LogDirectory,
  databaseId: string,
  logger: Logger,
  checkpoints: CheckpointDirectory = CheckpointDirectory.besideLog(log.dir),
): Promise<RecoveredCopy> {
  // Never trust a local WAL: it can hold transactions whose segment was never made durable.
  await removeIfPresent(`${paths.sqliteFile}-wal`);
  await removeIfPresent(`${paths.sqliteFile}-shm`);

  const state = readLocalState(paths.stateFile);
  let from = { position: 0n, checksum: 0n };
  const haveFile = await fs.stat(paths.sqliteFile).then(
    () => true,
    () => false,
  );
  if (state && state.databaseId === databaseId && haveFile) {
    from = { position: BigInt(state.position), checksum: BigInt(`0x${state.checksum}`) };
  }
  let fromScratch = from.position === 0n;
  const handed = handedOver.get(path.resolve(paths.sqliteFile));
  handedOver.delete(path.resolve(paths.sqliteFile));
  const known =
    handed && handed.databaseId === databaseId && handed.position === from.position && handed.hashes.checksum === from.checksum
      ? handed
      : undefined;

  let gapRetries = 0;
  for (let attempt = 0; attempt < 2; attempt++) {
    let outcome: ReplayOutcome;
    let checkpoint: bigint | undefined;
    let loaded: PageHashTable | undefined;
    try {
      const start = await startFromCheckpointIfCompacted(paths, log, checkpoints, databaseId, from, logger);
      checkpoint = start.checkpoint;
      // Hashes handed over for the state the replay starts from describe the file as a loaded checkpoint's do.
      loaded = start.hashes ?? (known !== undefined && start.position === known.position ? known.hashes : undefined);
      outcome = await replayLog(paths, log, databaseId, start, logger, loaded);
      if (outcome.pageSize === 0 && start.pageSize !== undefined) outcome.pageSize = start.pageSize;
    } catch (error) {
      // The log was compacted while it was replayed (its segments deleted): past the checkpoint that
      // was loaded, or, for a replay that began at the log's start because no checkpoint was needed
      // then, past where the replay began (a fresh node that starts while a compaction trims). Start
      // again from the newest checkpoint.
      const compactedMeanwhile =
        error instanceof LitebaseError &&
        error.code === 'LOG_GAP' &&
        gapRetries < 3 &&
        (checkpoint !== undefined || (await checkpoints.positions()).some((position) => position > from.position));
      if (compactedMeanwhile) {
        gapRetries += 1;
        attempt -= 1;
        logger.warn({ err: error }, 'the log was compacted while it was replayed; loading the newest checkpoint');
        continue;
      }
      if (fromScratch || !(error instanceof LitebaseError) || error.code !== 'LOG_CHAIN_BROKEN') throw error;
      logger.warn({ err: error }, 'local state does not match the log; rebuilding the local copy from the whole log');
      from = { position: 0n, checksum: 0n };
      fromScratch = true;
      continue;
    }
    const pageSize = outcome.pageSize || (await pageSizeOfFile(paths.sqliteFile));
    // A checkpoint just loaded was verified page by page and the replay kept its hashes: no second
    // pass over the whole file (a bootstrap would read and hash it twice). Otherwise the file on
    // disk is what has to be proven.
    const hashes = loaded && outcome.hashesKept ? loaded : await scanPageHashes(paths.sqliteFile, pageSize);
    if (hashes.checksum === outcome.expectedChecksum) {
      await writeLocalState(paths.stateFile, {
        databaseId,
        position: outcome.position.toString(),
        checksum: formatChecksum(hashes.checksum),
      });
      return {
        position: outcome.position,
        hashes,
        replayedSegments: outcome.replayedSegments,
        ...(checkpoint === undefined ? {} : { checkpoint }),
      };
    }
    if (fromScratch) {
      throw new LitebaseError(
        'LOCAL_REBUILD_MISMATCH',
        `rebuilding ${paths.sqliteFile} from the log gave checksum ${formatChecksum(hashes.checksum)}, the log says ${formatChecksum(outcome.expectedChecksum)}`,
      );
    }
    logger.warn(
      { file: paths.sqliteFile, found: formatChecksum(hashes.checksum), expected: formatChecksum(outcome.expectedChecksum) },
      'local copy is damaged; rebuilding it from the whole log',
    );
    from = { position: 0n, checksum: 0n };
    fromScratch = true;
  }
  throw new LitebaseError('LOCAL_REBUILD_FAILED', `could not rebuild ${paths.sqliteFile} from the log`);
}

/**
 * Where replay starts: `from` when the log holds the segment right after it (or nothing newer
 * exists anywhere); otherwise the newest checkpoint, loaded into the file, when the log after that
 * checkpoint is complete. A checkpoint replaced by a newer one while it was read is retried.
 */
async function startFromCheckpointIfCompacted(
  paths: LocalCopyPaths,
  log: LogDirectory,
  checkpoints: CheckpointDirectory,
  databaseId: string,
  from: { position: bigint; checksum: bigint },
  logger: Logger,
): Promise<{ position: bigint; checksum: bigint; checkpoint?: bigint; pageSize?: number; hashes?: PageHashTable }> {
  for (let attempt = 1; ; attempt++) {
    const after = (await log.positions()).filter((position) => position > from.position);
    if (after[0] === from.position + 1n) return from;
    const newest = (await checkpoints.positions()).filter((position) => position > from.position).at(-1);
    if (newest === undefined) return from; // nothing newer than the local state, or a gap replay reports
    const rest = after.filter((position) => position > newest);
    if (rest.length > 0 && rest[0] !== newest + 1n) {
      throw new LitebaseError(
        'LOG_GAP',
        `the log of database ${databaseId} continues at ${rest[0]} after checkpoint ${newest}; segment ${newest + 1n} is missing`,
      );
    }
    try {
      logger.info(
        { checkpoint: newest.toString(), localPosition: from.position.toString() },
        'the log starts after the local copy; loading the newest checkpoint',
      );
      const info = await checkpoints.describe(newest, databaseId);
      const started = Date.now();
      const hashes = await loadCheckpoint(info, paths.sqliteFile, databaseId);
      logger.info(
        { checkpoint: newest.toString(), kind: info.kind, parts: info.parts.length, bytes: info.bytes, durationMs: Date.now() - started },
        'checkpoint loaded',
      );
      return { position: newest, checksum: info.checksum, checkpoint: newest, pageSize: info.pageSize, hashes };
    } catch (error) {
      // A newer checkpoint replaced this one and its files were collected while it was read: look again.
      const gone = systemErrorCode(error) === 'ENOENT' || (error instanceof LitebaseError && error.code === 'CHECKPOINT_RANGE_MISSING');
      if (gone && attempt < 3) continue;
      throw error;
    }
  }
}

/** The page size recorded in a SQLite header (bytes 16-17; 1 means 65536). */
async function pageSizeOfFile(sqliteFile: string): Promise<number> {
  try {
    const handle = await fs.open(sqliteFile, 'r');
    try {
      const header = Buffer.alloc(100);
      const { bytesRead } = await handle.read(header, 0, 100, 0);
      if (bytesRead < 100) return DEFAULT_PAGE_SIZE;
      const raw = header.readUInt16BE(16);
      return raw === 1 ? 65536 : raw;
    } finally {
      await handle.close();
    }
  } catch {
    return DEFAULT_PAGE_SIZE;
  }
}
