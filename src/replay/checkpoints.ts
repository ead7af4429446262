import { promises as fs } from 'node:fs';
import path from 'node:path';
import { LitebaseError, systemErrorCode } from '../errors.js';
import { assertCheckpointHeader } from '../format/checkpoint-header.js';
import { formatChecksum, pageHash, PageHashTable } from '../format/rolling-checksum.js';
import type { SegmentHeader } from '../format/segment-codec.js';
import { SegmentFileReader, SegmentFileWriter, type WrittenSegmentFile } from '../log/segment-stream.js';
import { fsyncDir, tempName, positionsInFolder } from '../storage/fs-util.js';
import { formatPosition } from '../storage/layout.js';

/**
 * Checkpoints (docs/FORMAT.md §8): the whole database at one log position, in the segment
 * container (pre-checksum 0, every page 1..N, post-checksum = the database checksum there). They
 * are written and read as streams, a chunk of 256 pages at a time, and every page is hashed on the
 * way: a checkpoint whose pages do not sum to its post-checksum is never published, and one that
 * does not load to its post-checksum is never used.
 */

const CHECKPOINT_FILE = /^(\d{20})\.ckpt$/;
const READ_PAGES = 256;

/** The checkpoint folder of one database on the shared file system. */
export class CheckpointDirectory {
  constructor(readonly dir: string) {}

  /** The checkpoints of the database whose log is in `logDir` (they are siblings). */
  static besideLog(logDir: string): CheckpointDirectory {
    return new CheckpointDirectory(path.join(path.dirname(logDir), 'checkpoints'));
  }

  checkpointPath(position: bigint): string {
    return path.join(this.dir, `${formatPosition(position)}.ckpt`);
  }

  /** Positions of the checkpoints present, ascending. */
  async positions(): Promise<bigint[]> {
    return positionsInFolder(this.dir, CHECKPOINT_FILE);
  }

  async newest(): Promise<bigint | undefined> {
    return (await this.positions()).at(-1);
  }

  /**
   * Publish checkpoint `position`: `fill` writes a temp file in this folder, which is then linked
   * to the final name (exclusive: an existing checkpoint is never replaced) and the folder fsynced.
   * Answers false when the checkpoint already existed (another compactor made it).
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
      let created = true;
      try {
        await fs.link(temp, target);
      } catch (error) {
        if (systemErrorCode(error) !== 'EEXIST') throw error;
        created = false;
      }
      await fs.rm(temp, { force: true });
      await fsyncDir(this.dir);
      return { created, file: target, written };
    } catch (error) {
      await fs.rm(temp, { force: true }).catch(() => undefined);
      throw error;
    }
  }

  async remove(positions: readonly bigint[]): Promise<void> {
    if (positions.length === 0) return;
    for (const position of positions) await fs.rm(this.checkpointPath(position), { force: true });
    await fsyncDir(this.dir);
  }
}

export interface CheckpointSource {
  databaseId: string;
  term: bigint;
  position: bigint;
  commitTimeMs: number;
  pageSize: number;
  databaseSizePages: number;
  /** The database checksum at `position`: the checkpoint's post-checksum. */
  checksum: bigint;
}

/**
 * Write the first `databaseSizePages` pages of `sqliteFile` as a checkpoint into `target` (a new
 * file). Every page is hashed; with `expected` (the page hashes the caller maintained while it
 * applied the log) each page must match its entry, which names the first damaged page. Either way
 * the pages must sum to `source.checksum`, or the file is removed and nothing is published.
 */
export async function writeCheckpointFromFile(
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
): AsyncGenerator<Array<{ pageNumber: number; hash: bigint }>> {
  const { header } = reader;
  assertCheckpointHeader(header, name);
  let pagesDone = 0;
  let sum = 0n;
  for await (const pages of reader.chunks()) {
    const hashes = pages.map(({ pageNumber, data }, index) => {
      if (pageNumber !== pagesDone + index + 1) {
        throw new LitebaseError(
          'CHECKPOINT_INVALID',
          `${name} is not a checkpoint: page ${pageNumber} comes where page ${pagesDone + index + 1} belongs; a checkpoint holds every page, in order`,
          { details: { file: name } },
        );
      }
      const hash = pageHash(pageNumber, data);
      sum ^= hash;
      return { pageNumber, hash };
    });
    pagesDone += pages.length;
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
