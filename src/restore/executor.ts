import { promises as fs } from 'node:fs';
import path from 'node:path';
import { BundleFormatError, readBundleFile, sha256File } from '../compactor/bundle.js';
import { loadCheckpointIntoFile } from '../compactor/checkpoints.js';
import { applyPagesToFile, scanPageHashes } from '../engine/local-copy.js';
import { errorMessage, LitebaseError, systemErrorCode } from '../errors.js';
import type { LogDirectory } from '../log/log-directory.js';
import { formatChecksum, pageHash, PageHashTable } from '../log/rolling-checksum.js';
import { decodeSegment, SegmentFormatError, type PageImage, type SegmentHeader } from '../log/segment-codec.js';
import type { ObjectStore } from '../storage/object-store.js';
import type { PlanStep, RestorePlan } from './planner.js';

/**
 * Carries out a restore plan into a new SQLite file: the checkpoint's pages first (downloaded to a
 * temp file, verified, streamed in), then the segments in position order, each checked like a
 * replica checks it (database id, position, pre-checksum, post-checksum), until the target. At the
 * end the whole file is hashed again and must give the checksum the log promised. Nothing is ever
 * applied that failed a check; every error names the object key or file it came from.
 *
 * The file keeps the pages exactly as the Primary wrote them, so it is in WAL mode (header bytes
 * 18/19 = 2); `makeStandalone` turns it into a rollback-journal file after the checks.
 */

export interface RestoreProgress {
  phase: 'checkpoint' | 'segments' | 'verify' | 'done';
  /** Bytes read so far (checkpoint, bundles, log segments). */
  bytes: number;
  totalBytes: number;
  segments: number;
  totalSegments: number;
  /** 0..100 by bytes. */
  percent: number;
  /** The position the file has reached. */
  position: string;
}

export interface RestoreOutcome {
  position: bigint;
  /** Commit time of the position reached (the checkpoint's for a bare checkpoint; 0 for nothing). */
  timeMs: number;
  checksum: bigint;
  pageSize: number;
  databaseSizePages: number;
  segments: number;
  bytes: number;
  durationMs: number;
  /** The page hashes of the result (for writing it as a checkpoint without hashing it again). */
  hashes: PageHashTable;
}

export interface ExecuteOptions {
  /** Where downloads go; removed afterwards. */
  workDir: string;
  store?: ObjectStore;
  log?: LogDirectory;
  onProgress?: (progress: RestoreProgress) => void;
  /** Throws to give up between steps. */
  checkStop?: () => void;
}

const DEFAULT_PAGE_SIZE = 4096;

export async function executeRestore(plan: RestorePlan, outputFile: string, options: ExecuteOptions): Promise<RestoreOutcome> {
  const started = Date.now();
  await fs.mkdir(options.workDir, { recursive: true });
  await fs.mkdir(path.dirname(outputFile), { recursive: true });
  const state = {
    bytes: 0,
    segments: 0,
    position: plan.basePosition,
    timeMs: 0,
    hashes: undefined as PageHashTable | undefined,
  };
  const report = (phase: RestoreProgress['phase']): void => {
    const percent = phase === 'done' ? 100 : plan.totalBytes > 0 ? Math.min(99.9, (100 * state.bytes) / plan.totalBytes) : 0;
    options.onProgress?.({
      phase,
      bytes: state.bytes,
      totalBytes: plan.totalBytes,
      segments: state.segments,
      totalSegments: plan.totalSegments,
      percent: Math.round(percent * 10) / 10,
      position: state.position.toString(),
    });
  };

  try {
    // 1. The base: a checkpoint, or an empty file.
    if (plan.base) {
      const base = plan.base;
      report('checkpoint');
      let file: string;
      let name: string;
      if (base.location.kind === 'archive') {
        name = base.location.key;
        file = path.join(options.workDir, 'base.ckpt');
        await requireStore(options, name).getToFile(name, file);
        if (base.location.sha256) await requireSha256(file, base.location.sha256, name);
      } else {
        name = base.location.file;
        file = base.location.file;
      }
      const loaded = await loadCheckpointIntoFile(file, outputFile, { databaseId: plan.databaseId, name }).catch((error: unknown) => {
        throw archiveError(error, name);
      });
      if (loaded.header.position !== base.position) {
        throw new LitebaseError('ARCHIVE_CORRUPT', `${name} holds position ${loaded.header.position}, expected ${base.position}`, { details: { key: name } });
      }
      if (base.location.kind === 'archive') await fs.rm(file, { force: true });
      state.hashes = loaded.hashes;
      state.timeMs = loaded.header.commitTimeMs;
      state.bytes += base.bytes;
    } else {
      await fs.writeFile(outputFile, new Uint8Array(0));
    }

    // 2. The segments.
    const handle = await fs.open(outputFile, 'r+');
    try {
      let done = false;
      for (const step of plan.steps) {
        options.checkStop?.();
        report('segments');
        const apply = async (segment: { header: SegmentHeader; pages: PageImage[] }, name: string): Promise<boolean> => {
          const { header, pages } = segment;
          if (header.position < step.from) return true; // a bundle overlapping what was applied already
          if (header.position > step.to || stopsBefore(plan, header)) {
            done = 'timeMs' in plan.target ? true : header.position > plan.lastPosition;
            return false;
          }
          if (header.position !== state.position + 1n) {
            throw new LitebaseError('ARCHIVE_CORRUPT', `${name}: holds position ${header.position} where ${state.position + 1n} was expected`, { details: { key: name } });
          }
          if (header.databaseId !== plan.databaseId) {
            throw new LitebaseError('ARCHIVE_CORRUPT', `${name}: position ${header.position} belongs to database ${header.databaseId}, not ${plan.databaseId}`, { details: { key: name } });
          }
          state.hashes ??= new PageHashTable(header.pageSize);
          if (header.preChecksum !== state.hashes.checksum) {
            throw new LitebaseError(
              'RESTORE_CHAIN_BROKEN',
              `${name}: position ${header.position} starts from checksum ${formatChecksum(header.preChecksum)}, the restored database has ${formatChecksum(state.hashes.checksum)}`,
              { details: { key: name } },
            );
          }
          await applyPagesToFile(handle, pages, header.pageSize, header.databaseSizePages);
          state.hashes.apply(
            pages.map(({ pageNumber, data }) => ({ pageNumber, hash: pageHash(pageNumber, data) })),
            header.databaseSizePages,
          );
          if (state.hashes.checksum !== header.postChecksum) {
            throw new LitebaseError(
              'RESTORE_CHAIN_BROKEN',
              `${name}: after position ${header.position} the restored database has checksum ${formatChecksum(state.hashes.checksum)}, the segment says ${formatChecksum(header.postChecksum)}`,
              { details: { key: name } },
            );
          }
          state.position = header.position;
          state.timeMs = header.commitTimeMs;
          state.segments += 1;
          if (state.segments % 64 === 0) report('segments');
          return true;
        };
        await runStep(step, options, apply, (bytes) => {
          state.bytes += bytes;
        });
        if (done) break;
      }
      await handle.sync();
    } finally {
      await handle.close();
    }
    if ('position' in plan.target && state.position !== plan.target.position) {
      throw new LitebaseError('RESTORE_INCOMPLETE', `the restore reached position ${state.position}, not ${plan.target.position}: segments are missing`);
    }

    // 3. Prove the file: hash every page again.
    report('verify');
    const hashes = state.hashes ?? new PageHashTable(DEFAULT_PAGE_SIZE);
    const scanned = await scanPageHashes(outputFile, hashes.pageSize);
    if (scanned.checksum !== hashes.checksum || scanned.databaseSizePages !== hashes.databaseSizePages) {
      throw new LitebaseError(
        'RESTORE_VERIFY_FAILED',
        `${outputFile}: reads back as checksum ${formatChecksum(scanned.checksum)} (${scanned.databaseSizePages} pages), expected ${formatChecksum(hashes.checksum)} (${hashes.databaseSizePages} pages)`,
      );
    }
    report('done');
    return {
      position: state.position,
      timeMs: state.timeMs,
      checksum: hashes.checksum,
      pageSize: hashes.pageSize,
      databaseSizePages: hashes.databaseSizePages,
      segments: state.segments,
      bytes: state.bytes,
      durationMs: Date.now() - started,
      hashes,
    };
  } finally {
    await fs.rm(options.workDir, { recursive: true, force: true });
  }
}

function stopsBefore(plan: RestorePlan, header: SegmentHeader): boolean {
  return 'timeMs' in plan.target ? header.commitTimeMs > plan.target.timeMs : header.position > plan.target.position;
}

/** Feed the segments of one step to `apply` until it answers false. */
async function runStep(
  step: PlanStep,
  options: ExecuteOptions,
  apply: (segment: { header: SegmentHeader; pages: PageImage[] }, name: string) => Promise<boolean>,
  addBytes: (bytes: number) => void,
): Promise<void> {
  const { location } = step.run;
  if (location.kind === 'archive') {
    const key = location.key;
    const file = path.join(options.workDir, `bundle-${step.run.first}-${step.run.last}.seg`);
    await requireStore(options, key).getToFile(key, file);
    try {
      if (location.sha256) await requireSha256(file, location.sha256, key);
      addBytes(step.run.bytes);
      for await (const { offset, segment } of readBundleFile(file, key)) {
        let decoded: ReturnType<typeof decodeSegment>;
        try {
          decoded = decodeSegment(segment);
        } catch (error) {
          throw archiveError(error, `${key} (record at offset ${offset})`);
        }
        if (!(await apply(decoded, `${key} (record at offset ${offset})`))) return;
      }
    } catch (error) {
      throw archiveError(error, key);
    } finally {
      await fs.rm(file, { force: true });
    }
    return;
  }
  const log = options.log;
  if (!log) throw new LitebaseError('RESTORE_SOURCE_MISSING', 'the plan reads the shared log, which this restore cannot reach');
  for (let position = step.from; position <= step.to; position++) {
    const file = log.segmentPath(position);
    let bytes: Buffer;
    try {
      bytes = await log.read(position);
    } catch (error) {
      if (systemErrorCode(error) === 'ENOENT') {
        throw new LitebaseError('RESTORE_SOURCE_VANISHED', `${file} was deleted while the restore read the log (a compaction archived it); start the restore again`, {
          status: 503,
          retryAfterSeconds: 1,
        });
      }
      throw error;
    }
    addBytes(bytes.length);
    let decoded: ReturnType<typeof decodeSegment>;
    try {
      decoded = decodeSegment(bytes);
    } catch (error) {
      throw archiveError(error, file);
    }
    if (!(await apply(decoded, file))) return;
  }
}

function requireStore(options: ExecuteOptions, key: string): ObjectStore {
  if (!options.store) throw new LitebaseError('RESTORE_SOURCE_MISSING', `the plan reads ${key} from the object store, which this restore has not opened`);
  return options.store;
}

async function requireSha256(file: string, expected: string, key: string): Promise<void> {
  const found = await sha256File(file);
  if (found !== expected) {
    throw new LitebaseError('ARCHIVE_CORRUPT', `${key}: the downloaded object hashes to sha256 ${found}, the archive index recorded ${expected}`, {
      details: { key },
    });
  }
}

/** Damaged archive content becomes ARCHIVE_CORRUPT naming the object; other errors pass. */
function archiveError(error: unknown, name: string): unknown {
  if (error instanceof BundleFormatError) return error;
  if (error instanceof LitebaseError && error.code === 'ARCHIVE_CORRUPT') return error;
  if (error instanceof SegmentFormatError || (error instanceof LitebaseError && error.code.startsWith('CHECKPOINT_'))) {
    const message = errorMessage(error);
    return new LitebaseError('ARCHIVE_CORRUPT', message.startsWith(name) ? message : `${name}: ${message}`, {
      details: { key: name, reason: (error as LitebaseError).code },
      cause: error,
    });
  }
  return error;
}

/**
 * Make a restored file a plain rollback-journal SQLite file (header bytes 18/19 from 2/2 to 1/1),
 * so it opens anywhere without -wal/-shm files. Done after every checksum was verified: the
 * checksum of the database at the restored position covers the bytes as the Primary wrote them.
 */
export async function makeStandalone(sqliteFile: string): Promise<void> {
  const handle = await fs.open(sqliteFile, 'r+');
  try {
    const { size } = await handle.stat();
    if (size < 100) return;
    const versions = Buffer.alloc(2);
    await handle.read(versions, 0, 2, 18);
    if (versions[0] === 2 && versions[1] === 2) {
      await handle.write(Buffer.from([1, 1]), 0, 2, 18);
      await handle.sync();
    }
  } finally {
    await handle.close();
  }
}
