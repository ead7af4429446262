import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { LitebaseError, systemErrorCode } from '../errors.js';
import { rangeCount, rangeExtent, type CheckpointManifest, type ManifestRange } from '../format/checkpoint-manifest.js';
import { formatChecksum } from '../format/rolling-checksum.js';
import { decodeSegment, SegmentFormatError, type PageImage, type SegmentHeader } from '../format/segment-codec.js';
import type { LogDirectory } from '../log/log-directory.js';
import { declaredPageBytes, LARGE_SEGMENT_BYTES } from '../log/segment-runs.js';
import { removeRangeFiles, type CheckpointDirectory } from '../replay/checkpoints.js';
import { readRangeImages, writeRangeFile } from '../replay/range-files.js';

/**
 * A compaction without a copy of the database (docs/FORMAT.md §8, docs/ARCHITECTURE.md §12): the
 * log after the newest manifest is folded onto that manifest's range files, and only the ranges
 * that hold a changed page are rewritten; the others are listed again as they are.
 *
 *  1. Read the segments after the base manifest in order, each verified (trailer, database,
 *     position, and the chain: its pre-checksum is the previous post-checksum). Their newest page
 *     images go to a spill file in the compactor's work folder, so memory holds one segment and a
 *     page number -> offset map, never the changed pages themselves.
 *  2. For every range that holds a changed page (or whose extent changed with the database size),
 *     start from the base range's pages (verified as read), put the newest images over them, and
 *     write a new range file. A page past the smallest size the database had since the base and not
 *     written since is zeros (that is what SQLite's file holds there).
 *  3. The ranges' checksums must sum to the last segment's post-checksum, or nothing is published
 *     (CHECKPOINT_FOLD_MISMATCH): the fold is proven by the log's own rolling checksum.
 *
 * Cost: the log since the base, plus the changed ranges read and written. A small change to a big
 * database rewrites one range (16 MiB by default), never the database.
 */

export interface FoldInput {
  directory: CheckpointDirectory;
  log: LogDirectory;
  databaseId: string;
  /** The newest manifest, or undefined for a database that has none yet (the fold starts from empty). */
  base: CheckpointManifest | undefined;
  /** Pages per range for new manifests (a base with another range size is rewritten whole). */
  rangePages: number;
  /** A folder of this node's own for the spill file. */
  workDir: string;
  logger: Logger;
  /** Throws to give up (called between segments and ranges). */
  checkStop: () => void;
}

export interface FoldResult {
  manifest: CheckpointManifest;
  /** False when another compactor published a manifest at that position first (this one's files were removed). */
  created: boolean;
  /** Range files written by this fold. */
  written: ManifestRange[];
  /** Segments folded. */
  segments: number;
}

const SPILL_BUFFER_BYTES = 4 * 1024 * 1024;

/** Fold the log after `base` into a new manifest; undefined when the log holds nothing after it. */
export async function foldLogIntoCheckpoint(input: FoldInput): Promise<FoldResult | undefined> {
  const { base, log, databaseId, logger } = input;
  const basePosition = base?.position ?? 0n;
  const positions = (await log.positions()).filter((position) => position > basePosition);
  if (positions[0] !== basePosition + 1n) return undefined;

  await fs.mkdir(input.workDir, { recursive: true });
  await fs.mkdir(input.directory.rangesDir, { recursive: true });
  const spill = new PageSpill(path.join(input.workDir, `fold-${process.pid}-${Date.now()}.pages`));
  await spill.open();
  try {
    let checksum = base?.checksum ?? 0n;
    let size = base?.databaseSizePages ?? 0;
    let minSize = size;
    let pageSize = base?.pageSize ?? 0;
    let last: SegmentHeader | undefined;
    let segments = 0;
    for (const position of positions) {
      input.checkStop();
      if (position !== (last?.position ?? basePosition) + 1n) break; // a gap: the checkpoint stops before it
      const file = log.describe(position);
      let header: SegmentHeader;
      let spilled = false;
      try {
        header = await readSegmentPages(log, position, (pages, segmentHeader) => {
          spilled = true;
          return spill.putAll(pages, segmentHeader.databaseSizePages);
        });
      } catch (error) {
        // A streamed segment that fails after some of its pages were spilled cannot be left out: give up.
        if (spilled || (!(error instanceof SegmentFormatError) && systemErrorCode(error) !== 'ENOENT')) throw error;
        // Never applied: the checkpoint stops before it (replicas refuse it too).
        logger.error({ err: error, file }, 'segment cannot be read; the checkpoint stops before it');
        break;
      }
      if (header.databaseId !== databaseId || header.position !== position) {
        throw new LitebaseError('LOG_FOREIGN_SEGMENT', `${file} is position ${header.position} of database ${header.databaseId}`);
      }
      if (header.preChecksum !== checksum) {
        throw new LitebaseError(
          'LOG_CHAIN_BROKEN',
          `${file} starts from checksum ${formatChecksum(header.preChecksum)}, the checkpoint before it has ${formatChecksum(checksum)}`,
        );
      }
      if (pageSize !== 0 && header.pageSize !== pageSize) {
        throw new LitebaseError('LOG_CHAIN_BROKEN', `${file} has pages of ${header.pageSize} bytes, the database ${pageSize}`);
      }
      pageSize = header.pageSize;
      checksum = header.postChecksum;
      size = header.databaseSizePages;
      if (size < minSize) minSize = size;
      spill.truncate(size);
      last = header;
      segments += 1;
    }
    if (!last) return undefined;
    await spill.flush();

    // Which ranges change: those with a newer page, those past the smallest size (zeros or new
    // pages), and any whose extent is not the base range's (the database grew or shrank into it).
    const rangePages = base && base.rangePages === input.rangePages ? base.rangePages : input.rangePages;
    const reuseBase = base !== undefined && base.rangePages === rangePages;
    const changed = new Set<number>();
    for (const pageNumber of spill.pageNumbers()) changed.add(Math.floor((pageNumber - 1) / rangePages));
    const count = rangeCount(rangePages, size);
    for (let index = 0; index < count; index++) {
      const extent = rangeExtent(index, rangePages, size);
      const old = reuseBase ? base.ranges[index] : undefined;
      if (!old || old.pages !== extent.pages || extent.firstPage + extent.pages - 1 > minSize) changed.add(index);
    }

    const source = {
      databaseId,
      term: last.term,
      position: last.position,
      commitTimeMs: last.commitTimeMs,
      pageSize,
      databaseSizePages: size,
    };
    const ranges: ManifestRange[] = [];
    const written: ManifestRange[] = [];
    try {
      for (let index = 0; index < count; index++) {
        input.checkStop();
        const old = reuseBase ? base.ranges[index] : undefined;
        if (old && !changed.has(index)) {
          ranges.push(old);
          continue;
        }
        const { firstPage, pages } = rangeExtent(index, rangePages, size);
        const images = Buffer.alloc(pages * pageSize);
        // Base pages still valid: up to the smallest size since the base (past it they were cut off).
        const fromBase = base ? Math.min(firstPage + pages - 1, minSize) - firstPage + 1 : 0;
        if (base && fromBase > 0) await copyBasePages(input, base, firstPage, fromBase, images);
        await spill.readInto(firstPage, pages, pageSize, images);
        const range = await writeRangeFile(input.directory.rangesDir, source, index, firstPage, images);
        written.push(range);
        ranges.push(range);
      }
      const sum = ranges.reduce((xor, range) => xor ^ range.checksum, 0n);
      if (sum !== checksum) {
        throw new LitebaseError(
          'CHECKPOINT_FOLD_MISMATCH',
          `folding positions ${basePosition + 1n}..${last.position} gave checksum ${formatChecksum(sum)}, the log has ${formatChecksum(checksum)}`,
        );
      }
      const manifest: CheckpointManifest = { ...source, checksum, rangePages, ranges };
      const { created } = await input.directory.publishManifest(manifest);
      if (!created) await removeRangeFiles(input.directory, written);
      return { manifest, created, written: created ? written : [], segments };
    } catch (error) {
      await removeRangeFiles(input.directory, written).catch(() => undefined);
      throw error;
    }
  } finally {
    await spill.close();
  }
}

/** Copy `count` pages from `firstPage` out of the base checkpoint's range files into `images`. */
async function copyBasePages(input: FoldInput, base: CheckpointManifest, firstPage: number, count: number, images: Buffer): Promise<void> {
  const { pageSize } = base;
  let pageNumber = firstPage;
  while (pageNumber < firstPage + count) {
    const range = base.ranges[Math.floor((pageNumber - 1) / base.rangePages)];
    if (!range) break;
    const rangeImages = await readRangeImages(input.directory.rangePath(range.file), range, input.databaseId, pageSize);
    const from = pageNumber - range.firstPage;
    const take = Math.min(range.pages - from, firstPage + count - pageNumber);
    rangeImages.copy(images, (pageNumber - firstPage) * pageSize, from * pageSize, (from + take) * pageSize);
    pageNumber += take;
  }
}

/**
 * Read one segment's pages, verified as the segment codec verifies them: whole when small (file and
 * page images at most LARGE_SEGMENT_BYTES), else chunk by chunk with the streaming reader (a 1 GiB
 * transaction is never held in memory).
 */
async function readSegmentPages(
  log: LogDirectory,
  position: bigint,
  onPages: (pages: readonly PageImage[], header: SegmentHeader) => Promise<void>,
): Promise<SegmentHeader> {
  if ((await log.size(position)) <= LARGE_SEGMENT_BYTES) {
    const bytes = await log.read(position);
    // Small on disk but large once decompressed (pages that compress well): streamed all the same.
    if (declaredPageBytes(bytes) <= LARGE_SEGMENT_BYTES) {
      const { header, pages } = decodeSegment(bytes);
      await onPages(pages, header);
      return header;
    }
  }
  const reader = await log.openReader(position);
  try {
    for await (const pages of reader.chunks()) await onPages(pages, reader.header);
    return reader.header;
  } finally {
    await reader.close();
  }
}

/**
 * The newest image of each page written since the base, in a local file: page number -> offset.
 * A newer image of a page is appended and the offset moves (the older bytes stay as garbage until
 * the fold ends; the file is bounded by the log being folded).
 */
class PageSpill {
  private handle: fs.FileHandle | undefined;
  private readonly offsets = new Map<number, number>();
  private buffer = Buffer.allocUnsafe(SPILL_BUFFER_BYTES);
  private buffered = 0;
  private fileBytes = 0;

  constructor(private readonly file: string) {}

  async open(): Promise<void> {
    this.handle = await fs.open(this.file, 'w+');
  }

  /** Record the pages of one segment; pages past the segment's database size are not data. */
  async putAll(pages: readonly PageImage[], databaseSizePages: number): Promise<void> {
    for (const { pageNumber, data } of pages) {
      if (pageNumber > databaseSizePages) continue;
      if (this.buffered + data.length > this.buffer.length) await this.flush();
      if (data.length > this.buffer.length) this.buffer = Buffer.allocUnsafe(data.length);
      this.buffer.set(data, this.buffered);
      this.offsets.set(pageNumber, this.fileBytes + this.buffered);
      this.buffered += data.length;
    }
  }

  /** The database shrank to `databaseSizePages`: images past it are gone. */
  truncate(databaseSizePages: number): void {
    for (const pageNumber of this.offsets.keys()) if (pageNumber > databaseSizePages) this.offsets.delete(pageNumber);
  }

  pageNumbers(): IterableIterator<number> {
    return this.offsets.keys();
  }

  async flush(): Promise<void> {
    if (this.buffered === 0 || !this.handle) return;
    let done = 0;
    while (done < this.buffered) {
      const { bytesWritten } = await this.handle.write(this.buffer, done, this.buffered - done, this.fileBytes + done);
      done += bytesWritten;
    }
    this.fileBytes += this.buffered;
    this.buffered = 0;
  }

  /** Put the spilled images of pages `firstPage..firstPage+pages-1` into `images` (others untouched). */
  async readInto(firstPage: number, pages: number, pageSize: number, images: Buffer): Promise<void> {
    if (!this.handle) return;
    for (let i = 0; i < pages; i++) {
      const offset = this.offsets.get(firstPage + i);
      if (offset === undefined) continue;
      const { bytesRead } = await this.handle.read(images, i * pageSize, pageSize, offset);
      if (bytesRead !== pageSize) throw new Error(`short read of ${this.file} at ${offset}`);
    }
  }

  async close(): Promise<void> {
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
    await fs.rm(this.file, { force: true });
  }
}
