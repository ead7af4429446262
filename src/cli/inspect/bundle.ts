import { bundleFormatOf, PageMajorBundle, SegmentRecordBundle } from '../../format/bundle-codec.js';
import { formatChecksum } from '../../format/rolling-checksum.js';
import { decodeSegmentLayout, type SegmentHeader } from '../../format/segment-codec.js';
import { describeContainer } from './segment.js';
import {
  hex32,
  isoTime,
  problemOf,
  type BundleReport,
  type BundleSegmentReport,
  type InspectOptions,
  type InspectReport,
  type Problem,
} from './report.js';

/** A bundle's key in the archive ends in its first and last positions (docs/FORMAT.md §11). */
const BUNDLE_NAME = /(?:^|[\\/])(\d{20})-(\d{20})\.seg$/;

/**
 * Describes and verifies an archive bundle of either format with the bundle codec: format 2 by its
 * trailer, tables checksum and tables, then every image decoded once (CRC-32 before each payload
 * is decompressed, page numbers, recorded page hashes); format 1 segment by segment. For both, the
 * segments must chain (each pre-checksum the previous post-checksum) and match the file name.
 */
export function inspectBundle(bytes: Buffer, file: string, options: InspectOptions): InspectReport {
  const format = bundleFormatOf(bytes);
  const bundle: BundleReport = { format, segments: [], imagesVerified: 0 };
  const report: InspectReport = { file, kind: 'bundle', bytes: bytes.length, valid: false, bundle };
  const problem = format === 2 ? verifyPageMajor(bytes, file, bundle, report, options) : verifyRecords(bytes, file, bundle, options);
  if (problem) {
    report.problem = problem;
    return report;
  }
  const chainProblem = checkChain(bundle.segments, file) ?? checkName(bundle, file);
  if (chainProblem) {
    report.problem = chainProblem;
    return report;
  }
  report.valid = true;
  return report;
}

function verifyPageMajor(
  bytes: Buffer,
  file: string,
  report: BundleReport,
  inspect: InspectReport,
  options: InspectOptions,
): Problem | undefined {
  let parsed: PageMajorBundle;
  try {
    parsed = PageMajorBundle.parse(bytes, file, true);
  } catch (error) {
    const problem = problemOf(error);
    inspect.located = locatePageMajor(bytes, file, problem);
    return problem;
  }
  describePageMajor(parsed, report);
  if (options.pages) report.images = [];
  try {
    parsed.verifyImages((image) => {
      report.imagesVerified++;
      report.images?.push({
        position: (parsed.headers[image.segment] as SegmentHeader).position.toString(),
        pageNumber: image.pageNumber,
        pageHash: formatChecksum(image.pageHash),
        newest: image.newest,
        offset: image.offset,
        compressedLength: image.compressedLength,
        crc32: hex32(image.crc32),
      });
    });
  } catch (error) {
    return problemOf(error);
  }
  return undefined;
}

/**
 * After the whole-object check failed: check the bundle piece by piece, as a restore does (tables
 * checksum, tables, each payload's CRC-32), to name what is damaged.
 */
function locatePageMajor(bytes: Buffer, file: string, first: Problem): Problem | { note: string } | undefined {
  let parsed: PageMajorBundle;
  try {
    parsed = PageMajorBundle.parse(bytes, file, false);
  } catch (error) {
    const problem = problemOf(error);
    return problem.message === first.message ? undefined : problem;
  }
  try {
    parsed.verifyImages();
  } catch (error) {
    return problemOf(error);
  }
  return {
    note: 'the tables checksum, the tables and every payload check out: the damage is in bytes only the trailer covers, or the trailer itself',
  };
}

function describePageMajor(parsed: PageMajorBundle, report: BundleReport): void {
  const layout = parsed.layout();
  const first = parsed.headers[0] as SegmentHeader;
  report.databaseId = first.databaseId;
  report.pageSize = parsed.pageSize;
  report.firstPosition = first.position.toString();
  report.lastPosition = (parsed.headers.at(-1) as SegmentHeader).position.toString();
  report.segments = parsed.headers.map((header) => segmentRow(header));
  report.tables = {
    pages: layout.pages,
    olderImages: layout.olderImages,
    blocks: layout.blocks.length,
    dataStart: layout.dataStart,
    historyStart: layout.historyStart,
    tablesChecksum: layout.tablesChecksum,
    trailer: layout.trailer,
  };
  report.blocks = layout.blocks.map((block, index) => ({ index, ...block, crc32: hex32(block.crc32) }));
}

function verifyRecords(bytes: Buffer, file: string, report: BundleReport, options: InspectOptions): Problem | undefined {
  let parsed: SegmentRecordBundle;
  try {
    parsed = SegmentRecordBundle.parse(bytes, file);
  } catch (error) {
    return problemOf(error);
  }
  const first = parsed.headers[0] as SegmentHeader;
  report.databaseId = first.databaseId;
  report.pageSize = first.pageSize;
  report.firstPosition = first.position.toString();
  report.lastPosition = (parsed.headers.at(-1) as SegmentHeader).position.toString();
  if (options.pages) report.images = [];
  for (const { offset, segment } of parsed.recordList()) {
    let described: ReturnType<typeof describeContainer>;
    try {
      const decoded = decodeSegmentLayout(segment);
      described = describeContainer(decoded.header, decoded.pages, decoded.chunks, options);
      report.segments.push({ ...segmentRow(decoded.header), offset, bytes: segment.length });
      if (decoded.header.databaseId !== first.databaseId || decoded.header.pageSize !== first.pageSize) {
        return {
          code: 'ARCHIVE_CORRUPT',
          message: `${file} (record at offset ${offset}): position ${decoded.header.position} is of database ${decoded.header.databaseId} with ${decoded.header.pageSize}-byte pages, the first of ${first.databaseId} with ${first.pageSize}-byte pages`,
        };
      }
    } catch (error) {
      const problem = problemOf(error);
      return { ...problem, message: `${file} (record at offset ${offset}): ${problem.message}` };
    }
    report.imagesVerified += described.pagesVerified;
    const position = described.header?.position ?? '';
    for (const page of described.pages ?? []) report.images?.push({ position, pageNumber: page.pageNumber, pageHash: page.pageHash });
  }
  return undefined;
}

export function segmentRow(header: SegmentHeader): BundleSegmentReport {
  return {
    position: header.position.toString(),
    term: header.term.toString(),
    commitTimeMs: header.commitTimeMs,
    commitTime: isoTime(header.commitTimeMs),
    databaseSizePages: header.databaseSizePages,
    pageCount: header.pageCount,
    transactionCount: header.transactionCount,
    preChecksum: formatChecksum(header.preChecksum),
    postChecksum: formatChecksum(header.postChecksum),
  };
}

/** Each segment starts from the checksum the one before it ended at (as a restore requires). */
export function checkChain(segments: readonly BundleSegmentReport[], file: string): Problem | undefined {
  for (let index = 1; index < segments.length; index++) {
    const previous = segments[index - 1] as BundleSegmentReport;
    const segment = segments[index] as BundleSegmentReport;
    if (segment.preChecksum !== previous.postChecksum) {
      return {
        code: 'ARCHIVE_CORRUPT',
        message: `${file}: the checksum chain is broken: position ${segment.position} starts from checksum ${segment.preChecksum}, position ${previous.position} ended at ${previous.postChecksum}`,
        details: { position: segment.position },
      };
    }
  }
  return undefined;
}

/** A file named like an archive key must hold the positions its name says (as openBundle requires). */
function checkName(bundle: BundleReport, file: string): Problem | undefined {
  const named = BUNDLE_NAME.exec(file);
  if (!named) return undefined;
  const [first, last] = [BigInt(named[1] as string).toString(), BigInt(named[2] as string).toString()];
  if (bundle.firstPosition === first && bundle.lastPosition === last) return undefined;
  return {
    code: 'ARCHIVE_CORRUPT',
    message: `${file}: holds positions ${bundle.firstPosition}..${bundle.lastPosition}, its name says ${first}..${last}`,
  };
}
