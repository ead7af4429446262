import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { bundleFormatOf, openBundle, PageMajorBundle } from '../format/bundle-codec.js';
import { forEachPick } from '../format/bundle-picks.js';
import { collectNewestFirst, type SegmentPages, type SegmentSource } from '../format/segment-source.js';
import { LitebaseError } from '../errors.js';
import type { LogDirectory } from '../log/log-directory.js';
import { formatChecksum, PageHashTable } from '../format/rolling-checksum.js';
import { decodeSegment, type PageImage, type SegmentHeader } from '../format/segment-codec.js';
import { LARGE_SEGMENT_BYTES } from '../log/segment-runs.js';
import type { SegmentFileReader } from '../log/segment-stream.js';
import { inSharedMemory, type ObjectStore, type SharedAllocator } from '../storage/object-store.js';
import { SharedBufferPool } from '../threads/shared-buffer-pool.js';
import { releaseFreeMemory } from '../native/malloc-tuning.js';
import { RestoreHasher } from './restore-hasher.js';
import { warmUpPageWriters, writePicksOnThreads } from './page-writers.js';
import { OutputFile } from './output-file.js';
import type { CheckpointSource, PlanStep, RestorePlan } from './planner.js';
import { BaseCheckpoint, type BasePart, type ManifestBase, type PartLocation } from './base-checkpoint.js';
import { assertRangeHeader, decodeManifest, type CheckpointManifest, type ManifestRange } from '../format/checkpoint-manifest.js';
import { rangeKey } from '../archive/archive-keys.js';
import { archiveError, requireStore, vanishedAs } from './source-errors.js';

/**
 * Carries out a restore plan into a new SQLite file (docs/FORMAT.md §11.4). Only the state at the
 * target matters, so the history is read **newest first** and every page is written once, with the
 * newest image it has at or before the target: bundles from the last one back, then the base
 * checkpoint for the pages no segment wrote (base-checkpoint.ts: a range checkpoint's range files,
 * or a legacy checkpoint). A page that a later segment cut off (the database
 * shrank below it) takes no older image. Nothing is replayed segment by segment.
 *
 * Checks: nothing is decompressed before it is verified (a format 2 bundle's tables by their
 * checksum and each compressed block or older image by its CRC-32; segments, format 1 bundles and
 * checkpoints by their trailers, or by the SHA-256 the index or the manifest recorded); the segments form one
 * unbroken run of positions and checksums from the base to the target, all of this database; and
 * the rolling checksum of the pages written (the page hashes a format 2 bundle records, other
 * pages hashed as they are written, pages never written hashed as zeros) must equal the checksum
 * the log recorded at the target. A file that fails is never handed back.
 *
 * The file keeps the pages exactly as the Primary wrote them, so it is in WAL mode (header bytes
 * 18/19 = 2); `standalone` turns it into a rollback-journal file after the checks.
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
  /** The position the file is restored to (the base until the target is known). */
  position: string;
}

export interface RestoreOutcome {
  position: bigint;
  /** Commit time of the position reached (the checkpoint's for a bare checkpoint; 0 for nothing). */
  timeMs: number;
  checksum: bigint;
  pageSize: number;
  databaseSizePages: number;
  /** Segments between the base and the target (all of them are accounted for). */
  segments: number;
  bytes: number;
  durationMs: number;
  /** The page hashes of the result (for writing it as a checkpoint without hashing it again), built on demand. */
  hashes: () => PageHashTable;
}

export interface ExecuteOptions {
  /** Where downloads go; removed afterwards. */
  workDir: string;
  store?: ObjectStore;
  log?: LogDirectory;
  onProgress?: (progress: RestoreProgress) => void;
  /** Throws to give up between steps. */
  checkStop?: () => void;
  /**
   * Use worker threads: hash on one, and decode and write the larger bundle steps on the
   * page-writing threads (default: when the plan reads a few megabytes or more).
   */
  hashThread?: boolean;
  /**
   * Free the memory the restore dropped every this many bytes written (output-file.ts). A server
   * sets it: it goes on serving beside the restore. A one-shot command does not: there it only cost
   * time (a 183 MiB restore 1.5 -> 1.8 s), its peak was the same.
   */
  releaseMemoryEveryBytes?: number;
  /** A bundle step picking at least this many bytes of images goes to the page-writing threads (default 1 MiB; tests lower it). */
  threadWriteMinBytes?: number;
  /** Leave a rollback-journal file (header bytes 18/19 = 1), not the WAL-mode pages as written: see OutputFile.complete. */
  standalone?: boolean;
}

const DEFAULT_PAGE_SIZE = 4096;
/**
 * Bundles downloaded ahead of the one being applied. One overlaps the next download with the work
 * on this one; more only held memory (a bundle is tens of MiB): a 494 MiB archive restored as fast
 * with 1 as with 3, at 280 MiB of RSS instead of 417 (bench/README.md "restore").
 */
const PREFETCH = 1;
/** Restores reading at least this much hash on a worker thread, and decode and write on page-writing threads. */
const HASH_THREAD_MIN_BYTES = 8 * 1024 * 1024;
/** A bundle step picking at least this much goes to the page-writing threads (a round trip costs ~0.1 ms). */
const THREAD_WRITE_MIN_BYTES = 1024 * 1024;

/** A time target met a segment committed after it that an older step holds: restore to just before it. */
class StopEarlier extends Error {
  constructor(readonly position: bigint) {
    super(`restart at ${position}`);
  }
}

export async function executeRestore(plan: RestorePlan, outputFile: string, options: ExecuteOptions): Promise<RestoreOutcome> {
  await fs.mkdir(options.workDir, { recursive: true });
  await fs.mkdir(path.dirname(outputFile), { recursive: true });
  const started = Date.now();
  try {
    try {
      return await restoreOnce(plan, outputFile, options, started);
    } catch (error) {
      if (!(error instanceof StopEarlier)) throw error;
      // Commit times went backwards (a clock stepped back across a failover): the target is the
      // segment before the first one committed after the time, as FORMAT.md §11.4 says.
      return await restoreOnce(
        { ...plan, target: { position: error.position }, lastPosition: error.position },
        outputFile,
        options,
        started,
      );
    }
  } finally {
    await fs.rm(options.workDir, { recursive: true, force: true });
  }
}

async function restoreOnce(plan: RestorePlan, outputFile: string, options: ExecuteOptions, started: number): Promise<RestoreOutcome> {
  const progress = { bytes: 0, segments: 0, position: plan.basePosition };
  const report = (phase: RestoreProgress['phase']): void => {
    const percent = phase === 'done' ? 100 : plan.totalBytes > 0 ? Math.min(99.9, (100 * progress.bytes) / plan.totalBytes) : 0;
    options.onProgress?.({
      phase,
      bytes: progress.bytes,
      totalBytes: plan.totalBytes,
      segments: progress.segments,
      totalSegments: plan.totalSegments,
      percent: Math.round(percent * 10) / 10,
      position: progress.position.toString(),
    });
  };

  const threads = options.hashThread ?? plan.totalBytes >= HASH_THREAD_MIN_BYTES;
  const hasher = new RestoreHasher(threads);
  // Only bundles from the archive are written on the page-writing threads: a restore from the shared
  // log alone starts none (each thread holds some 15 MiB).
  if (threads && plan.steps.some((step) => step.run.location.kind !== 'log')) warmUpPageWriters();
  // Bundles read for the page-writing threads go into reused shared memory (shared-buffer-pool.ts):
  // one per step downloading ahead, being planned or being written (output-file.ts, THREAD_WRITES_IN_FLIGHT).
  const bundleMemory = threads ? new SharedBufferPool(PREFETCH + 2) : undefined;
  const loader = new SourceLoader(plan.steps, options, hasher, bundleMemory?.take ?? false);
  let output: OutputFile | undefined;
  try {
    // 1. The segments, newest step first.
    let target: SegmentHeader | undefined;
    /** The first position the newer steps applied, and its pre-checksum: this step must end right before it, at that checksum. */
    let nextPosition: bigint | undefined;
    let nextPreChecksum = 0n;
    /** The smallest database size from the segments already walked (a page above it was cut off). */
    let minSize = Number.POSITIVE_INFINITY;
    report('segments');
    for (let i = plan.steps.length - 1; i >= 0; i--) {
      options.checkStop?.();
      const step = plan.steps[i] as PlanStep;
      const source = await loader.take(i);
      progress.bytes += stepBytes(step);
      const { headers } = source;
      const lo = indexOf(headers, step.from, source.name);
      let hi = indexOf(headers, step.to, source.name);
      if (!target) {
        hi = cutAtTarget(headers, lo, hi, plan);
        if (hi < lo) continue; // nothing of this step is at or before the target
        target = headers[hi] as SegmentHeader;
        output = await OutputFile.create(outputFile, target.pageSize, target.databaseSizePages, hasher, options.releaseMemoryEveryBytes);
        progress.position = target.position;
      } else {
        const last = headers[hi] as SegmentHeader;
        if (last.position + 1n !== nextPosition || last.postChecksum !== nextPreChecksum) {
          throw new LitebaseError(
            'RESTORE_CHAIN_BROKEN',
            `${source.name}: ends at position ${last.position} with checksum ${formatChecksum(last.postChecksum)}, the next step starts at ${nextPosition} from ${formatChecksum(nextPreChecksum)}`,
            { details: { key: source.name } },
          );
        }
        if ('timeMs' in plan.target) {
          const late = headers.slice(lo, hi + 1).find((header) => header.commitTimeMs > (plan.target as { timeMs: number }).timeMs);
          if (late) throw new StopEarlier(late.position - 1n);
        }
      }
      const out = output as OutputFile;
      checkRun(headers, lo, hi, plan.databaseId, out.pageSize, source.name);
      // minAfter[k]: the smallest database size of the segments after lo + k, up to the target.
      const minAfter = new Float64Array(hi - lo + 1);
      let running = minSize;
      for (let k = hi - lo; k >= 0; k--) {
        minAfter[k] = running;
        running = Math.min(running, (headers[lo + k] as SegmentHeader).databaseSizePages);
      }
      const want = (pageNumber: number, index: number): boolean => pageNumber <= (minAfter[index - lo] as number) && !out.has(pageNumber);
      out.source = source.name;
      const bundle = threads && source instanceof PageMajorBundle ? source : undefined;
      const picks = bundle?.plan(lo, hi, want);
      if (bundle && picks && picks.pages * picks.pageSize >= (options.threadWriteMinBytes ?? THREAD_WRITE_MIN_BYTES)) {
        // Which page takes which image is decided now, from the tables: the older steps see these
        // pages as taken while the threads still decode and write them.
        forEachPick(picks.list, (pageNumber, hashHigh, hashLow) => out.claim(pageNumber, hashHigh, hashLow));
        const bytes = inSharedMemory(bundle.bytes, bundleMemory?.take);
        const writing = writePicksOnThreads(bytes, picks, out.fd, bundle.name);
        // Reused once every thread is done with it (after a failure some may still read it: then never).
        writing.then(
          () => bundleMemory?.give(bytes),
          () => undefined,
        );
        await out.writeOnThreads(writing);
      } else {
        await source.collect(
          lo,
          hi,
          want,
          (pageNumber, image, recordedHash) => out.put(pageNumber, image, recordedHash),
          () => out.settle(),
        );
        out.flush();
      }
      await out.room();
      minSize = running;
      const firstHeader = headers[lo] as SegmentHeader;
      nextPosition = firstHeader.position;
      nextPreChecksum = firstHeader.preChecksum;
      progress.segments += hi - lo + 1;
      report('segments');
    }
    if (target && nextPosition !== plan.basePosition + 1n) {
      throw new LitebaseError(
        'RESTORE_CHAIN_BROKEN',
        `the segments start at position ${nextPosition}, the base of the restore is position ${plan.basePosition}`,
      );
    }
    if (target && !plan.base && nextPreChecksum !== 0n) {
      throw new LitebaseError(
        'RESTORE_CHAIN_BROKEN',
        `position 1 starts from checksum ${formatChecksum(nextPreChecksum)}, an empty database has 0`,
      );
    }
    if ('position' in plan.target && (target?.position ?? plan.basePosition) !== plan.target.position) {
      throw new LitebaseError(
        'RESTORE_INCOMPLETE',
        `the restore reached position ${target?.position ?? plan.basePosition}, not ${plan.target.position}: segments are missing`,
      );
    }

    // 2. The base: a checkpoint for the pages no segment wrote, or an empty database.
    let expected = target?.postChecksum ?? 0n;
    let timeMs = target?.commitTimeMs ?? 0;
    if (plan.base) {
      report('checkpoint');
      const base = await openBase(plan, plan.base, options);
      try {
        if (target && base.checksum !== nextPreChecksum) {
          throw new LitebaseError(
            'RESTORE_CHAIN_BROKEN',
            `position ${plan.basePosition + 1n} starts from checksum ${formatChecksum(nextPreChecksum)}, the checkpoint ${base.name} has ${formatChecksum(base.checksum)}`,
            { details: { key: base.name } },
          );
        }
        output ??= await OutputFile.create(outputFile, base.pageSize, base.databaseSizePages, hasher, options.releaseMemoryEveryBytes);
        if (base.pageSize !== output.pageSize) {
          throw new LitebaseError(
            'RESTORE_CHAIN_BROKEN',
            `${base.name} has pages of ${base.pageSize} bytes, the segments after it ${output.pageSize}`,
          );
        }
        // Pages above the smallest size a later segment had were cut off: they take no image from here.
        const last = Math.min(minSize, base.databaseSizePages, output.databaseSizePages);
        const out = output;
        out.source = base.name;
        await base.walk(
          last,
          (pageNumber) => out.has(pageNumber),
          (pageNumber, image) => {
            if (pageNumber <= last && !out.has(pageNumber)) out.put(pageNumber, image, undefined);
          },
          async () => {
            await out.settle();
            await out.room();
          },
        );
        if (!target) {
          expected = base.checksum;
          timeMs = base.commitTimeMs;
        }
      } finally {
        await base.release();
      }
      progress.bytes += plan.base.bytes;
    }
    output ??= await OutputFile.create(outputFile, DEFAULT_PAGE_SIZE, 0, hasher, options.releaseMemoryEveryBytes);

    // 3. The checksum of what was written must be the log's at the target.
    report('verify');
    const result = await output.finish();
    if (result.checksum !== expected) {
      throw new LitebaseError(
        'RESTORE_VERIFY_FAILED',
        `${outputFile}: the restored pages sum to checksum ${formatChecksum(result.checksum)} (${output.databaseSizePages} pages), position ${target?.position ?? plan.basePosition} has ${formatChecksum(expected)}`,
      );
    }
    await output.complete(options.standalone === true);
    report('done');
    return {
      position: target?.position ?? plan.basePosition,
      timeMs,
      checksum: result.checksum,
      pageSize: output.pageSize,
      databaseSizePages: output.databaseSizePages,
      segments: target ? Number(target.position - plan.basePosition) : 0,
      bytes: progress.bytes,
      durationMs: Date.now() - started,
      hashes: result.hashes,
    };
  } finally {
    loader.close();
    hasher.close();
    // No thread may still write into the file once it is closed (or restarted: StopEarlier).
    await output?.threadWritesSettled();
    await output?.close();
    releaseFreeMemory();
  }
}

/** The index of `position` in a run of headers that ascend by one. */
function indexOf(headers: readonly SegmentHeader[], position: bigint, name: string): number {
  const first = headers[0]?.position;
  const index = first === undefined ? -1 : Number(position - first);
  if (index < 0 || index >= headers.length || headers[index]?.position !== position) {
    throw new LitebaseError('ARCHIVE_CORRUPT', `${name}: does not hold position ${position}`, { details: { key: name } });
  }
  return index;
}

/** The last index in lo..hi at or before the target: a position, or the segment before the first committed after a time. */
function cutAtTarget(headers: readonly SegmentHeader[], lo: number, hi: number, plan: RestorePlan): number {
  const target = plan.target;
  for (let index = lo; index <= hi; index++) {
    const header = headers[index] as SegmentHeader;
    if ('timeMs' in target ? header.commitTimeMs > target.timeMs : header.position > target.position) return index - 1;
  }
  return hi;
}

/** Positions ascend by one and checksums chain (each pre-checksum the previous post-checksum), all of this database, one page size. */
function checkRun(headers: readonly SegmentHeader[], lo: number, hi: number, databaseId: string, pageSize: number, name: string): void {
  for (let index = lo; index <= hi; index++) {
    const header = headers[index] as SegmentHeader;
    if (header.databaseId !== databaseId) {
      throw new LitebaseError(
        'ARCHIVE_CORRUPT',
        `${name}: position ${header.position} belongs to database ${header.databaseId}, not ${databaseId}`,
        { details: { key: name } },
      );
    }
    if (header.pageSize !== pageSize) {
      throw new LitebaseError(
        'RESTORE_CHAIN_BROKEN',
        `${name}: position ${header.position} has pages of ${header.pageSize} bytes, the restore ${pageSize}`,
        { details: { key: name } },
      );
    }
    const previous = index > lo ? (headers[index - 1] as SegmentHeader) : undefined;
    if (previous && header.position !== previous.position + 1n) {
      throw new LitebaseError('ARCHIVE_CORRUPT', `${name}: position ${header.position} follows ${previous.position}`, {
        details: { key: name },
      });
    }
    if (previous && header.preChecksum !== previous.postChecksum) {
      throw new LitebaseError(
        'RESTORE_CHAIN_BROKEN',
        `${name}: position ${header.position} starts from checksum ${formatChecksum(header.preChecksum)}, position ${previous.position} ended at ${formatChecksum(previous.postChecksum)}`,
        { details: { key: name } },
      );
    }
  }
}

function stepBytes(step: PlanStep): number {
  if (step.run.location.kind === 'archive') return step.run.bytes;
  const count = Number(step.to - step.from + 1n);
  const runCount = Number(step.run.last - step.run.first + 1n);
  return Math.round((step.run.bytes * count) / Math.max(1, runCount));
}

/** The base checkpoint of a plan, described (a full checkpoint is opened and verified here; a range checkpoint's manifest read). */
async function openBase(plan: RestorePlan, source: CheckpointSource, options: ExecuteOptions): Promise<BaseCheckpoint> {
  const { databaseId } = plan;
  const context = { databaseId, workDir: options.workDir, ...(options.store ? { store: options.store } : {}) };
  const { location } = source;
  switch (location.kind) {
    case 'archive':
      return BaseCheckpoint.fromCheckpointFile(source, { kind: 'archive', key: location.key }, location.sha256, context);
    case 'shared':
      return BaseCheckpoint.fromCheckpointFile(source, { kind: 'shared', file: location.file }, undefined, context);
    case 'archive-manifest': {
      const key = location.key;
      const bytes = await requireStore(options.store, key).get(key);
      if (location.sha256) {
        const sha256 = createHash('sha256').update(bytes).digest('hex');
        if (sha256 !== location.sha256) {
          throw new LitebaseError(
            'ARCHIVE_CORRUPT',
            `${key}: the downloaded object hashes to sha256 ${sha256}, the archive index recorded ${location.sha256}`,
            {
              details: { key },
            },
          );
        }
      }
      const manifest = readManifest(bytes, key, source, databaseId);
      return BaseCheckpoint.fromManifest(
        manifestBase(key, manifest, databaseId, (range) => ({ kind: 'archive', key: rangeKey(plan.database, databaseId, range.file) })),
        context,
      );
    }
    case 'shared-manifest': {
      const file = location.file;
      const bytes = await vanishedAs(file, () => fs.readFile(file), 'the checkpoint');
      const manifest = readManifest(bytes, file, source, databaseId);
      return BaseCheckpoint.fromManifest(
        manifestBase(file, manifest, databaseId, (range) => ({ kind: 'shared', file: path.join(location.rangesDir, range.file) })),
        context,
      );
    }
  }
}

/** A manifest, decoded and checked against its place in the plan. */
function readManifest(bytes: Uint8Array, name: string, source: CheckpointSource, databaseId: string): CheckpointManifest {
  let manifest: CheckpointManifest;
  try {
    manifest = decodeManifest(bytes, name, databaseId);
  } catch (error) {
    throw archiveError(error, name);
  }
  if (manifest.position !== source.position) {
    throw new LitebaseError('ARCHIVE_CORRUPT', `${name} holds position ${manifest.position}, expected ${source.position}`, {
      details: { key: name },
    });
  }
  return manifest;
}

/** The parts of a range checkpoint: its ranges, each checked by the SHA-256 and the header rules the manifest gives it. */
function manifestBase(
  name: string,
  manifest: CheckpointManifest,
  databaseId: string,
  where: (range: ManifestRange) => PartLocation,
): ManifestBase {
  return {
    name,
    position: manifest.position,
    commitTimeMs: manifest.commitTimeMs,
    pageSize: manifest.pageSize,
    databaseSizePages: manifest.databaseSizePages,
    checksum: manifest.checksum,
    parts: manifest.ranges.map((range): BasePart => {
      const location = where(range);
      const partName = location.kind === 'archive' ? location.key : location.file;
      return {
        name: partName,
        location,
        firstPage: range.firstPage,
        pages: range.pages,
        sha256: range.sha256,
        checksum: range.checksum,
        listedBy: name,
        checkHeader: (header) => {
          assertRangeHeader(header, range, partName, databaseId);
          if (header.pageSize !== manifest.pageSize) {
            throw new LitebaseError(
              'CHECKPOINT_INVALID',
              `${partName} has pages of ${header.pageSize} bytes, its manifest ${manifest.pageSize}`,
              {
                details: { file: partName },
              },
            );
          }
        },
      };
    }),
  };
}

// ---- sources ------------------------------------------------------------------------------------

/** Opens the steps' sources newest first, keeping PREFETCH bundles downloading ahead. */
class SourceLoader {
  private readonly pending = new Map<number, Promise<SegmentSource>>();
  /** Steps are taken from the last down: an index at or above this one was taken already. */
  private lowestTaken = Number.POSITIVE_INFINITY;

  constructor(
    private readonly steps: readonly PlanStep[],
    private readonly options: ExecuteOptions,
    private readonly hasher: RestoreHasher,
    /** Bundles are read into shared memory (from this allocator), for the page-writing threads. */
    private readonly shared: false | SharedAllocator,
  ) {}

  take(index: number): Promise<SegmentSource> {
    this.start(index);
    this.start(index - 1);
    const source = this.pending.get(index) as Promise<SegmentSource>;
    this.pending.delete(index);
    this.lowestTaken = index;
    // The next one downloads beside this one; those after it once this one is in (the first
    // bundles do not share the disk with the whole prefetch).
    const ahead = (): void => {
      for (let next = index - 2; next >= Math.max(0, index - PREFETCH); next--) this.start(next);
    };
    source.then(ahead, ahead);
    return source;
  }

  close(): void {
    this.pending.clear();
  }

  private start(index: number): void {
    if (this.pending.has(index) || index < 0 || index >= this.lowestTaken) return;
    const promise = openStep(this.steps[index] as PlanStep, this.options, this.hasher, this.shared);
    promise.catch(() => undefined); // awaited (and thrown) by take(); never unhandled meanwhile
    this.pending.set(index, promise);
  }
}

async function openStep(
  step: PlanStep,
  options: ExecuteOptions,
  hasher: RestoreHasher,
  shared: false | SharedAllocator,
): Promise<SegmentSource> {
  const { location } = step.run;
  if (location.kind === 'log') return LogSource.open(step, options);
  const key = location.key;
  let bytes = await requireStore(options.store, key).get(key, { shared });
  try {
    // Format 2 checks its own tables and every image it decodes (against its page hash): the
    // whole object is not hashed. Format 1 is checked whole, against the index, when it recorded a hash.
    if (bundleFormatOf(bytes) === 1 && location.sha256) {
      const checked = await hasher.sha256(bytes);
      bytes = checked.bytes;
      if (checked.digest !== location.sha256) {
        throw new LitebaseError(
          'ARCHIVE_CORRUPT',
          `${key}: the downloaded object hashes to sha256 ${checked.digest}, the archive index recorded ${location.sha256}`,
          { details: { key } },
        );
      }
    }
    return openBundle(bytes, key, { first: step.run.first, last: step.run.last, whole: false });
  } catch (error) {
    throw archiveError(error, key);
  }
}

/**
 * Segments first..last of the shared log, read one at a time, newest first: whole when small, else
 * chunk by chunk with the streaming reader (src/log/segment-stream.ts), as replicas read a segment
 * past LARGE_SEGMENT_BYTES, so that a transaction of a gigabyte is never held in memory.
 */
class LogSource implements SegmentSource {
  /**
   * The buffer small segments are read into, reused: decoding copies every page out (decompressed),
   * so nothing points into it once a segment is decoded, and a restore of the whole log leaves no
   * buffer per segment for the garbage collector.
   */
  private readBuffer: Buffer | undefined;

  private constructor(
    readonly name: string,
    readonly headers: SegmentHeader[],
    private readonly log: LogDirectory,
  ) {}

  static async open(step: PlanStep, options: ExecuteOptions): Promise<LogSource> {
    const log = options.log;
    if (!log) throw new LitebaseError('RESTORE_SOURCE_MISSING', 'the plan reads the shared log, which this restore cannot reach');
    const headers: SegmentHeader[] = [];
    for (let position = step.from; position <= step.to; position++) {
      const file = log.describe(position);
      const header = await vanishedAs(file, () => log.readHeader(position));
      if (header.position !== position)
        throw new LitebaseError('ARCHIVE_CORRUPT', `${file} holds position ${header.position}`, { details: { key: file } });
      headers.push(header);
    }
    return new LogSource(log.dir, headers, log);
  }

  collect(
    lo: number,
    hi: number,
    want: (pageNumber: number, index: number) => boolean,
    take: (pageNumber: number, image: Buffer, expectedHash: undefined) => void,
    settle?: () => void | Promise<void>,
  ): Promise<void> {
    return collectNewestFirst(lo, hi, (index) => this.pagesOf(this.headers[index] as SegmentHeader), want, take, settle);
  }

  private async pagesOf(expected: SegmentHeader): Promise<SegmentPages> {
    const { position } = expected;
    const file = this.log.describe(position);
    const large =
      expected.pageCount * expected.pageSize > LARGE_SEGMENT_BYTES ||
      (await vanishedAs(file, () => this.log.size(position))) > LARGE_SEGMENT_BYTES;
    if (large) return this.chunksOf(expected, file);
    const bytes = await vanishedAs(file, () => this.log.read(position, (size) => this.readInto(size)));
    let decoded: ReturnType<typeof decodeSegment>;
    try {
      decoded = decodeSegment(bytes);
    } catch (error) {
      throw archiveError(error, file);
    }
    if (decoded.header.postChecksum !== expected.postChecksum) throw changed(file);
    return decoded.pages;
  }

  private readInto(size: number): Buffer {
    if (this.readBuffer === undefined || this.readBuffer.length < size) this.readBuffer = Buffer.allocUnsafe(Math.max(size, 1024 * 1024));
    return this.readBuffer.subarray(0, size);
  }

  /** A large segment's pages, one chunk at a time (the trailer is checked over the whole file before the first). */
  private async *chunksOf(expected: SegmentHeader, file: string): AsyncGenerator<readonly PageImage[]> {
    let reader: SegmentFileReader;
    try {
      reader = await vanishedAs(file, () => this.log.openReader(expected.position));
    } catch (error) {
      throw archiveError(error, file);
    }
    try {
      if (reader.header.postChecksum !== expected.postChecksum) throw changed(file);
      for await (const pages of reader.chunks()) yield pages;
    } catch (error) {
      throw archiveError(error, file);
    } finally {
      await reader.close();
    }
  }
}

function changed(file: string): LitebaseError {
  return new LitebaseError('RESTORE_SOURCE_VANISHED', `${file} changed while the restore read it; start the restore again`);
}
