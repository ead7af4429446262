import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { errorMessage, LitebaseError, systemErrorCode } from '../errors.js';
import { LogDirectory } from '../log/log-directory.js';
import { formatChecksum } from '../format/rolling-checksum.js';
import {
  decodeSegmentHeader,
  SEGMENT_TRAILER_SIZE,
  segmentChecksum,
  SegmentFormatError,
  type SegmentHeader,
} from '../format/segment-codec.js';
import { readSegmentFileHeader, type SegmentFileReader } from '../log/segment-stream.js';
import { LARGE_SEGMENT_BYTES } from '../log/segment-runs.js';
import type { DatabaseMeta } from '../storage/catalog.js';
import { fsyncDir } from '../storage/fs-util.js';
import type { LocalLayout, SharedLayout } from '../storage/layout.js';
import type { ObjectStore } from '../storage/object-store.js';
import { checkpointArchiveReason } from './archive-policy.js';
import {
  archivedThrough,
  compareBig,
  isArchived,
  loadArchiveIndex,
  serializeIndex,
  sortIndex,
  type ArchiveIndex,
} from '../archive/archive-index.js';
import { bundleKey, checkpointKey, indexKey, manifestKey } from '../archive/archive-keys.js';
import { BundleWriter, sha256File } from '../archive/bundle-writer.js';
import { verifyUpload } from '../archive/verify-upload.js';
import { manifestUploadCost, uploadManifest } from '../archive/manifest-upload.js';
import { CheckpointDirectory, upgradeLegacyCheckpoint } from '../replay/checkpoints.js';
import { DEFAULT_RANGE_BYTES, rangePagesFor, type CheckpointManifest } from '../format/checkpoint-manifest.js';
import { foldLogIntoCheckpoint } from './range-fold.js';
import { applyRetention, planRetention } from './retention.js';
import { releaseFreeMemory } from '../native/malloc-tuning.js';

/**
 * The compactor of one database (docs/ARCHITECTURE.md §12, docs/FORMAT.md §8 and §11). It runs on the Primary
 * only. It keeps a **shadow** copy of the database in the node-local folder, advanced by applying
 * the log exactly as a replica does (checksums verified before and after every segment), so it
 * never touches the Primary's SQLite connections and never holds the database in memory (8 bytes
 * a page for the page hashes).
 *
 * A compaction:
 *  1. brings the shadow to the end of the log and writes it as a checkpoint on the shared file
 *     system (streamed; every page hashed against what the log wrote);
 *  2. uploads the segments not archived yet, in bundles (docs/FORMAT.md §11.1), and the checkpoints
 *     the archive policy wants (archive-policy.ts: one the archive cannot do without, or one worth
 *     the log since the previous archived base), checking each upload (size, and content for small
 *     objects);
 *  3. prunes archived history older than the retention window and writes the archive index last;
 *  4. deletes from the shared log the segments the newest checkpoint covers and the archive holds
 *     (invariant 5), and the checkpoints older than the newest.
 *
 * Triggers: the log after the newest checkpoint passes `logBytes` or `logSegments` (checked after
 * flushes, debounced), a timer every `archiveIntervalMs` (archives segments without a checkpoint,
 * which bounds what an offline restore can lose), and `compact()` on demand. Runs never overlap.
 */

export interface CompactionSettings {
  /** Checkpoint once the log after the newest checkpoint holds this many bytes (0: never on size). */
  logBytes: number;
  /** ...or this many segments (0: never on count). */
  logSegments: number;
  /** Archive new segments (no checkpoint) this often (0: only with checkpoints). */
  archiveIntervalMs: number;
  /** A bundle is closed once the segments in it hold this many bytes. */
  bundleBytes: number;
  /**
   * A checkpoint goes to the object store once the archived log since the previous archived base
   * holds this many percent of its size (0: every checkpoint); see archive-policy.ts. Default 200.
   */
  archiveCheckpointPercent?: number;
  /** History kept in the object store (restore window). */
  retentionMs: number;
  /** Size of a checkpoint's range files (docs/FORMAT.md §8); default 4 MiB. */
  rangeBytes?: number;
  /** A replaced checkpoint and its unlisted range files stay this long for readers; default 10 minutes. */
  graceMs?: number;
}

export interface CompactorOptions {
  meta: DatabaseMeta;
  shared: SharedLayout;
  local: LocalLayout;
  store: ObjectStore;
  settings: CompactionSettings;
  logger: Logger;
  /** False once this node is no longer the Primary: the compactor stops at its next step. */
  canWrite: () => boolean;
  /** The Primary's writer starts a new term log file (AttachFollower): before a trim, so that it is exact. */
  rollLog?: () => Promise<boolean>;
}

export type CompactionReason = 'manual' | 'threshold' | 'interval' | 'upgrade';

/** What one run did, as the API answers it (positions as decimal strings). */
export interface CompactionReport {
  database: string;
  databaseId: string;
  reason: CompactionReason;
  /** The newest position the run saw in the log. */
  position: string;
  /** `archived`: the checkpoint is in the object store (archive-policy.ts decides which are). */
  checkpoint: { position: string; time: string; key: string; bytes: number; created: boolean; archived: boolean } | null;
  archived: { first: string; last: string; segments: number; bytes: number; objects: string[] } | null;
  checkpointsUploaded: string[];
  /** `ranges`: range files no remaining checkpoint lists, removed after the grace period. */
  deleted: { segments: number; first: string | null; last: string | null; checkpoints: number; ranges: number; deferred: boolean };
  pruned: { objects: string[]; bytes: number };
  /** Every position up to this one is in the archive (or behind a checkpoint that is). */
  archivedThrough: string;
  durationMs: number;
}

/** A segment on its way into a bundle: small ones whole, large ones through their streaming reader. */
type SegmentForArchive =
  { kind: 'whole'; bytes: Buffer; header: SegmentHeader } | { kind: 'stream'; reader: SegmentFileReader; header: SegmentHeader };

const ACCOUNTING_DELAY_MS = 1000;
const FIRST_ARCHIVE_DELAY_MS = 30_000;
const MAX_BACKOFF_MS = 5 * 60_000;
const STOP_WAIT_MS = 5000;
const DEFAULT_ARCHIVE_CHECKPOINT_PERCENT = 200;
const DEFAULT_GRACE_MS = 10 * 60_000;

export class Compactor {
  private readonly log: LogDirectory;
  private readonly checkpoints: CheckpointDirectory;
  private readonly workDir: string;
  private readonly logger: Logger;
  private chain: Promise<unknown> = Promise.resolve();
  private busy = 0;
  private stopped = false;
  private pins = 0;
  private deleting: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private accountingTimer: NodeJS.Timeout | undefined;
  private latestPosition = 0n;
  private accountedThrough = 0n;
  private bytesSinceCheckpoint = 0;
  private newestCheckpoint: bigint | undefined;
  private archivedKnown: bigint | undefined;
  /** After a failed background run, the next one waits (doubling, at most a few minutes). */
  private failures = 0;
  private quietUntil = 0;
  /** The last run's outcome, for logs and status. */
  lastReport: CompactionReport | undefined;
  lastError: { code: LitebaseError['code']; message: string; at: string } | undefined;

  constructor(private readonly options: CompactorOptions) {
    const { meta, shared, local } = options;
    this.log = new LogDirectory(shared.logDir(meta.name));
    this.checkpoints = new CheckpointDirectory(shared.checkpointsDir(meta.name));
    const dir = local.compactorDir(meta.name);
    this.workDir = path.join(dir, 'work');
    // The shadow copy of the whole database that compactions before range checkpoints kept.
    void fs.rm(path.join(dir, 'shadow.sqlite'), { force: true }).catch(() => undefined);
    void fs.rm(path.join(dir, 'shadow-state.json'), { force: true }).catch(() => undefined);
    this.logger = options.logger.child({ database: meta.name, component: 'compactor' });
  }

  /** Start the timers; `position` is the durable position the Primary opened at. */
  start(position: bigint): void {
    this.latestPosition = position;
    const interval = this.options.settings.archiveIntervalMs;
    if (interval > 0) {
      const tick = (): void => {
        this.timer = setTimeout(tick, interval);
        this.timer.unref();
        if (this.busy > 0 || this.stopped || Date.now() < this.quietUntil) return;
        if (this.archivedKnown !== undefined && this.latestPosition <= this.archivedKnown) return;
        void this.compact('interval', false).catch(() => undefined);
      };
      this.timer = setTimeout(tick, Math.min(interval, FIRST_ARCHIVE_DELAY_MS));
      this.timer.unref();
    }
    if (position > 0n) this.notify(position);
    // A shared folder whose newest checkpoint is a legacy one is upgraded right away (FORMAT.md §8.4).
    void this.newestIsLegacy().then(
      (legacy) => {
        if (legacy && !this.stopped) void this.compact('upgrade').catch(() => undefined);
      },
      () => undefined,
    );
  }

  private async newestIsLegacy(): Promise<boolean> {
    const newest = await this.checkpoints.newest();
    return newest !== undefined && (await this.checkpoints.manifestPositions()).at(-1) !== newest;
  }

  /** The Primary made `position` durable: count the log, compact when a threshold is passed. */
  notify(position: bigint): void {
    if (position > this.latestPosition) this.latestPosition = position;
    if (this.stopped || this.accountingTimer) return;
    const { logBytes, logSegments } = this.options.settings;
    if (logBytes <= 0 && logSegments <= 0) return;
    this.accountingTimer = setTimeout(() => {
      this.accountingTimer = undefined;
      void this.account().catch((error: unknown) => this.logger.warn({ err: error }, 'could not measure the log'));
    }, ACCOUNTING_DELAY_MS);
    this.accountingTimer.unref();
  }

  /**
   * Hold back deleting from the shared log (a restore is about to read it); resolves once a
   * deletion under way has finished, so the caller lists a log that no longer changes under it.
   * Call the answer to let go.
   */
  async pin(): Promise<() => void> {
    this.pins += 1;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.pins -= 1;
    };
    await this.deleting.catch(() => undefined);
    return release;
  }

  /** Run a compaction after any that is running; `withCheckpoint` false only archives. */
  compact(reason: CompactionReason, withCheckpoint = true): Promise<CompactionReport> {
    if (this.stopped) return Promise.reject(this.stoppedError());
    this.busy += 1;
    const run = this.chain
      .then(() => this.run(reason, withCheckpoint))
      .then(
        (report) => {
          this.lastReport = report;
          this.lastError = undefined;
          this.failures = 0;
          this.quietUntil = 0;
          this.logger.info({ report }, 'compaction done');
          return report;
        },
        (error: unknown) => {
          const code = error instanceof LitebaseError ? error.code : 'COMPACTION_FAILED';
          this.lastError = { code, message: errorMessage(error), at: new Date().toISOString() };
          this.failures += 1;
          this.quietUntil = Date.now() + Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.min(this.failures, 10));
          if (code !== 'COMPACTOR_STOPPED') this.logger.error({ err: error, reason }, 'compaction failed');
          throw error;
        },
      )
      .finally(() => {
        this.busy -= 1;
      });
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Stop the timers and let a running compaction give up at its next step. Waits for that at most
   * `waitMs`: an upload under way cannot be interrupted, and a role switch should not wait for it
   * (its run fails at the next step, deleting nothing).
   */
  async stop(waitMs = STOP_WAIT_MS): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.accountingTimer) clearTimeout(this.accountingTimer);
    this.timer = undefined;
    this.accountingTimer = undefined;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.chain, new Promise((resolve) => (timer = setTimeout(resolve, waitMs)))]);
    clearTimeout(timer);
  }

  // ---- triggers -------------------------------------------------------------------------------

  private async account(): Promise<void> {
    if (this.newestCheckpoint === undefined) {
      this.newestCheckpoint = (await this.checkpoints.newest()) ?? 0n;
      this.accountedThrough = this.newestCheckpoint;
      this.bytesSinceCheckpoint = 0;
    }
    this.bytesSinceCheckpoint += await this.sizeOfSegments(this.accountedThrough + 1n, this.latestPosition);
    if (this.latestPosition > this.accountedThrough) this.accountedThrough = this.latestPosition;
    const { logBytes, logSegments } = this.options.settings;
    const segments = this.latestPosition - this.newestCheckpoint;
    const due = (logSegments > 0 && segments >= BigInt(logSegments)) || (logBytes > 0 && this.bytesSinceCheckpoint >= logBytes);
    if (due && this.busy === 0 && !this.stopped && Date.now() >= this.quietUntil) {
      this.logger.info({ segments: segments.toString(), bytes: this.bytesSinceCheckpoint }, 'log passed the compaction threshold');
      void this.compact('threshold').catch(() => undefined);
    }
  }

  private async sizeOfSegments(first: bigint, last: bigint): Promise<number> {
    let bytes = 0;
    if (first > last) return 0;
    // One look at the folder for the whole stretch: term log records are then sized from the
    // index, without a listing per position.
    await this.log.positions();
    for (let position = first; position <= last; position++) {
      try {
        bytes += await this.log.size(position);
      } catch (error) {
        if (systemErrorCode(error) !== 'ENOENT') throw error;
      }
    }
    return bytes;
  }

  // ---- one run --------------------------------------------------------------------------------

  private async run(reason: CompactionReason, withCheckpoint: boolean): Promise<CompactionReport> {
    const started = Date.now();
    const { meta, store } = this.options;
    this.checkActive();
    await fs.rm(this.workDir, { recursive: true, force: true });
    await fs.mkdir(this.workDir, { recursive: true });

    let checkpoint: CompactionReport['checkpoint'] = null;
    let position = (await this.log.positions()).at(-1) ?? 0n;
    const sharedCheckpoints = await this.checkpoints.positions();
    if (withCheckpoint) {
      checkpoint = await this.writeCheckpoint(sharedCheckpoints);
      if (checkpoint && BigInt(checkpoint.position) > position) position = BigInt(checkpoint.position);
    }

    const loaded = await loadArchiveIndex(store, meta.name, meta.id, { logger: this.logger });
    const index = loaded.index;
    let indexChanged = loaded.repaired;

    const archived = await this.archiveSegments(index, sharedCheckpoints);
    if (archived) indexChanged = true;

    const checkpointsUploaded: string[] = [];
    for (const checkpointPosition of [...sharedCheckpoints].sort(compareBig)) {
      const key = await this.archiveCheckpointIfWanted(index, checkpointPosition);
      if (key) checkpointsUploaded.push(key);
    }
    if (checkpoint) checkpoint.archived = index.checkpoints.some((entry) => entry.key === checkpoint?.key);
    if (checkpointsUploaded.length > 0) indexChanged = true;

    const retention = planRetention(index, Date.now(), this.options.settings.retentionMs);
    // Checkpoints, manifests, bundles and range files out of the index (retention.ts); deleted once it is written.
    const { keys: prunedKeys, bytes: prunedBytes } = applyRetention(index, retention);
    if (prunedKeys.length > 0) indexChanged = true;
    if (indexChanged) {
      this.checkActive();
      // The index goes last: every object it lists is already in place (and verified).
      await store.put(indexKey(meta.name, meta.id), serializeIndex(sortIndex(index)));
    }
    if (prunedKeys.length > 0) {
      await store.delete(prunedKeys);
      this.logger.info({ objects: prunedKeys.length, bytes: prunedBytes }, 'pruned archived history older than the retention window');
    }

    const deleting = this.deleteArchivedFromShared(index, retention.base?.position);
    this.deleting = deleting;
    const deleted = await deleting;
    this.archivedKnown = archivedThrough(index);
    if (checkpoint) {
      const at = BigInt(checkpoint.position);
      if (this.newestCheckpoint === undefined || at > this.newestCheckpoint) {
        this.newestCheckpoint = at;
        const through = this.accountedThrough > at ? this.accountedThrough : at;
        this.bytesSinceCheckpoint = await this.sizeOfSegments(at + 1n, through);
        this.accountedThrough = through;
      }
    }
    // A compaction decodes and encodes much more than it keeps: give glibc's free chunks back.
    releaseFreeMemory();
    return {
      database: meta.name,
      databaseId: meta.id,
      reason,
      position: position.toString(),
      checkpoint,
      archived,
      checkpointsUploaded,
      deleted,
      pruned: { objects: prunedKeys, bytes: prunedBytes },
      archivedThrough: this.archivedKnown.toString(),
      durationMs: Date.now() - started,
    };
  }

  private checkActive(): void {
    if (this.stopped) throw this.stoppedError();
    if (!this.options.canWrite()) {
      throw new LitebaseError('NOT_PRIMARY', `this node is no longer the Primary; compaction of ${this.options.meta.name} stopped`);
    }
  }

  private stoppedError(): LitebaseError {
    return new LitebaseError('COMPACTOR_STOPPED', `the compactor of ${this.options.meta.name} is stopping`);
  }

  // ---- the checkpoint -------------------------------------------------------------------------

  /**
   * Fold the log after the newest checkpoint into a new one (range-fold.ts), after upgrading a
   * legacy newest checkpoint to a manifest. Answers the newest checkpoint (made now or before), or
   * null when there is none and the log is empty.
   */
  private async writeCheckpoint(sharedCheckpoints: bigint[]): Promise<CompactionReport['checkpoint']> {
    const { meta, settings } = this.options;
    this.checkActive();
    const base = await this.newestManifest();
    const rangePages = rangePagesFor(settings.rangeBytes ?? DEFAULT_RANGE_BYTES, base?.pageSize ?? meta.pageSize ?? 4096);
    const started = Date.now();
    const fold = await foldLogIntoCheckpoint({
      directory: this.checkpoints,
      log: this.log,
      databaseId: meta.id,
      base,
      rangePages,
      workDir: this.workDir,
      logger: this.logger,
      checkStop: () => this.checkActive(),
    });
    if (!fold) {
      if (!base) return null;
      return this.checkpointReport(base, false, 0);
    }
    if (!sharedCheckpoints.includes(fold.manifest.position)) sharedCheckpoints.push(fold.manifest.position);
    const bytes = fold.written.reduce((sum, range) => sum + range.bytes, 0);
    this.logger.info(
      {
        position: fold.manifest.position.toString(),
        segments: fold.segments,
        rangesWritten: fold.written.length,
        ranges: fold.manifest.ranges.length,
        bytes,
        durationMs: Date.now() - started,
      },
      'checkpoint written',
    );
    return this.checkpointReport(fold.manifest, fold.created, bytes);
  }

  private checkpointReport(manifest: CheckpointManifest, created: boolean, bytes: number): NonNullable<CompactionReport['checkpoint']> {
    const { meta } = this.options;
    return {
      position: manifest.position.toString(),
      time: new Date(manifest.commitTimeMs).toISOString(),
      key: manifestKey(meta.name, meta.id, manifest.position),
      bytes,
      created,
      archived: false,
    };
  }

  /**
   * The newest checkpoint as a manifest. A legacy newest checkpoint (a whole database in one file,
   * written before range checkpoints) is upgraded first: its pages are cut into range files and a
   * manifest at the same position is published (FORMAT.md §8.4); the legacy file goes with the
   * garbage once the grace period has passed.
   */
  private async newestManifest(): Promise<CheckpointManifest | undefined> {
    const { meta, settings } = this.options;
    const newest = await this.checkpoints.newest();
    if (newest === undefined) return undefined;
    const info = await this.checkpoints.describe(newest, meta.id);
    if (info.manifest) return info.manifest;
    this.logger.info({ position: newest.toString(), bytes: info.bytes }, 'upgrading a legacy checkpoint to range files');
    const rangePages = rangePagesFor(settings.rangeBytes ?? DEFAULT_RANGE_BYTES, info.pageSize);
    const { manifest } = await upgradeLegacyCheckpoint(this.checkpoints, info, meta.id, rangePages, () => this.checkActive());
    return manifest;
  }

  // ---- archive ---------------------------------------------------------------------------------

  /** Upload the log segments after the archive's end, in bundles; answers what was uploaded. */
  private async archiveSegments(index: ArchiveIndex, sharedCheckpoints: readonly bigint[]): Promise<CompactionReport['archived']> {
    const { meta, settings } = { meta: this.options.meta, settings: this.options.settings };
    const from = archivedThrough(index) + 1n;
    const positions = (await this.log.positions()).filter((position) => position >= from);
    if (positions.length === 0) return null;
    const start = positions[0] as bigint;
    if (start !== from) {
      const bridged = [...sharedCheckpoints, ...index.checkpoints.map((entry) => entry.position)].some(
        (position) => position >= start - 1n,
      );
      if (!bridged) {
        this.logger.error(
          { from: from.toString(), start: start.toString() },
          'segments are missing from both the log and the archive; restores cannot cross this gap',
        );
      }
    }
    const objects: string[] = [];
    let bytes = 0;
    let segments = 0;
    let first: bigint | undefined;
    let last: bigint | undefined;
    let bundle: { writer: BundleWriter; first: bigint; last: bigint; firstTimeMs: number; lastTimeMs: number } | undefined;
    const close = async (): Promise<void> => {
      if (!bundle) return;
      const current = bundle;
      bundle = undefined;
      // Opened for a segment that then turned out damaged: nothing to upload.
      if (current.writer.segmentCount === 0) return current.writer.abort();
      const finished = await current.writer.finish();
      const key = bundleKey(meta.name, meta.id, current.first, current.last);
      this.checkActive();
      await this.options.store.putFile(key, current.writer.file);
      await this.verifyUpload(key, finished.bytes, finished.sha256);
      await fs.rm(current.writer.file, { force: true });
      index.bundles.push({
        key,
        first: current.first,
        last: current.last,
        firstTimeMs: current.firstTimeMs,
        lastTimeMs: current.lastTimeMs,
        segments: finished.segments,
        bytes: finished.bytes,
        sha256: finished.sha256,
      });
      objects.push(key);
      bytes += finished.bytes;
    };
    try {
      let expected = start;
      for (const position of positions) {
        this.checkActive();
        if (position !== expected) break;
        const segment = await this.openSegmentForArchive(position);
        if (!segment) break;
        const { header } = segment;
        try {
          if (bundle && !bundle.writer.accepts(header)) await close();
          if (!bundle) {
            const file = path.join(this.workDir, `bundle-${position}-${Date.now()}.seg`);
            bundle = {
              writer: await BundleWriter.create(file),
              first: position,
              last: position,
              firstTimeMs: header.commitTimeMs,
              lastTimeMs: header.commitTimeMs,
            };
          }
          if (!(await this.appendToBundle(bundle.writer, segment, position))) break;
        } finally {
          if (segment.kind === 'stream') await segment.reader.close();
        }
        bundle.last = position;
        bundle.lastTimeMs = header.commitTimeMs;
        first ??= position;
        last = position;
        segments += 1;
        expected = position + 1n;
        if (bundle.writer.bytes >= settings.bundleBytes) await close();
      }
      await close();
    } catch (error) {
      const current = bundle as { writer: BundleWriter } | undefined;
      await current?.writer.abort();
      throw error;
    }
    if (first === undefined || last === undefined) return null;
    return { first: first.toString(), last: last.toString(), segments, bytes, objects };
  }

  /**
   * Segment `position`, ready to be bundled, its trailer checked and its header this database's at
   * this position: its bytes when it is small, else its streaming reader (src/log/segment-stream.ts:
   * the trailer is checked in a first pass over the file, 4 MiB at a time), so that no segment is
   * read whole whose file or page images pass LARGE_SEGMENT_BYTES (a transaction of a gigabyte).
   * Undefined when it is gone, or (logged) damaged: archiving stops before it.
   */
  private async openSegmentForArchive(position: bigint): Promise<SegmentForArchive | undefined> {
    const file = this.log.describe(position);
    let segment: SegmentForArchive | undefined;
    try {
      if ((await this.log.size(position)) <= LARGE_SEGMENT_BYTES) {
        const bytes = await this.log.read(position);
        const body = bytes.subarray(0, bytes.length - SEGMENT_TRAILER_SIZE);
        if (bytes.length < 104 || !segmentChecksum(body).equals(bytes.subarray(bytes.length - SEGMENT_TRAILER_SIZE))) {
          throw new SegmentFormatError('SEGMENT_CHECKSUM_MISMATCH', `${file}: trailer checksum mismatch`);
        }
        const header = decodeSegmentHeader(bytes);
        // Small on disk, large once decompressed (pages that compress well): streamed all the same.
        segment =
          header.pageCount * header.pageSize <= LARGE_SEGMENT_BYTES ? { kind: 'whole', bytes, header } : await this.streamSegment(position);
      } else {
        segment = await this.streamSegment(position);
      }
    } catch (error) {
      if (systemErrorCode(error) === 'ENOENT') return undefined;
      if (!(error instanceof SegmentFormatError)) throw error;
      this.logger.error({ err: error, file }, 'segment is damaged; archiving stops before it');
      return undefined;
    }
    const { header } = segment;
    if (header.position !== position || header.databaseId !== this.options.meta.id) {
      if (segment.kind === 'stream') await segment.reader.close();
      const error = new SegmentFormatError('SEGMENT_CORRUPT', `${file} is position ${header.position} of database ${header.databaseId}`);
      this.logger.error({ err: error, file }, 'segment is damaged; archiving stops before it');
      return undefined;
    }
    return segment;
  }

  private async streamSegment(position: bigint): Promise<SegmentForArchive> {
    const reader = await this.log.openReader(position);
    return { kind: 'stream', reader, header: reader.header };
  }

  /** Adds an opened segment to the bundle; false (logged, nothing of it added) when its body turns out damaged. */
  private async appendToBundle(writer: BundleWriter, segment: SegmentForArchive, position: bigint): Promise<boolean> {
    try {
      if (segment.kind === 'whole') writer.append(segment.bytes);
      else await writer.appendChunks(segment.header, segment.reader.size, segment.reader.chunks());
      return true;
    } catch (error) {
      if (!(error instanceof SegmentFormatError)) throw error;
      this.logger.error({ err: error, file: this.log.describe(position) }, 'segment is damaged; archiving stops before it');
      return false;
    }
  }

  /** Upload a checkpoint of the shared folder when the archive policy wants it (archive-policy.ts). */
  private async archiveCheckpointIfWanted(index: ArchiveIndex, position: bigint): Promise<string | undefined> {
    const manifest = await this.archiveManifestIfWanted(index, position);
    if (manifest !== null) return manifest;
    const { meta, store, settings } = this.options;
    const file = this.checkpoints.checkpointPath(position);
    let header: SegmentHeader;
    let size: number;
    try {
      header = await readSegmentFileHeader(file);
      size = (await fs.stat(file)).size;
    } catch (error) {
      if (systemErrorCode(error) === 'ENOENT') return undefined;
      throw error;
    }
    const reason = checkpointArchiveReason(
      index,
      { position, timeMs: header.commitTimeMs, bytes: size },
      { percent: settings.archiveCheckpointPercent ?? DEFAULT_ARCHIVE_CHECKPOINT_PERCENT, retentionMs: settings.retentionMs },
    );
    if (!reason) return undefined;
    this.logger.info({ position: position.toString(), bytes: size, reason }, 'archiving checkpoint');
    const key = checkpointKey(meta.name, meta.id, position);
    const sha256 = await sha256File(file);
    this.checkActive();
    await store.putFile(key, file);
    await this.verifyUpload(key, size, sha256);
    index.checkpoints.push({
      key,
      position,
      timeMs: header.commitTimeMs,
      bytes: size,
      checksum: formatChecksum(header.postChecksum),
      pageSize: header.pageSize,
      databaseSizePages: header.databaseSizePages,
      sha256,
    });
    return key;
  }

  /**
   * A range checkpoint at `position`, uploaded when the archive policy wants it (only the ranges the
   * archive lacks: archive/manifest-upload.ts). Answers its key, undefined when not wanted, null
   * when there is no manifest at that position (a legacy checkpoint, or none).
   */
  private async archiveManifestIfWanted(index: ArchiveIndex, position: bigint): Promise<string | undefined | null> {
    const { meta, store, settings } = this.options;
    const manifestFile = this.checkpoints.manifestPath(position);
    let manifest: CheckpointManifest;
    let size: number;
    try {
      manifest = await this.checkpoints.readManifest(position, meta.id);
      size = (await fs.stat(manifestFile)).size;
    } catch (error) {
      if (systemErrorCode(error) === 'ENOENT') return null;
      throw error;
    }
    const cost = manifestUploadCost(index, manifest, size);
    const reason = checkpointArchiveReason(
      index,
      { position, timeMs: manifest.commitTimeMs, bytes: cost },
      { percent: settings.archiveCheckpointPercent ?? DEFAULT_ARCHIVE_CHECKPOINT_PERCENT, retentionMs: settings.retentionMs },
    );
    if (!reason) return undefined;
    this.logger.info({ position: position.toString(), bytes: cost, reason }, 'archiving range checkpoint');
    const uploaded = await uploadManifest({
      store,
      index,
      manifestFile,
      manifest,
      rangesDir: this.checkpoints.rangesDir,
      checkStop: () => this.checkActive(),
      logger: this.logger,
    });
    return uploaded.key;
  }

  /** Check an upload before anything it stands for is deleted: size always, content when small (archive/verify-upload.ts). */
  private async verifyUpload(key: string, bytes: number, sha256: string): Promise<void> {
    await verifyUpload(this.options.store, key, bytes, sha256);
  }

  // ---- the shared folder -----------------------------------------------------------------------

  /**
   * Delete the segments the newest checkpoint covers and the archive holds (or the retention window
   * no longer needs), and the checkpoints older than the newest once replaced for the grace period:
   * the archive holds each, or reaches its position through bundles from a base it holds (the
   * policy archived it otherwise). Nothing newer than the newest checkpoint is ever deleted:
   * replicas and recovery need it.
   */
  private async deleteArchivedFromShared(index: ArchiveIndex, retentionBase: bigint | undefined): Promise<CompactionReport['deleted']> {
    const result: CompactionReport['deleted'] = { segments: 0, first: null, last: null, checkpoints: 0, ranges: 0, deferred: false };
    const newest = await this.checkpoints.newest();
    if (newest === undefined) return result;
    if (this.pins > 0) {
      result.deferred = true;
      this.logger.info('a restore is reading the log; deleting archived segments is left to the next compaction');
      return result;
    }
    this.checkActive();
    // Archived, or older than the retention window and covered by a checkpoint (invariant 5).
    const doomed = (await this.log.positions()).filter(
      (position) => position <= newest && (isArchived(index, position) || (retentionBase !== undefined && position <= retentionBase)),
    );
    // Term log files go whole: the writer starts a new one first, so that the file holding the
    // newest checkpointed position holds nothing newer; what the answer counts is what left the
    // shared folder.
    if (doomed.length > 0) await this.options.rollLog?.().catch(() => false);
    const removed = await this.log.remove(doomed);
    if (removed.length > 0) {
      await fsyncDir(this.log.dir);
      result.segments = removed.length;
      result.first = (removed[0] as bigint).toString();
      result.last = (removed[removed.length - 1] as bigint).toString();
    }
    // Older checkpoints and the range files only they list, once the grace period has passed: a node
    // loading one of them when it was the newest has that long to read its files.
    const garbage = await this.checkpoints.collectGarbage({ graceMs: this.options.settings.graceMs ?? DEFAULT_GRACE_MS });
    result.checkpoints = garbage.checkpoints;
    result.ranges = garbage.ranges;
    return result;
  }
}
