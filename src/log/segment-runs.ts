import { systemErrorCode, type ErrorCode } from '../errors.js';
import type { LogDirectory, SegmentLocation } from './log-directory.js';
import { decodeSegment, SEGMENT_HEADER_SIZE, SegmentFormatError } from '../format/segment-codec.js';

export type DecodedSegment = ReturnType<typeof decodeSegment>;

/** Why a run of segments ended. */
export type RunStop =
  /** The next segment is not there (yet). */
  | { kind: 'end' }
  /** The run reached its size limits; more may follow at once. */
  | { kind: 'limit' }
  /** The next segment is damaged or not this database's: never apply it. */
  | { kind: 'corrupt'; position: bigint; code: ErrorCode; message: string }
  /** The next segment does not start from the checksum the run started from. */
  | { kind: 'diverged'; position: bigint; file: string; preChecksum: bigint }
  /**
   * The next segment is too large to read and decode whole (LARGE_SEGMENT_BYTES): apply it from
   * its file, chunk by chunk (src/replay/large-segment.ts), then go on with runs.
   */
  | { kind: 'large'; position: bigint; file: string; location: SegmentLocation };

export interface SegmentRun {
  /** Consecutive segments, each starting from the previous one's post-checksum. */
  segments: DecodedSegment[];
  /** Their size on disk. */
  bytes: number;
  stop: RunStop;
}

export interface RunStart {
  databaseId: string;
  /** The last position already applied; the run starts right after it. */
  position: bigint;
  /** The rolling checksum at `position`: the first segment must start from it. */
  checksum: bigint;
}

/**
 * The bytes of one segment file, and whether whoever read them found the trailer right already;
 * or, for a file larger than LARGE_SEGMENT_BYTES, only that (its bytes are not read).
 */
export type SegmentBytes = SegmentFileBytes | { large: true };

export interface SegmentFileBytes {
  bytes: Buffer;
  trailerVerified: boolean;
  large?: undefined;
}

/**
 * A segment whose file, or whose page images, take more than this is never read or decoded whole:
 * a run stops before it, and it is applied from its file chunk by chunk (one chunk, 256 pages, in
 * memory at a time). A transaction of any size then costs a replica bounded memory.
 */
export const LARGE_SEGMENT_BYTES = 16 * 1024 * 1024;

/** The bytes of segment `position`, or undefined when there is no such file (yet). */
export type SegmentSource = (position: bigint) => SegmentBytes | undefined;

/** Reads each file when asked, all into one reused buffer. */
export function readFromFolder(log: LogDirectory): SegmentSource {
  // Decoded pages never point into the bytes read (they are slices of the decompressed chunks),
  // and runs are read synchronously, one at a time per thread: one buffer serves every file of
  // every run. Allocated once: a megabyte per run, at a few hundred wake-ups a second, kept V8
  // doing full collections for the external memory (a tailing replica spent ~10% of a core on them).
  scratch ??= Buffer.allocUnsafe(SCRATCH_BYTES);
  const buffer = scratch;
  return (position) => {
    try {
      const bytes = log.readSyncInto(position, buffer, LARGE_SEGMENT_BYTES);
      return bytes === undefined ? { large: true } : { bytes, trailerVerified: false };
    } catch (error) {
      if (systemErrorCode(error) === 'ENOENT') return undefined;
      throw error;
    }
  };
}

/** Files up to this size are read into one reused buffer. */
const SCRATCH_BYTES = 1024 * 1024;
let scratch: Buffer | undefined;

export interface RunLimits {
  segments: number;
  bytes: number;
  /** Page images the run's segments hold, in bytes (decoded: a compressed segment holds more); default RUN_LIMITS's. */
  pageBytes?: number;
  /** Read no segment past this one, as if the log ended there (it is known to go this far). */
  last?: bigint;
}

/** A run is applied as one; these bound the memory it holds and how long it blocks a thread. */
export const RUN_LIMITS: RunLimits = { segments: 512, bytes: 16 * 1024 * 1024, pageBytes: 64 * 1024 * 1024 };

/**
 * Read, decode and check the segments after `start.position`, in order, up to the run limits
 * (synchronous: a thread-pool round trip per small file cost more than reading it; or from files
 * read-ahead workers read, src/log/segment-prefetch.ts). It stops before
 * anything that must not be applied: a missing, damaged or foreign segment, or one that does not
 * chain onto the one before. Each returned segment's trailer proved its bytes, and the headers
 * chain pre- to post-checksum, so whoever applies the run checks its end result once
 * (the last post-checksum) instead of once per segment.
 */
export function readSegmentRun(
  log: LogDirectory,
  start: RunStart,
  limits: RunLimits = RUN_LIMITS,
  read: SegmentSource = readFromFolder(log),
): SegmentRun {
  const segments: DecodedSegment[] = [];
  let bytes = 0;
  let pageBytes = 0;
  const maxPageBytes = limits.pageBytes ?? (RUN_LIMITS.pageBytes as number);
  let expected = start.checksum;
  for (let position = start.position + 1n; ; position++) {
    if (segments.length >= limits.segments || bytes >= limits.bytes || pageBytes >= maxPageBytes) {
      return { segments, bytes, stop: { kind: 'limit' } };
    }
    if (limits.last !== undefined && position > limits.last) return { segments, bytes, stop: { kind: 'end' } };
    const data = read(position);
    if (data === undefined) return { segments, bytes, stop: { kind: 'end' } };
    if (data.large || declaredPageBytes(data.bytes) > LARGE_SEGMENT_BYTES) {
      // Applied on its own, from its file: the run so far first.
      if (segments.length > 0) return { segments, bytes, stop: { kind: 'limit' } };
      const location = log.locate(position);
      if (!location) return { segments, bytes, stop: { kind: 'end' } };
      return { segments, bytes, stop: { kind: 'large', position, file: log.describe(position), location } };
    }
    let segment: DecodedSegment;
    try {
      segment = decodeSegment(data.bytes, { trailerVerified: data.trailerVerified });
    } catch (error) {
      if (!(error instanceof SegmentFormatError)) throw error;
      return {
        segments,
        bytes,
        stop: { kind: 'corrupt', position, code: error.code, message: `${log.describe(position)}: ${error.message}` },
      };
    }
    const { header } = segment;
    if (header.databaseId !== start.databaseId || header.position !== position) {
      const message = `${log.describe(position)} is position ${header.position} of database ${header.databaseId}, expected position ${position} of ${start.databaseId}`;
      return { segments, bytes, stop: { kind: 'corrupt', position, code: 'LOG_FOREIGN_SEGMENT', message } };
    }
    if (header.preChecksum !== expected) {
      return { segments, bytes, stop: { kind: 'diverged', position, file: log.describe(position), preChecksum: header.preChecksum } };
    }
    expected = header.postChecksum;
    bytes += data.bytes.length;
    pageBytes += header.pageCount * header.pageSize;
    segments.push(segment);
  }
}

/**
 * Page count x page size as the header claims it, unchecked (decodeSegment checks it): a file
 * small enough to read may still decompress to more than a run should hold.
 */
export function declaredPageBytes(bytes: Buffer): number {
  if (bytes.length < SEGMENT_HEADER_SIZE) return 0;
  return bytes.readUInt32BE(PAGE_COUNT_OFFSET) * bytes.readUInt32BE(PAGE_SIZE_OFFSET);
}

/** Offsets of the page size and the page count in the segment header (docs/FORMAT.md). */
const PAGE_SIZE_OFFSET = 48;
const PAGE_COUNT_OFFSET = 56;
