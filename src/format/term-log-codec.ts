import { hash } from 'node:crypto';
import { LitebaseError } from '../errors.js';
import { uuidFromBytes, uuidToBytes } from './uuid.js';

/**
 * The term log file codec (docs/FORMAT.md §1.2 is the normative description; keep the two in
 * step). Pure: bytes in, bytes out; src/log/term-log-files.ts does the file work.
 *
 * A term log file holds the segments one term's Primary appended, one after another, so that a
 * commit costs one write and one fdatasync of a file that is already open, and no metadata
 * operation (on a distributed file system those round trips to the metadata server were the cost
 * of a commit). The file starts with a 64-byte header; each record is a 16-byte frame and then a
 * segment exactly as docs/FORMAT.md §2-§6 describe it.
 */

export const TERM_LOG_HEADER_SIZE = 64;
export const TERM_LOG_FRAME_SIZE = 16;
export const TERM_LOG_FORMAT_VERSION = 1;

const FILE_MAGIC = Buffer.from('LBTL', 'ascii');
const FRAME_MAGIC = Buffer.from('LBRC', 'ascii');
const MAX_U64 = (1n << 64n) - 1n;
/** The smallest segment: a header (96 bytes) and a trailer (8 bytes). */
const MIN_SEGMENT_BYTES = 104;
/** A frame's length is a u64 on disk; a reader needs it as a safe JavaScript integer. */
const MAX_RECORD_BYTES = Number.MAX_SAFE_INTEGER;

const FILE_NAME = /^(\d{20})-(\d{20})\.tlog$/;

export interface TermLogHeader {
  databaseId: string;
  term: bigint;
  /** The position of the file's first record. */
  firstPosition: bigint;
  /** The rolling checksum before the first record (its segment's pre-checksum). */
  preChecksum: bigint;
  /** Unix milliseconds when the file was created. */
  createdAtMs: number;
}

/** `<first position>-<term>.tlog`, both 20-digit zero-padded, so names sort by position, then term. */
export function termLogFileName(firstPosition: bigint, term: bigint): string {
  return `${firstPosition.toString().padStart(20, '0')}-${term.toString().padStart(20, '0')}.tlog`;
}

/** The first position and term a term log file's name gives, or undefined for any other name. */
export function parseTermLogFileName(name: string): { firstPosition: bigint; term: bigint } | undefined {
  const match = FILE_NAME.exec(name);
  if (!match) return undefined;
  return { firstPosition: BigInt(match[1] as string), term: BigInt(match[2] as string) };
}

export function encodeTermLogHeader(header: TermLogHeader): Buffer {
  const bytes = Buffer.alloc(TERM_LOG_HEADER_SIZE);
  FILE_MAGIC.copy(bytes, 0);
  bytes.writeUInt16BE(TERM_LOG_FORMAT_VERSION, 4);
  bytes.writeUInt16BE(0, 6);
  checkedUuidBytes(header.databaseId).copy(bytes, 8);
  bytes.writeBigUInt64BE(checkedU64(header.term, 'term'), 24);
  bytes.writeBigUInt64BE(checkedU64(header.firstPosition, 'first position'), 32);
  bytes.writeBigUInt64BE(checkedU64(header.preChecksum, 'pre-checksum'), 40);
  bytes.writeBigUInt64BE(BigInt(header.createdAtMs), 48);
  check8(bytes.subarray(0, 56)).copy(bytes, 56);
  return bytes;
}

/** Decode and verify a term log file's header; `TERM_LOG_CORRUPT` when it is not one. */
export function decodeTermLogHeader(bytes: Uint8Array, name = 'term log file'): TermLogHeader {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.length < TERM_LOG_HEADER_SIZE) {
    throw corrupt(name, `its header needs ${TERM_LOG_HEADER_SIZE} bytes, found ${buffer.length}`);
  }
  if (!buffer.subarray(0, 4).equals(FILE_MAGIC)) {
    throw corrupt(name, `expected magic "LBTL", found ${buffer.subarray(0, 4).toString('hex')}`);
  }
  if (!check8(buffer.subarray(0, 56)).equals(buffer.subarray(56, 64))) {
    throw corrupt(name, 'the header check (bytes 56..63) does not match bytes 0..55');
  }
  const version = buffer.readUInt16BE(4);
  if (version !== TERM_LOG_FORMAT_VERSION) throw corrupt(name, `format version ${version}, this build reads ${TERM_LOG_FORMAT_VERSION}`);
  const flags = buffer.readUInt16BE(6);
  if (flags !== 0) throw corrupt(name, `flags are ${flags}, expected 0`);
  const createdAt = buffer.readBigUInt64BE(48);
  if (createdAt > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(name, `creation time ${createdAt} is past 2^53-1`);
  const firstPosition = buffer.readBigUInt64BE(32);
  if (firstPosition < 1n) throw corrupt(name, 'first position 0: positions start at 1');
  return {
    databaseId: uuidFromBytes(buffer.subarray(8, 24)),
    term: buffer.readBigUInt64BE(24),
    firstPosition,
    preChecksum: buffer.readBigUInt64BE(40),
    createdAtMs: Number(createdAt),
  };
}

/** The frame in front of a segment of `segmentBytes` bytes. */
export function encodeRecordFrame(segmentBytes: number): Buffer {
  if (!Number.isSafeInteger(segmentBytes) || segmentBytes < MIN_SEGMENT_BYTES) {
    throw new RangeError(`a record holds a segment of at least ${MIN_SEGMENT_BYTES} bytes, not ${segmentBytes}`);
  }
  const frame = Buffer.alloc(TERM_LOG_FRAME_SIZE);
  FRAME_MAGIC.copy(frame, 0);
  frame.writeBigUInt64BE(BigInt(segmentBytes), 8);
  check8(frame.subarray(8, 16)).copy(frame, 4, 0, 4);
  return frame;
}

/**
 * What the bytes at a record's place say:
 * - `record`: a well-formed frame; the segment is the `length` bytes after it;
 * - `none`: no well-formed frame (fewer than 16 bytes, all zero, a torn or damaged frame). At the
 *   end of the file's bytes that is the end of its records so far; docs/FORMAT.md §1.2 says when it
 *   is the end for good.
 */
export type FrameReading = { kind: 'record'; length: number } | { kind: 'none' };

export function decodeRecordFrame(bytes: Uint8Array): FrameReading {
  if (bytes.length < TERM_LOG_FRAME_SIZE) return { kind: 'none' };
  const frame = Buffer.from(bytes.buffer, bytes.byteOffset, TERM_LOG_FRAME_SIZE);
  if (!frame.subarray(0, 4).equals(FRAME_MAGIC)) return { kind: 'none' };
  if (!check8(frame.subarray(8, 16)).subarray(0, 4).equals(frame.subarray(4, 8))) return { kind: 'none' };
  const length = frame.readBigUInt64BE(8);
  if (length < BigInt(MIN_SEGMENT_BYTES) || length > BigInt(MAX_RECORD_BYTES)) return { kind: 'none' };
  return { kind: 'record', length: Number(length) };
}

/** First 8 bytes of SHA-256: the same check as a segment's trailer. */
function check8(bytes: Uint8Array): Buffer {
  return hash('sha256', bytes, 'buffer').subarray(0, 8);
}

function checkedU64(value: bigint, field: string): bigint {
  if (value < 0n || value > MAX_U64) throw new RangeError(`${field} ${value} does not fit a u64`);
  return value;
}

function checkedUuidBytes(id: string): Buffer {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id)) throw new RangeError(`database id ${id} is not a UUID`);
  return uuidToBytes(id);
}

function corrupt(name: string, message: string): LitebaseError {
  return new LitebaseError('TERM_LOG_CORRUPT', `${name}: ${message}`);
}
