import { LitebaseError } from '../../errors.js';
import { formatChecksum } from '../../format/rolling-checksum.js';
import type { SegmentHeader } from '../../format/segment-codec.js';

/**
 * What `litebase inspect` found in a file: plain data, JSON as it is (u64 values as decimal
 * strings, checksums as 16 hex digits, as in the golden files of fixtures/segments/), so that
 * `--json` prints it unchanged and the text output is rendered from the same object.
 */

export type InspectKind = 'segment' | 'checkpoint' | 'range' | 'bundle';

export interface InspectOptions {
  /** List every page (`--pages`). */
  pages: boolean;
}
export const INSPECT_KINDS: readonly InspectKind[] = ['segment', 'checkpoint', 'range', 'bundle'];

/** The first check a file failed: the decoder's code and message (which says where and what). */
export interface Problem {
  code: LitebaseError['code'];
  message: string;
  /** The decoder's details (offset, expected, found), when it gives them. */
  details?: Record<string, unknown>;
}

export interface HeaderReport {
  formatVersion: number;
  databaseId: string;
  term: string;
  position: string;
  commitTimeMs: number;
  /** ISO 8601, or null for a time beyond what a Date holds. */
  commitTime: string | null;
  pageSize: number;
  databaseSizePages: number;
  pageCount: number;
  transactionCount: number;
  preChecksum: string;
  postChecksum: string;
}

export interface ChunkReport {
  index: number;
  /** Offset of the chunk header from the start of the file. */
  offset: number;
  pagesInChunk: number;
  uncompressedLength: number;
  compressedLength: number;
  firstPage: number;
  lastPage: number;
}

export interface PageReport {
  pageNumber: number;
  /** Its page hash (docs/FORMAT.md §7), 16 hex digits. */
  pageHash: string;
  chunk: number;
}

/** A segment file, or a checkpoint (the same container). */
export interface ContainerReport {
  header?: HeaderReport;
  /** The last 8 bytes, hex. */
  trailer?: string;
  chunks: ChunkReport[];
  /** Page images the body holds (counted as they were verified). */
  pagesVerified: number;
  firstPage?: number;
  lastPage?: number;
  /** With `--pages`. */
  pages?: PageReport[];
}

export interface CheckpointReport extends ContainerReport {
  /** XOR of the page hashes of every page read (equal to the post-checksum when valid). */
  checksum?: string;
}

export interface BundleSegmentReport {
  position: string;
  term: string;
  commitTimeMs: number;
  commitTime: string | null;
  databaseSizePages: number;
  pageCount: number;
  transactionCount: number;
  preChecksum: string;
  postChecksum: string;
  /** Format 1: where its record (length prefix) starts, and the segment file's size. */
  offset?: number;
  bytes?: number;
}

export interface BundleImageReport {
  position: string;
  pageNumber: number;
  pageHash: string;
  /** Format 2: the newest image of the page in the bundle (in a block) or an older one (a delta). */
  newest?: boolean;
  /** Format 2: offset, length and CRC-32 of the compressed payload it was decoded from. */
  offset?: number;
  compressedLength?: number;
  crc32?: string;
}

export interface BundleReport {
  format: 1 | 2;
  databaseId?: string;
  firstPosition?: string;
  lastPosition?: string;
  pageSize?: number;
  segments: BundleSegmentReport[];
  /** Format 2: the header's counts and recorded checksums. */
  tables?: {
    pages: number;
    olderImages: number;
    blocks: number;
    dataStart: number;
    historyStart: number;
    tablesChecksum: string;
    trailer: string;
  };
  /** Format 2. */
  blocks?: Array<{ index: number; offset: number; compressedLength: number; pages: number; crc32: string }>;
  /** Images decoded and checked (format 2: every newest and older image; format 1: every page of every segment). */
  imagesVerified: number;
  /** With `--pages`. */
  images?: BundleImageReport[];
}

export interface InspectReport {
  file: string;
  kind: InspectKind;
  bytes: number;
  valid: boolean;
  problem?: Problem;
  /**
   * When a whole-file checksum failed first: what checking the file piece by piece found (the
   * chunk, block or field that is damaged), or a note that every other check passed.
   */
  located?: Problem | { note: string };
  segment?: ContainerReport;
  checkpoint?: CheckpointReport;
  bundle?: BundleReport;
}

export function headerReport(header: SegmentHeader): HeaderReport {
  return {
    formatVersion: header.formatVersion,
    databaseId: header.databaseId,
    term: header.term.toString(),
    position: header.position.toString(),
    commitTimeMs: header.commitTimeMs,
    commitTime: isoTime(header.commitTimeMs),
    pageSize: header.pageSize,
    databaseSizePages: header.databaseSizePages,
    pageCount: header.pageCount,
    transactionCount: header.transactionCount,
    preChecksum: formatChecksum(header.preChecksum),
    postChecksum: formatChecksum(header.postChecksum),
  };
}

export function isoTime(ms: number): string | null {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

export function hex32(value: number): string {
  return value.toString(16).padStart(8, '0');
}

/**
 * A decoder's error as a Problem. Anything that is not a LitebaseError is a bug in a decoder (they
 * promise their own error types), so it is thrown on rather than reported as damage.
 */
export function problemOf(error: unknown, prefix = ''): Problem {
  if (!(error instanceof LitebaseError)) throw error;
  const details = Object.keys(error.details).length > 0 ? { details: error.details } : {};
  return { code: error.code, message: `${prefix}${error.message}`, ...details };
}
