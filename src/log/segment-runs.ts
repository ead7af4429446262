import { systemErrorCode, type ErrorCode } from '../errors.js';
import type { LogDirectory } from './log-directory.js';
import { decodeSegment, SegmentFormatError } from '../format/segment-codec.js';

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
  | { kind: 'diverged'; position: bigint; file: string; preChecksum: bigint };

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

/** The bytes of one segment file, and whether whoever read them found the trailer right already. */
export interface SegmentBytes {
  bytes: Buffer;
  trailerVerified: boolean;
}

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
      return { bytes: log.readSyncInto(position, buffer), trailerVerified: false };
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
  /** Read no segment past this one, as if the log ended there (it is known to go this far). */
  last?: bigint;
}

/** A run is applied as one; these bound the memory it holds and how long it blocks a thread. */
export const RUN_LIMITS: RunLimits = { segments: 512, bytes: 16 * 1024 * 1024 };

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
  let expected = start.checksum;
  for (let position = start.position + 1n; ; position++) {
    if (segments.length >= limits.segments || bytes >= limits.bytes) return { segments, bytes, stop: { kind: 'limit' } };
    if (limits.last !== undefined && position > limits.last) return { segments, bytes, stop: { kind: 'end' } };
    const data = read(position);
    if (data === undefined) return { segments, bytes, stop: { kind: 'end' } };
    let segment: DecodedSegment;
    try {
      segment = decodeSegment(data.bytes, { trailerVerified: data.trailerVerified });
    } catch (error) {
      if (!(error instanceof SegmentFormatError)) throw error;
      return {
        segments,
        bytes,
        stop: { kind: 'corrupt', position, code: error.code, message: `${log.segmentPath(position)}: ${error.message}` },
      };
    }
    const { header } = segment;
    if (header.databaseId !== start.databaseId || header.position !== position) {
      const message = `${log.segmentPath(position)} is position ${header.position} of database ${header.databaseId}, expected position ${position} of ${start.databaseId}`;
      return { segments, bytes, stop: { kind: 'corrupt', position, code: 'LOG_FOREIGN_SEGMENT', message } };
    }
    if (header.preChecksum !== expected) {
      return { segments, bytes, stop: { kind: 'diverged', position, file: log.segmentPath(position), preChecksum: header.preChecksum } };
    }
    expected = header.postChecksum;
    bytes += data.bytes.length;
    segments.push(segment);
  }
}
