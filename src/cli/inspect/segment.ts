import { formatChecksum, pageHash } from '../../format/rolling-checksum.js';
import {
  decodeSegmentHeader,
  decodeSegmentLayout,
  SEGMENT_TRAILER_SIZE,
  type PageImage,
  type SegmentChunkLayout,
  type SegmentHeader,
} from '../../format/segment-codec.js';
import {
  headerReport,
  problemOf,
  type ChunkReport,
  type ContainerReport,
  type InspectOptions,
  type InspectReport,
  type PageReport,
  type Problem,
} from './report.js';

/** A segment file's name in the log: its position, 20 digits (docs/FORMAT.md §1). */
const SEGMENT_NAME = /(?:^|[\\/])(\d{20})\.seg$/;

/** Describes and verifies one segment file held in memory, with the codec's decoder. */
export function inspectSegment(bytes: Buffer, file: string, options: InspectOptions): InspectReport {
  const report: InspectReport = { file, kind: 'segment', bytes: bytes.length, valid: false };
  const segment: ContainerReport = { chunks: [], pagesVerified: 0 };
  report.segment = segment;
  const header = headerIfReadable(bytes);
  if (header) segment.header = headerReport(header);
  if (bytes.length >= SEGMENT_TRAILER_SIZE) segment.trailer = bytes.subarray(bytes.length - SEGMENT_TRAILER_SIZE).toString('hex');
  let decoded: ReturnType<typeof decodeSegmentLayout>;
  try {
    decoded = decodeSegmentLayout(bytes);
  } catch (error) {
    report.problem = problemOf(error, `${file}: `);
    if (report.problem.code === 'SEGMENT_CHECKSUM_MISMATCH') report.located = locateInContainer(bytes, file);
    return report;
  }
  Object.assign(segment, describeContainer(decoded.header, decoded.pages, decoded.chunks, options));
  const named = SEGMENT_NAME.exec(file)?.[1];
  if (named !== undefined && BigInt(named) !== decoded.header.position) {
    report.problem = {
      code: 'LOG_FOREIGN_SEGMENT',
      message: `${file}: the header says position ${decoded.header.position}, the file name ${BigInt(named)}`,
    };
    return report;
  }
  report.valid = true;
  return report;
}

/** The header, when the first 96 bytes hold one (trailer not checked: for display only). */
export function headerIfReadable(bytes: Buffer): SegmentHeader | undefined {
  try {
    return decodeSegmentHeader(bytes);
  } catch {
    return undefined;
  }
}

/** Chunks and pages of a decoded segment container, as the report shows them. */
export function describeContainer(
  header: SegmentHeader,
  pages: readonly PageImage[],
  chunks: readonly SegmentChunkLayout[],
  options: InspectOptions,
): Pick<ContainerReport, 'header' | 'chunks' | 'pagesVerified' | 'firstPage' | 'lastPage' | 'pages'> {
  const chunkReports: ChunkReport[] = [];
  const pageReports: PageReport[] = [];
  let next = 0;
  chunks.forEach((chunk, index) => {
    const mine = pages.slice(next, next + chunk.pagesInChunk);
    next += chunk.pagesInChunk;
    chunkReports.push({ index, ...chunk, firstPage: mine[0]?.pageNumber ?? 0, lastPage: mine.at(-1)?.pageNumber ?? 0 });
    if (options.pages) {
      for (const { pageNumber, data } of mine)
        pageReports.push({ pageNumber, pageHash: formatChecksum(pageHash(pageNumber, data)), chunk: index });
    }
  });
  return {
    header: headerReport(header),
    chunks: chunkReports,
    pagesVerified: pages.length,
    ...(pages.length > 0 ? { firstPage: pages[0]?.pageNumber, lastPage: pages.at(-1)?.pageNumber } : {}),
    ...(options.pages ? { pages: pageReports } : {}),
  };
}

/**
 * After the trailer failed: decode the container again as if the trailer were right, to tell where
 * the damage is. The first check that fails names the chunk, offset or header field; when all pass,
 * the damage is in bytes only the trailer covers (page bytes, most header fields), and for a
 * container that starts from an empty database (a checkpoint, a first segment) the page hashes
 * still tell whether the pages are the ones the post-checksum describes.
 */
export function locateInContainer(bytes: Buffer, file: string): Problem | { note: string } {
  let decoded: ReturnType<typeof decodeSegmentLayout>;
  try {
    decoded = decodeSegmentLayout(bytes, { trailerVerified: true });
  } catch (error) {
    return problemOf(error, `${file}: `);
  }
  const { header, pages, chunks } = decoded;
  const structure = `every other check passes (${chunks.length} chunks, ${pages.length} pages decode)`;
  if (header.preChecksum === 0n && pages.length === header.databaseSizePages) {
    let sum = 0n;
    for (const { pageNumber, data } of pages) sum ^= pageHash(pageNumber, data);
    if (sum !== header.postChecksum) {
      return {
        note: `${structure}, but the pages sum to checksum ${formatChecksum(sum)}, the header says ${formatChecksum(header.postChecksum)}: page bytes or the post-checksum are damaged`,
      };
    }
    return { note: `${structure} and the pages sum to the post-checksum: the damage is in a header field or the trailer itself` };
  }
  return { note: `${structure}: the damage is in page bytes, a header field or the trailer itself` };
}
