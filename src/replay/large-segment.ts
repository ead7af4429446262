import { fstatSync, ftruncateSync, writeSync, writevSync } from 'node:fs';
import { systemErrorCode, type ErrorCode } from '../errors.js';
import { hashPageImage, type PageHashTable } from '../format/rolling-checksum.js';
import { SegmentFormatError, type PageImage, type SegmentHeader } from '../format/segment-codec.js';
import { SegmentFileReader } from '../log/segment-stream.js';

/**
 * Applying one segment too large to read and decode whole (src/log/segment-runs.ts stops a run
 * before it, LARGE_SEGMENT_BYTES) straight from its file into a local SQLite file, one chunk of
 * 256 pages in memory at a time: a transaction of any size costs a replica, a recovery or a replay
 * bounded memory (docs/ARCHITECTURE.md §2.6).
 *
 * Everything that can refuse the segment is checked before the first page is written: the trailer
 * over the whole file (so no damaged byte reaches LZ4), the database id, the position and the
 * pre-checksum. The file is read with asynchronous calls, so the event loop goes on meanwhile (a
 * segment of gigabytes takes a while): whoever serves reads from the file keeps them out until
 * this is done (a replica does, src/engine/replica-database.ts), since they would see half of it.
 */
export type LargeApplyOutcome =
  /** Applied: the file has the segment's pages and size; `hashes` (when given) its pages' hashes. */
  | { kind: 'applied'; header: SegmentHeader; schemaPageWritten: boolean }
  /** The file is gone (the compactor deleted it meanwhile): nothing was written. */
  | { kind: 'missing' }
  /** Damaged or not this database's: nothing was written; never apply it. */
  | { kind: 'corrupt'; code: ErrorCode; message: string }
  /** It does not start from the expected checksum: nothing was written. */
  | { kind: 'diverged'; preChecksum: bigint }
  /** The body turned out damaged after some pages were written: the local copy must be rebuilt. */
  | { kind: 'damaged'; code: ErrorCode; message: string };

export interface LargeApplyStart {
  databaseId: string;
  /** The position the segment must have (the one after the local copy's). */
  position: bigint;
  /** The local copy's rolling checksum: the segment's pre-checksum must equal it. */
  checksum: bigint;
}

/** Pages written with one writev at most (IOV_MAX is 1024; a chunk is 256). */
const MAX_PAGES_PER_WRITE = 256;

/**
 * Apply segment `file` to the SQLite file open as `fd`, whose size in pages the segment starts
 * from. With `hashes`, each page's hash is folded in as it is written (a replica keeps its table
 * current); the caller compares the result with the header's post-checksum.
 */
export async function applyLargeSegment(
  fd: number,
  file: string,
  start: LargeApplyStart,
  hashes?: PageHashTable,
): Promise<LargeApplyOutcome> {
  let reader: SegmentFileReader;
  try {
    reader = await SegmentFileReader.open(file);
  } catch (error) {
    if (systemErrorCode(error) === 'ENOENT') return { kind: 'missing' };
    if (error instanceof SegmentFormatError) return { kind: 'corrupt', code: error.code, message: error.message };
    throw error;
  }
  try {
    const { header } = reader;
    if (header.databaseId !== start.databaseId || header.position !== start.position) {
      return {
        kind: 'corrupt',
        code: 'LOG_FOREIGN_SEGMENT',
        message: `${file} is position ${header.position} of database ${header.databaseId}, expected position ${start.position} of ${start.databaseId}`,
      };
    }
    if (header.preChecksum !== start.checksum) return { kind: 'diverged', preChecksum: header.preChecksum };
    let schemaPageWritten = false;
    try {
      for await (const pages of reader.chunks()) {
        writePages(fd, pages, header.pageSize);
        if (pages[0]?.pageNumber === 1) schemaPageWritten = true;
        if (hashes) foldHashes(hashes, pages);
      }
    } catch (error) {
      if (error instanceof SegmentFormatError) return { kind: 'damaged', code: error.code, message: error.message };
      throw error;
    }
    // A segment's pages all lie within its size: writing them first, then setting the size, is
    // what a cut followed by the writes would give.
    const size = header.databaseSizePages * header.pageSize;
    if (fstatSync(fd).size !== size) ftruncateSync(fd, size);
    hashes?.apply([], header.databaseSizePages);
    return { kind: 'applied', header, schemaPageWritten };
  } finally {
    await reader.close();
  }
}

/**
 * Fold one chunk's page hashes into the table without growing it past the chunk's last page:
 * growing to the segment's size at once would hash every page not written yet as zeros first.
 * Pages come in ascending order, so a page skipped here is never written later in the segment.
 */
function foldHashes(hashes: PageHashTable, pages: readonly PageImage[]): void {
  const last = pages[pages.length - 1];
  if (!last) return;
  const hashed = pages.map(({ pageNumber, data }) => ({ pageNumber, hash: hashPageImage(pageNumber, data) }));
  hashes.apply(hashed, Math.max(hashes.databaseSizePages, last.pageNumber));
}

/** Stretches of neighbouring pages with one writev each. */
function writePages(fd: number, pages: readonly PageImage[], pageSize: number): void {
  for (let i = 0; i < pages.length;) {
    const first = (pages[i] as PageImage).pageNumber;
    const stretch: Buffer[] = [];
    while (i < pages.length && pages[i]?.pageNumber === first + stretch.length && stretch.length < MAX_PAGES_PER_WRITE) {
      stretch.push((pages[i] as PageImage).data);
      i++;
    }
    const offset = (first - 1) * pageSize;
    let written = writevSync(fd, stretch, offset);
    // A short write is rare (a signal): finish what is left.
    let at = 0;
    for (const page of stretch) {
      const end = at + page.length;
      while (written < end) written += writeSync(fd, page, written - at, end - written, offset + written);
      at = end;
    }
  }
}
