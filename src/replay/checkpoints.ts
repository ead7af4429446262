import { promises as fs } from 'node:fs';
import path from 'node:path';
import { LitebaseError, systemErrorCode } from '../errors.js';
import { assertCheckpointHeader } from '../format/checkpoint-header.js';
import { formatChecksum, pageHash, PageHashTable } from '../format/rolling-checksum.js';
import type { SegmentHeader } from '../format/segment-codec.js';
import { readSegmentFileHeader, SegmentFileReader, SegmentFileWriter, type WrittenSegmentFile } from '../log/segment-stream.js';
import { fsyncDir, tempName, positionsInFolder, readdirOrEmpty } from '../storage/fs-util.js';
import {
  decodeManifest,
  encodeManifest,
  manifestFileName,
  parseRangeFileName,
  type CheckpointManifest,
  rangeCount,
  rangeExtent,
  type ManifestRange,
} from '../format/checkpoint-manifest.js';
import { formatPosition } from '../storage/layout.js';
import { writeRangeFile, type RangeFileSource } from './range-files.js';
import { loadRanges } from './range-loader.js';
import { releaseEvery, releaseFreeMemory } from '../native/malloc-tuning.js';

/**
 * Checkpoints (docs/FORMAT.md §8) on the shared file system. A checkpoint is a **manifest** at one
 * log position (`manifests/<position>.json`) listing immutable **range files** (`ranges/…`), each a
 * fixed range of pages in the segment container; a compaction rewrites only the ranges that changed
 * (src/compactor/range-fold.ts). Older nodes wrote **legacy** checkpoints, the whole database in one
 * file (`<position>.ckpt`): they are still read, as a checkpoint of one part, until the compactor
 * upgrades them (src/compactor/legacy-upgrade.ts).
 *
 * Every part is verified as it is read (trailer, header, every page hashed, the hashes summing to
 * the part's checksum, the parts to the checkpoint's), so a damaged checkpoint is never used.
 */

const CHECKPOINT_FILE = /^(\d{20})\.ckpt$/;
const MANIFEST_FILE = /^(\d{20})\.json$/;
const READ_PAGES = 256;
/** While a checkpoint is loaded, the file is synced after about this many bytes (see loadCheckpoint). */
const LOAD_SYNC_BYTES = 64 * 1024 * 1024;
/** A checkpoint this large is loaded on threads; a smaller one on the calling thread, range by range. */
const THREADED_LOAD_BYTES = 16 * 1024 * 1024;

/** One file of a checkpoint: consecutive pages from `firstPage`. */
export interface CheckpointPart {
  /** The path as messages name it. */
  name: string;
  file: string;
  firstPage: number;
  pages: number;
  bytes: number;
  /** XOR of the part's page hashes. */
  checksum: bigint;
  /** For a range file: its manifest entry (its header is checked against it). */
  range?: ManifestRange;
}

/** A checkpoint on the shared file system, whichever its kind. */
export interface CheckpointInfo extends Omit<CheckpointManifest, 'databaseId' | 'rangePages' | 'ranges'> {
  kind: 'manifest' | 'legacy';
  /** The manifest or the legacy checkpoint file. */
  file: string;
  /** Bytes of all its parts (what reading the whole checkpoint reads). */
  bytes: number;
  parts: CheckpointPart[];
  manifest?: CheckpointManifest;
}

/** The checkpoint folder of one database on the shared file system. */
export class CheckpointDirectory {
  readonly manifestsDir: string;
  readonly rangesDir: string;

  constructor(readonly dir: string) {
    this.manifestsDir = path.join(dir, 'manifests');
    this.rangesDir = path.join(dir, 'ranges');
  }

  /** The checkpoints of the database whose log is in `logDir` (they are siblings). */
  static besideLog(logDir: string): CheckpointDirectory {
    return new CheckpointDirectory(path.join(path.dirname(logDir), 'checkpoints'));
  }

  /** A legacy (whole-database) checkpoint file. */
  checkpointPath(position: bigint): string {
    return path.join(this.dir, `${formatPosition(position)}.ckpt`);
  }

  manifestPath(position: bigint): string {
    return path.join(this.manifestsDir, manifestFileName(position));
  }

  rangePath(file: string): string {
    return path.join(this.rangesDir, file);
  }

  async legacyPositions(): Promise<bigint[]> {
    return positionsInFolder(this.dir, CHECKPOINT_FILE);
  }

  async manifestPositions(): Promise<bigint[]> {
    return positionsInFolder(this.manifestsDir, MANIFEST_FILE);
  }

  /** Positions of the checkpoints present (either kind), ascending. */
  async positions(): Promise<bigint[]> {
    const all = new Set([...(await this.manifestPositions()), ...(await this.legacyPositions())]);
    return [...all].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  async newest(): Promise<bigint | undefined> {
    return (await this.positions()).at(-1);
  }

  /** Remove legacy checkpoints (the upgrade replaced them with manifests). */
  async remove(positions: readonly bigint[]): Promise<void> {
    if (positions.length === 0) return;
    for (const position of positions) await fs.rm(this.checkpointPath(position), { force: true });
    await fsyncDir(this.dir);
  }

  async readManifest(position: bigint, databaseId?: string): Promise<CheckpointManifest> {
    const file = this.manifestPath(position);
    const manifest = decodeManifest(await fs.readFile(file), file, databaseId);
    if (manifest.position !== position) {
      throw new LitebaseError('CHECKPOINT_INVALID', `${file} is the manifest of position ${manifest.position}`, { details: { file } });
    }
    return manifest;
  }

  /**
   * The checkpoint at `position` with its parts (a manifest when both kinds exist there). Reads the
   * manifest or the legacy file's header, nothing more: loading verifies the rest.
   */
  async describe(position: bigint, databaseId?: string): Promise<CheckpointInfo> {
    let manifest: CheckpointManifest | undefined;
    try {
      manifest = await this.readManifest(position, databaseId);
    } catch (error) {
      if (systemErrorCode(error) !== 'ENOENT') throw error;
    }
    if (manifest) {
      const parts = manifest.ranges.map((range) => ({
        name: this.rangePath(range.file),
        file: this.rangePath(range.file),
        firstPage: range.firstPage,
        pages: range.pages,
        bytes: range.bytes,
        checksum: range.checksum,
        range,
      }));
      return {
        kind: 'manifest',
        file: this.manifestPath(position),
        position,
        term: manifest.term,
        commitTimeMs: manifest.commitTimeMs,
        pageSize: manifest.pageSize,
        databaseSizePages: manifest.databaseSizePages,
        checksum: manifest.checksum,
        bytes: parts.reduce((sum, part) => sum + part.bytes, 0),
        parts,
        manifest,
      };
    }
    const file = this.checkpointPath(position);
    const header = await readSegmentFileHeader(file);
    assertCheckpointHeader(header, file, databaseId);
    if (header.position !== position) {
      throw new LitebaseError('CHECKPOINT_INVALID', `${file} holds position ${header.position}`, { details: { file } });
    }
    const { size } = await fs.stat(file);
    return {
      kind: 'legacy',
      file,
      position,
      term: header.term,
      commitTimeMs: header.commitTimeMs,
      pageSize: header.pageSize,
      databaseSizePages: header.databaseSizePages,
      checksum: header.postChecksum,
      bytes: size,
      parts:
        header.databaseSizePages === 0
          ? []
          : [{ name: file, file, firstPage: 1, pages: header.databaseSizePages, bytes: size, checksum: header.postChecksum }],
    };
  }

  /**
   * Publish a manifest whose range files are in place: the range folder is fsynced (their links
   * must survive a crash before the manifest that names them), then the manifest is written to a
   * temp file and linked to its name (exclusive: an existing checkpoint is never replaced).
   * Answers false when a manifest at that position already existed (another compactor made it).
   */
  async publishManifest(manifest: CheckpointManifest): Promise<{ created: boolean; file: string }> {
    await fs.mkdir(this.manifestsDir, { recursive: true });
    if (manifest.ranges.length > 0) await fsyncDir(this.rangesDir);
    const target = this.manifestPath(manifest.position);
    const temp = tempName(target);
    try {
      const handle = await fs.open(temp, 'wx');
      try {
        await handle.writeFile(encodeManifest(manifest));
        await handle.sync();
      } finally {
        await handle.close();
      }
      const created = await linkExclusive(temp, target);
      return { created, file: target };
    } catch (error) {
      await fs.rm(temp, { force: true }).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Publish a legacy checkpoint `position`: `fill` writes a temp file in this folder, which is then
   * linked to the final name. Kept for tests of the upgrade path: nodes no longer write this kind.
   */
  async publish(
    position: bigint,
    fill: (tempFile: string) => Promise<WrittenSegmentFile>,
  ): Promise<{ created: boolean; file: string; written: WrittenSegmentFile }> {
    await fs.mkdir(this.dir, { recursive: true });
    const target = this.checkpointPath(position);
    const temp = tempName(target);
    try {
      const written = await fill(temp);
      const created = await linkExclusive(temp, target);
      return { created, file: target, written };
    } catch (error) {
      await fs.rm(temp, { force: true }).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Remove checkpoints older than the newest and the range files no remaining manifest lists,
   * **after a grace period**: a checkpoint goes only once a newer one has existed for `graceMs`
   * (by the newer manifest's modification time), and an unlisted range file only once it is
   * `graceMs` old. A node that started loading a checkpoint while it was the newest therefore has
   * `graceMs` to read its files (src/replay/local-copy.ts retries with the newest if it takes longer),
   * and a compaction still writing its ranges (not yet listed) never loses them.
   * `mayRemove(position)` lets the caller keep checkpoints it still needs (the archive's rules).
   */
  async collectGarbage(options: { graceMs: number; nowMs?: number; mayRemove?: (position: bigint) => boolean }): Promise<GarbageReport> {
    const now = options.nowMs ?? Date.now();
    const cutoff = now - options.graceMs;
    const report: GarbageReport = { checkpoints: 0, ranges: 0, bytes: 0 };
    const positions = await this.positions();
    const newest = positions.at(-1);
    if (newest === undefined) return report;
    // When did each checkpoint appear: a checkpoint is superseded since the next one appeared.
    const appeared = new Map<bigint, number>();
    for (const position of positions) appeared.set(position, await this.appearedAtMs(position));
    const doomed: bigint[] = [];
    positions.forEach((position, at) => {
      const next = positions[at + 1];
      if (next === undefined) return;
      const supersededAt = appeared.get(next) ?? now;
      if (supersededAt <= cutoff && (options.mayRemove?.(position) ?? true)) doomed.push(position);
    });
    for (const position of doomed) {
      for (const file of [this.manifestPath(position), this.checkpointPath(position)]) {
        try {
          await fs.rm(file);
          report.checkpoints += 1;
        } catch (error) {
          if (systemErrorCode(error) !== 'ENOENT') throw error;
        }
      }
    }
    if (doomed.length > 0) {
      await fsyncDir(this.dir);
      await fsyncDir(this.manifestsDir).catch(() => undefined);
    }
    // Range files no remaining manifest lists. A manifest that cannot be read keeps every range
    // (better a file too many than one a reader needs).
    const listed = new Set<string>();
    for (const position of await this.manifestPositions()) {
      try {
        for (const range of (await this.readManifest(position)).ranges) listed.add(range.file);
      } catch (error) {
        if (systemErrorCode(error) === 'ENOENT') continue;
        return report;
      }
    }
    let removedRanges = false;
    for (const name of await readdirOrEmpty(this.rangesDir)) {
      const stale = parseRangeFileName(name) !== undefined ? !listed.has(name) : name.startsWith('.tmp-');
      if (!stale) continue;
      const file = path.join(this.rangesDir, name);
      try {
        const stat = await fs.stat(file);
        if (stat.mtimeMs > cutoff) continue;
        await fs.rm(file);
        report.ranges += 1;
        report.bytes += stat.size;
        removedRanges = true;
      } catch (error) {
        if (systemErrorCode(error) !== 'ENOENT') throw error;
      }
    }
    if (removedRanges) await fsyncDir(this.rangesDir);
    return report;
  }

  /** When the checkpoint at `position` was published (its file's modification time). */
  private async appearedAtMs(position: bigint): Promise<number> {
    for (const file of [this.manifestPath(position), this.checkpointPath(position)]) {
      try {
        return (await fs.stat(file)).mtimeMs;
      } catch (error) {
        if (systemErrorCode(error) !== 'ENOENT') throw error;
      }
    }
    return Date.now();
  }
}

/**
 * Give a finished temp file its final name, never replacing one (a checkpoint is never replaced:
 * EEXIST means another compactor made the same one), then drop the temp name and fsync the folder.
 * Answers whether this call created the name.
 */
async function linkExclusive(temp: string, target: string): Promise<boolean> {
  let created = true;
  try {
    await fs.link(temp, target);
  } catch (error) {
    if (systemErrorCode(error) !== 'EEXIST') throw error;
    created = false;
  }
  await fs.rm(temp, { force: true });
  await fsyncDir(path.dirname(target));
  return created;
}

export interface GarbageReport {
  /** Checkpoints removed (manifests and legacy files). */
  checkpoints: number;
  ranges: number;
  /** Bytes of the range files removed. */
  bytes: number;
}

export interface CheckpointSource extends RangeFileSource {
  /** The database checksum at `position`: the checkpoint's post-checksum. */
  checksum: bigint;
}

/**
 * Write the first `databaseSizePages` pages of `sqliteFile` as a checkpoint into `target` (a new
 * file). Every page is hashed; with `expected` (the page hashes the caller maintained while it
 * applied the log) each page must match its entry, which names the first damaged page. Either way
 * the pages must sum to `source.checksum`, or the file is removed and nothing is published.
 */
export async function writeLegacyCheckpointFromFile(
  target: string,
  sqliteFile: string,
  source: CheckpointSource,
  expected?: PageHashTable,
  /** Called before each chunk; throws to give up (the file is removed). */
  checkStop?: () => void,
): Promise<WrittenSegmentFile> {
  const { pageSize, databaseSizePages } = source;
  const writer = await SegmentFileWriter.create(target, {
    databaseId: source.databaseId,
    term: source.term,
    position: source.position,
    commitTimeMs: source.commitTimeMs,
    pageSize,
    databaseSizePages,
    pageCount: databaseSizePages,
    transactionCount: 0,
    preChecksum: 0n,
    postChecksum: source.checksum,
  });
  const handle = await fs.open(sqliteFile, 'r');
  try {
    const { size } = await handle.stat();
    if (size < databaseSizePages * pageSize) {
      throw new LitebaseError(
        'CHECKPOINT_SOURCE_SHORT',
        `${sqliteFile} holds ${Math.floor(size / pageSize)} pages, position ${source.position} needs ${databaseSizePages}`,
      );
    }
    let sum = 0n;
    for (let first = 1; first <= databaseSizePages; first += READ_PAGES) {
      checkStop?.();
      const count = Math.min(READ_PAGES, databaseSizePages - first + 1);
      // A fresh buffer per chunk: the writer may keep page references until its chunk is full.
      const buffer = Buffer.allocUnsafe(count * pageSize);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, (first - 1) * pageSize);
      if (bytesRead !== buffer.length) throw new Error(`short read of ${sqliteFile} at page ${first}`);
      const pages = [];
      for (let i = 0; i < count; i++) {
        const pageNumber = first + i;
        const data = buffer.subarray(i * pageSize, (i + 1) * pageSize);
        const hash = pageHash(pageNumber, data);
        if (expected && expected.hashOf(pageNumber) !== hash) {
          throw new LitebaseError(
            'CHECKPOINT_SOURCE_MISMATCH',
            `page ${pageNumber} of ${sqliteFile} does not hold what the log wrote there (hash ${formatChecksum(hash)}, expected ${formatChecksum(expected.hashOf(pageNumber))})`,
          );
        }
        sum ^= hash;
        pages.push({ pageNumber, data });
      }
      await writer.writePages(pages);
    }
    if (sum !== source.checksum) {
      throw new LitebaseError(
        'CHECKPOINT_SOURCE_MISMATCH',
        `the pages of ${sqliteFile} sum to checksum ${formatChecksum(sum)}, position ${source.position} has ${formatChecksum(source.checksum)}`,
      );
    }
    return await writer.finish();
  } catch (error) {
    await writer.abort();
    throw error;
  } finally {
    await handle.close();
  }
}

/**
 * The page hashes of an open checkpoint, chunk by chunk, checked as loadCheckpointIntoFile checks
 * them (the header rules, every page 1..N in order, and at the end the hashes summing to the
 * post-checksum) without writing the pages anywhere: `litebase inspect` verifies checkpoints with it.
 */
export async function* checkpointPageHashes(
  reader: SegmentFileReader,
  name: string,
  /** A range file (FORMAT.md §8.1): consecutive pages from its first one, not every page 1..N. */
  range = false,
): AsyncGenerator<Array<{ pageNumber: number; hash: bigint }>> {
  const { header } = reader;
  if (range) assertRangeFileHeader(header, name);
  else assertCheckpointHeader(header, name);
  let next = 0;
  let sum = 0n;
  for await (const pages of reader.chunks()) {
    if (next === 0) next = range ? (pages[0]?.pageNumber ?? 1) : 1;
    const hashes = pages.map(({ pageNumber, data }) => {
      if (pageNumber !== next) {
        throw new LitebaseError(
          'CHECKPOINT_INVALID',
          range
            ? `${name} is not a valid range file: page ${pageNumber} comes where page ${next} belongs; a range holds its pages in order`
            : `${name} is not a checkpoint: page ${pageNumber} comes where page ${next} belongs; a checkpoint holds every page, in order`,
          { details: { file: name } },
        );
      }
      next += 1;
      const hash = pageHash(pageNumber, data);
      sum ^= hash;
      return { pageNumber, hash };
    });
    yield hashes;
  }
  if (sum !== header.postChecksum) {
    throw new LitebaseError(
      'CHECKPOINT_CHECKSUM_MISMATCH',
      `${name}: its pages sum to checksum ${formatChecksum(sum)}, its header says ${formatChecksum(header.postChecksum)}`,
      { details: { file: name } },
    );
  }
}

/** A range file's own header rules (FORMAT.md §8.1), without its manifest entry. */
function assertRangeFileHeader(header: SegmentHeader, name: string): void {
  const problem =
    header.preChecksum !== 0n
      ? `pre-checksum is ${formatChecksum(header.preChecksum)}, a range file has 0`
      : header.transactionCount !== 0
        ? `transaction count is ${header.transactionCount}, a range file has 0`
        : header.pageCount === 0
          ? 'it holds no page'
          : undefined;
  if (problem) throw new LitebaseError('CHECKPOINT_INVALID', `${name} is not a valid range file: ${problem}`, { details: { file: name } });
}

export interface LoadedCheckpoint {
  header: SegmentHeader;
  hashes: PageHashTable;
}

/**
 * Write the pages of the checkpoint in `checkpointFile` into `sqliteFile` (replacing its content),
 * verifying the checkpoint's trailer first and its post-checksum as the pages go in. `onPages` sees
 * the bytes read so far (for progress). Answers the header and the page hashes of the new file.
 */
export async function loadCheckpointIntoFile(
  checkpointFile: string,
  sqliteFile: string,
  options: { databaseId?: string; name?: string; onProgress?: (bytesRead: number, totalBytes: number) => void } = {},
): Promise<LoadedCheckpoint> {
  const name = options.name ?? checkpointFile;
  const reader = await SegmentFileReader.open(checkpointFile, { name });
  try {
    const { header } = reader;
    assertCheckpointHeader(header, name, options.databaseId);
    await fs.mkdir(path.dirname(sqliteFile), { recursive: true });
    const handle = await fs.open(sqliteFile, 'w');
    const hashes = new PageHashTable(header.pageSize);
    try {
      let pagesDone = 0;
      for await (const pages of reader.chunks()) {
        for (const [index, page] of pages.entries()) {
          // Checked before a page is used: a gap would grow the file and the hash table to a size
          // only the header vouches for (a 200-byte file claiming 2^32 pages).
          if (page.pageNumber !== pagesDone + index + 1) {
            throw new LitebaseError(
              'CHECKPOINT_INVALID',
              `${name} is not a checkpoint: page ${page.pageNumber} comes where page ${pagesDone + index + 1} belongs; a checkpoint holds every page, in order`,
              { details: { file: name } },
            );
          }
          await handle.write(page.data, 0, page.data.length, (page.pageNumber - 1) * header.pageSize);
        }
        // Pages 1..N all present and ascending: each chunk extends the table without gaps.
        const last = pages.at(-1)?.pageNumber ?? 0;
        hashes.apply(
          pages.map(({ pageNumber, data }) => ({ pageNumber, hash: pageHash(pageNumber, data) })),
          last,
        );
        pagesDone += pages.length;
        options.onProgress?.(Math.round((reader.size * pagesDone) / Math.max(1, header.pageCount)), reader.size);
      }
      await handle.truncate(header.databaseSizePages * header.pageSize);
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (hashes.checksum !== header.postChecksum) {
      throw new LitebaseError(
        'CHECKPOINT_CHECKSUM_MISMATCH',
        `${name}: its pages sum to checksum ${formatChecksum(hashes.checksum)}, its header says ${formatChecksum(header.postChecksum)}`,
        { details: { file: name } },
      );
    }
    return { header, hashes };
  } finally {
    await reader.close();
  }
}

/**
 * Load the checkpoint `info` into `sqliteFile` (replacing its content). Range files are loaded on
 * threads, each verified as it goes in (src/replay/range-loader.ts); their checksums sum to the
 * manifest's (decodeManifest checked that), so the file ends with exactly the checkpoint's checksum.
 */
export async function loadCheckpoint(
  info: CheckpointInfo,
  sqliteFile: string,
  databaseId: string,
  options: {
    onProgress?: (bytesRead: number, totalBytes: number) => void;
    /** Load on threads (default: when the checkpoint holds THREADED_LOAD_BYTES or more). */
    threads?: boolean;
  } = {},
): Promise<PageHashTable> {
  if (info.kind === 'legacy') {
    const loaded = await loadCheckpointIntoFile(info.file, sqliteFile, {
      databaseId,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    return loaded.hashes;
  }
  const hashes = new BigUint64Array(info.databaseSizePages);
  const { pageSize } = info;
  await fs.mkdir(path.dirname(sqliteFile), { recursive: true });
  const handle = await fs.open(sqliteFile, 'w');
  try {
    await handle.truncate(info.databaseSizePages * pageSize);
    let done = 0;
    // The disk writes back what the threads wrote while they go on: without these syncs along the
    // way the page cache holds the whole database until the last fsync, which then writes all of
    // it after the threads are done (this project's test disk takes 2.9 s to write a gigabyte).
    let unsynced = 0;
    let syncing: Promise<void> | undefined;
    let syncFailure: unknown;
    try {
      await loadRanges(
        info.parts.map((part) => ({ file: part.file, name: part.file, range: part.range as ManifestRange })),
        { fd: handle.fd, databaseId, pageSize, hashes },
        {
          threads: options.threads ?? info.bytes >= THREADED_LOAD_BYTES,
          onLoaded: (range) => {
            done += range.bytes;
            options.onProgress?.(done, info.bytes);
            unsynced += range.pages * pageSize;
            if (unsynced >= LOAD_SYNC_BYTES && syncing === undefined) {
              unsynced = 0;
              syncing = handle
                .datasync()
                .catch((error: unknown) => void (syncFailure ??= error))
                .finally(() => (syncing = undefined));
            }
          },
        },
      );
    } finally {
      await syncing;
    }
    if (syncFailure !== undefined) throw syncFailure;
    await handle.sync();
  } finally {
    await handle.close();
  }
  // Every part summed to its checksum and the parts to the manifest's (decodeManifest): so does this.
  return PageHashTable.fromHashes(pageSize, hashes);
}

/**
 * Write the first `databaseSizePages` pages of `sqliteFile` as a range checkpoint (range files and
 * a manifest) at `source.position`: a restored database's first checkpoint, and the upgrade of a
 * folder of legacy checkpoints. Every page is hashed; with `expected` each must match its entry,
 * and the ranges must sum to `source.checksum`, or nothing is published.
 */
export async function writeCheckpointFromFile(
  directory: CheckpointDirectory,
  sqliteFile: string,
  source: CheckpointSource,
  rangePages: number,
  expected?: PageHashTable,
): Promise<{ created: boolean; manifest: CheckpointManifest }> {
  const { pageSize, databaseSizePages } = source;
  await fs.mkdir(directory.rangesDir, { recursive: true });
  const handle = await fs.open(sqliteFile, 'r');
  const ranges: ManifestRange[] = [];
  try {
    const { size } = await handle.stat();
    if (size < databaseSizePages * pageSize) {
      throw new LitebaseError(
        'CHECKPOINT_SOURCE_SHORT',
        `${sqliteFile} holds ${Math.floor(size / pageSize)} pages, position ${source.position} needs ${databaseSizePages}`,
      );
    }
    // Compressing drops a buffer per chunk: freed every 32 MiB of pages, not only at the end.
    const release = releaseEvery(32 * 1024 * 1024);
    // One buffer for every range: writeRangeFile keeps nothing of it (no 16 MiB of garbage per range).
    const rangeBuffer = Buffer.allocUnsafe(Math.min(rangePages, databaseSizePages) * pageSize);
    for (let index = 0; index < rangeCount(rangePages, databaseSizePages); index++) {
      const { firstPage, pages } = rangeExtent(index, rangePages, databaseSizePages);
      const images = rangeBuffer.subarray(0, pages * pageSize);
      const { bytesRead } = await handle.read(images, 0, images.length, (firstPage - 1) * pageSize);
      if (bytesRead !== images.length) throw new Error(`short read of ${sqliteFile} at page ${firstPage}`);
      let hashes: BigUint64Array | undefined;
      if (expected) {
        hashes = new BigUint64Array(pages);
        for (let i = 0; i < pages; i++) {
          const hash = pageHash(firstPage + i, images.subarray(i * pageSize, (i + 1) * pageSize));
          hashes[i] = hash;
          if (expected.hashOf(firstPage + i) !== hash) {
            throw new LitebaseError(
              'CHECKPOINT_SOURCE_MISMATCH',
              `page ${firstPage + i} of ${sqliteFile} does not hold what the log wrote there (hash ${formatChecksum(hash)}, expected ${formatChecksum(expected.hashOf(firstPage + i))})`,
            );
          }
        }
      }
      ranges.push(await writeRangeFile(directory.rangesDir, source, index, firstPage, images, hashes));
      release(images.length);
    }
  } finally {
    await handle.close();
    // Every range was read, hashed and compressed: much more memory went through than is kept.
    releaseFreeMemory();
  }
  const sum = ranges.reduce((xor, range) => xor ^ range.checksum, 0n);
  if (sum !== source.checksum) {
    await removeRangeFiles(directory, ranges);
    throw new LitebaseError(
      'CHECKPOINT_SOURCE_MISMATCH',
      `the pages of ${sqliteFile} sum to checksum ${formatChecksum(sum)}, position ${source.position} has ${formatChecksum(source.checksum)}`,
    );
  }
  const manifest: CheckpointManifest = {
    databaseId: source.databaseId,
    position: source.position,
    term: source.term,
    commitTimeMs: source.commitTimeMs,
    pageSize,
    databaseSizePages,
    checksum: source.checksum,
    rangePages,
    ranges,
  };
  const { created } = await directory.publishManifest(manifest);
  if (!created) await removeRangeFiles(directory, ranges);
  return { created, manifest };
}

/** Remove range files that no manifest will list (a checkpoint that was not published). */
export async function removeRangeFiles(directory: CheckpointDirectory, ranges: readonly ManifestRange[]): Promise<void> {
  for (const range of ranges) await fs.rm(directory.rangePath(range.file), { force: true });
}

/**
 * Cut a legacy checkpoint (one file, every page) into range files and publish a manifest at the
 * same position (FORMAT.md §8.4). Streamed: memory is one range. The legacy file stays until the
 * garbage collection's grace period has passed (a node may be loading it).
 */
export async function upgradeLegacyCheckpoint(
  directory: CheckpointDirectory,
  info: CheckpointInfo,
  databaseId: string,
  rangePages: number,
  checkStop?: () => void,
): Promise<{ created: boolean; manifest: CheckpointManifest }> {
  const { pageSize, databaseSizePages } = info;
  await fs.mkdir(directory.rangesDir, { recursive: true });
  const source = { databaseId, term: info.term, position: info.position, commitTimeMs: info.commitTimeMs, pageSize, databaseSizePages };
  const ranges: ManifestRange[] = [];
  try {
    const reader = await SegmentFileReader.open(info.file);
    try {
      let index = 0;
      let extent = rangeExtent(index, rangePages, databaseSizePages);
      let images = Buffer.allocUnsafe(extent.pages * pageSize);
      for await (const hashes of checkpointPageHashesWithImages(reader, info.file)) {
        for (const { pageNumber, data } of hashes) {
          images.set(data, (pageNumber - extent.firstPage) * pageSize);
          if (pageNumber === extent.firstPage + extent.pages - 1) {
            checkStop?.();
            ranges.push(await writeRangeFile(directory.rangesDir, source, index, extent.firstPage, images));
            index += 1;
            extent = rangeExtent(index, rangePages, databaseSizePages);
            images = Buffer.allocUnsafe(Math.max(0, extent.pages) * pageSize);
          }
        }
      }
    } finally {
      await reader.close();
    }
    const manifest: CheckpointManifest = { ...source, checksum: info.checksum, rangePages, ranges };
    const { created } = await directory.publishManifest(manifest);
    if (!created) await removeRangeFiles(directory, ranges);
    return { created, manifest: created ? manifest : await directory.readManifest(info.position, databaseId) };
  } catch (error) {
    await removeRangeFiles(directory, ranges).catch(() => undefined);
    throw error;
  }
}

/** The pages of a legacy checkpoint with their images, checked as checkpointPageHashes checks them. */
async function* checkpointPageHashesWithImages(
  reader: SegmentFileReader,
  name: string,
): AsyncGenerator<Array<{ pageNumber: number; data: Uint8Array }>> {
  assertCheckpointHeader(reader.header, name);
  let pagesDone = 0;
  let sum = 0n;
  for await (const pages of reader.chunks()) {
    for (const [index, { pageNumber, data }] of pages.entries()) {
      if (pageNumber !== pagesDone + index + 1) {
        throw new LitebaseError(
          'CHECKPOINT_INVALID',
          `${name} is not a checkpoint: page ${pageNumber} comes where page ${pagesDone + index + 1} belongs; a checkpoint holds every page, in order`,
          { details: { file: name } },
        );
      }
      sum ^= pageHash(pageNumber, data);
    }
    pagesDone += pages.length;
    yield pages;
  }
  if (sum !== reader.header.postChecksum) {
    throw new LitebaseError(
      'CHECKPOINT_CHECKSUM_MISMATCH',
      `${name}: its pages sum to checksum ${formatChecksum(sum)}, its header says ${formatChecksum(reader.header.postChecksum)}`,
      { details: { file: name } },
    );
  }
}
