import { formatChecksum } from '../../format/rolling-checksum.js';
import { decodeSegmentLayout } from '../../format/segment-codec.js';
import { decodeRecordFrame, decodeTermLogHeader, TERM_LOG_FRAME_SIZE, TERM_LOG_HEADER_SIZE } from '../../format/term-log-codec.js';
import { checkChain, segmentRow } from './bundle.js';
import { describeContainer } from './segment.js';
import { problemOf, type InspectOptions, type InspectReport, type Problem, type TermLogReport } from './report.js';

/**
 * Describes and verifies a term log file (docs/FORMAT.md §1.2): its header; then each complete
 * record, whose segment is verified like a segment file and must hold the next position of the
 * database and chain onto the one before (the first onto the header's pre-checksum). Bytes after
 * the last complete record are reported, not an error: a writer may be writing there.
 */
export function inspectTermLog(bytes: Buffer, file: string, options: InspectOptions): InspectReport {
  const termLog: TermLogReport = { segments: [], imagesVerified: 0, tailBytes: 0 };
  const report: InspectReport = { file, kind: 'term-log', bytes: bytes.length, valid: false, termLog };
  const problem = verify(bytes, file, termLog, options);
  if (problem) {
    report.problem = problem;
    return report;
  }
  report.valid = true;
  return report;
}

function verify(bytes: Buffer, file: string, report: TermLogReport, options: InspectOptions): Problem | undefined {
  let header: ReturnType<typeof decodeTermLogHeader>;
  try {
    header = decodeTermLogHeader(bytes, file);
  } catch (error) {
    return problemOf(error);
  }
  report.databaseId = header.databaseId;
  report.term = header.term.toString();
  report.firstPosition = header.firstPosition.toString();
  report.preChecksum = formatChecksum(header.preChecksum);
  report.createdAtMs = header.createdAtMs;
  let offset = TERM_LOG_HEADER_SIZE;
  let expected = header.firstPosition;
  while (offset < bytes.length) {
    const frame = decodeRecordFrame(bytes.subarray(offset, offset + TERM_LOG_FRAME_SIZE));
    if (frame.kind === 'none' || offset + TERM_LOG_FRAME_SIZE + frame.length > bytes.length) break;
    const segment = bytes.subarray(offset + TERM_LOG_FRAME_SIZE, offset + TERM_LOG_FRAME_SIZE + frame.length);
    const where = `${file} (record at offset ${offset})`;
    try {
      const decoded = decodeSegmentLayout(segment);
      const described = describeContainer(decoded.header, decoded.pages, decoded.chunks, options);
      report.segments.push({ ...segmentRow(decoded.header), offset, bytes: segment.length });
      report.imagesVerified += described.pagesVerified;
      if (decoded.header.databaseId !== header.databaseId || decoded.header.position !== expected) {
        return {
          code: 'LOG_FOREIGN_SEGMENT',
          message: `${where}: position ${decoded.header.position} of database ${decoded.header.databaseId}, expected position ${expected} of ${header.databaseId}`,
        };
      }
    } catch (error) {
      const problem = problemOf(error);
      return { ...problem, message: `${where}: ${problem.message}` };
    }
    offset += TERM_LOG_FRAME_SIZE + frame.length;
    expected += 1n;
  }
  report.tailBytes = bytes.length - offset;
  const first = report.segments[0];
  if (first && first.preChecksum !== report.preChecksum) {
    return {
      code: 'LOG_CHAIN_BROKEN',
      message: `${file}: the first record starts from checksum ${first.preChecksum}, the header says ${report.preChecksum}`,
    };
  }
  return checkChain(report.segments, file);
}
