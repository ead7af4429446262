import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { LitebaseError, systemErrorCode } from '../errors.js';
import { assertRangeHeader, rangeFileName, type ManifestRange } from '../format/checkpoint-manifest.js';
import { formatChecksum, hashPageImage } from '../format/rolling-checksum.js';
import type { PageImage } from '../format/segment-codec.js';
import { SegmentFileReader, SegmentFileWriter } from '../log/segment-stream.js';
import { tempName } from '../storage/fs-util.js';

/**
 * Range files (docs/FORMAT.md §8.1): a fixed range of a database's pages in the segment container,
 * written once and never changed. A range is at most `rangePages` pages (16 MiB by default), so a
 * writer assembles it in memory, hashes it (its checksum goes into the header, which comes first),
 * then streams it out; a reader streams it chunk by chunk.
 */

/** What a range file's header says besides its pages: the checkpoint position that wrote it. */
export interface RangeFileSource {
  databaseId: string;
  term: bigint;
  position: bigint;
  commitTimeMs: number;
  pageSize: number;
  databaseSizePages: number;
}

/**
 * Write pages `firstPage..firstPage+pages-1` (laid out one after another in `images`) as a range
 * file in `rangesDir`: a temp file, fsynced, linked to a name no other writer can pick. The folder
 * is not fsynced here: a caller writing many ranges fsyncs it once before its manifest is published.
 * `pageHashes`: each page's hash (rolling-checksum.ts), when the caller has just computed them from
 * these very images (a restore's checkpoint checks every page against the log's hash): not hashed
 * twice.
 */
export async function writeRangeFile(
  rangesDir: string,
  source: RangeFileSource,
  index: number,
  firstPage: number,
  images: Buffer,
  pageHashes?: BigUint64Array,
): Promise<ManifestRange> {
  const { pageSize } = source;
  const pages = images.length / pageSize;
  if (!Number.isInteger(pages) || pages < 1) throw new RangeError(`a range holds whole pages, got ${images.length} bytes`);
  if (pageHashes && pageHashes.length !== pages) throw new RangeError(`${pageHashes.length} page hashes for ${pages} pages`);
  const list: PageImage[] = [];
  let checksum = 0n;
  for (let i = 0; i < pages; i++) {
    const data = images.subarray(i * pageSize, (i + 1) * pageSize);
    checksum ^= pageHashes ? (pageHashes[i] as bigint) : hashPageImage(firstPage + i, data);
    list.push({ pageNumber: firstPage + i, data });
  }
  const file = rangeFileName(index, source.position, randomBytes(8).toString('hex'));
  const target = path.join(rangesDir, file);
  const temp = tempName(target);
  // Compressed on this thread, a chunk at a time between the writes (a 1 MiB chunk of random pages
  // holds the event loop up to ~5 ms on this project's test machine, text ~0.1 ms). On the libuv thread
  // pool, lz4-napi's outputs came from those threads' own heaps of its allocator, which keep freed
  // pages until the same thread allocates again: a Primary folding a gigabyte of log peaked at
  // 474 MiB instead of 297, and the fold took 44 s instead of 16 (docs/ARCHITECTURE.md §18).
  const writer = await SegmentFileWriter.create(
    temp,
    {
      databaseId: source.databaseId,
      term: source.term,
      position: source.position,
      commitTimeMs: source.commitTimeMs,
      pageSize,
      databaseSizePages: source.databaseSizePages,
      pageCount: pages,
      transactionCount: 0,
      preChecksum: 0n,
      postChecksum: checksum,
    },
    { compressOnThisThread: true },
  );
  try {
    await writer.writePages(list);
    const written = await writer.finish();
    await fs.link(temp, target);
    await fs.rm(temp, { force: true });
    return { index, file, firstPage, pages, bytes: written.bytes, sha256: written.sha256, checksum };
  } catch (error) {
    await writer.abort();
    await fs.rm(temp, { force: true }).catch(() => undefined);
    throw error;
  }
}

/**
 * What failing to open or read range file `name` means: a file that is gone was collected after a
 * newer checkpoint replaced the one being read (CHECKPOINT_RANGE_MISSING, which a loader answers
 * by starting again from the newest); anything else as it is.
 */
export function rangeOpenError(error: unknown, name: string): unknown {
  if (systemErrorCode(error) !== 'ENOENT') return error;
  return new LitebaseError('CHECKPOINT_RANGE_MISSING', `${name} is gone (a newer checkpoint replaced it and it was collected)`, {
    details: { file: name },
    cause: error,
  });
}

/**
 * The pages of a range file as its manifest entry describes it, chunk by chunk, every rule
 * checked: the trailer before anything is decompressed, the header against the entry, pages
 * consecutive from the entry's first page, and at the end the page hashes summing to its checksum.
 * `onPages` gets each chunk's pages with their hashes.
 */
export async function readRangeFile(
  file: string,
  range: ManifestRange,
  databaseId: string,
  onPages: (pages: PageImage[], hashes: bigint[]) => void | Promise<void>,
  name = file,
): Promise<void> {
  let reader: SegmentFileReader;
  try {
    reader = await SegmentFileReader.open(file, { name });
  } catch (error) {
    throw rangeOpenError(error, name);
  }
  try {
    assertRangeHeader(reader.header, range, name, databaseId);
    let next = range.firstPage;
    let sum = 0n;
    for await (const pages of reader.chunks()) {
      const hashes: bigint[] = [];
      for (const page of pages) {
        if (page.pageNumber !== next) {
          throw new LitebaseError(
            'CHECKPOINT_INVALID',
            `${name} is not a valid checkpoint: page ${page.pageNumber} comes where page ${next} belongs; a range holds its pages in order`,
            { details: { file: name } },
          );
        }
        const hash = hashPageImage(page.pageNumber, page.data as Buffer);
        sum ^= hash;
        hashes.push(hash);
        next += 1;
      }
      await onPages(pages, hashes);
    }
    if (sum !== range.checksum) {
      throw new LitebaseError(
        'CHECKPOINT_CHECKSUM_MISMATCH',
        `${name}: its pages sum to checksum ${formatChecksum(sum)}, its manifest says ${formatChecksum(range.checksum)}`,
        { details: { file: name } },
      );
    }
  } finally {
    await reader.close();
  }
}

/** The pages of a range file in one buffer (`range.pages` pages, verified as readRangeFile does). */
export async function readRangeImages(file: string, range: ManifestRange, databaseId: string, pageSize: number): Promise<Buffer> {
  const images = Buffer.allocUnsafe(range.pages * pageSize);
  await readRangeFile(file, range, databaseId, (pages) => {
    for (const { pageNumber, data } of pages) images.set(data, (pageNumber - range.firstPage) * pageSize);
  });
  return images;
}
