import { LitebaseError } from '../errors.js';
import { formatChecksum } from './rolling-checksum.js';
import type { SegmentHeader } from './segment-codec.js';

/**
 * Range checkpoints (docs/FORMAT.md §8): a checkpoint is a small JSON **manifest** per log position
 * that lists immutable **range files**, each holding a fixed range of pages in the segment
 * container. A compaction rewrites only the ranges that changed since the previous manifest and
 * lists the others again, so its cost follows what changed, not the size of the database.
 *
 * This module is the pure part: the manifest's JSON, the rules a manifest and a range file's header
 * follow, and range file names. Reading and writing files is src/replay/checkpoints.ts.
 */

export const MANIFEST_FORMAT = 'litebase-checkpoint-manifest';
export const MANIFEST_VERSION = 1;
/**
 * Range size when none is configured: 4 MiB of pages (1,024 pages of 4 KiB). A compaction rewrites
 * whole ranges, so writes scattered over a big database cost a range each: smaller is cheaper per
 * compaction, larger means fewer files (10 GiB is 2,560 ranges and a manifest of about 0.5 MB).
 */
export const DEFAULT_RANGE_BYTES = 4 * 1024 * 1024;

export interface ManifestRange {
  /** Range number: the range covers pages index*rangePages+1 .. (index+1)*rangePages. */
  index: number;
  /** The range file's name (no folder): the same on the shared file system and in the archive. */
  file: string;
  firstPage: number;
  pages: number;
  /** Size of the range file. */
  bytes: number;
  /** SHA-256 of the whole range file, hex. */
  sha256: string;
  /** XOR of the page hashes of its pages: its post-checksum. */
  checksum: bigint;
}

export interface CheckpointManifest {
  databaseId: string;
  position: bigint;
  term: bigint;
  commitTimeMs: number;
  pageSize: number;
  databaseSizePages: number;
  /** The database checksum at `position`: the XOR of the ranges' checksums. */
  checksum: bigint;
  rangePages: number;
  ranges: ManifestRange[];
}

const RANGE_FILE = /^(\d{10})-(\d{20})-([0-9a-f]{16})\.range$/;
const MANIFEST_FILE = /^(\d{20})\.json$/;
const SHA256 = /^[0-9a-f]{64}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MAX_U32 = 0xffff_ffff;
const MAX_U64 = (1n << 64n) - 1n;

/** Pages per range for a range size in bytes (at least one page). */
export function rangePagesFor(rangeBytes: number, pageSize: number): number {
  return Math.max(1, Math.floor(rangeBytes / pageSize));
}

/** The pages range `index` covers in a database of `databaseSizePages` (none when it lies past the end). */
export function rangeExtent(index: number, rangePages: number, databaseSizePages: number): { firstPage: number; pages: number } {
  const firstPage = index * rangePages + 1;
  const lastPage = Math.min((index + 1) * rangePages, databaseSizePages);
  return { firstPage, pages: Math.max(0, lastPage - firstPage + 1) };
}

/** How many ranges a database of `databaseSizePages` has. */
export function rangeCount(rangePages: number, databaseSizePages: number): number {
  return Math.ceil(databaseSizePages / rangePages);
}

/** `<index:10>-<position:20>-<nonce:16 hex>.range`: the nonce keeps two writers' files apart. */
export function rangeFileName(index: number, position: bigint, nonce: string): string {
  if (!HEX16.test(nonce)) throw new RangeError(`a range file nonce is 16 hex digits, got ${JSON.stringify(nonce)}`);
  return `${String(index).padStart(10, '0')}-${position.toString().padStart(20, '0')}-${nonce}.range`;
}

export function parseRangeFileName(name: string): { index: number; position: bigint } | undefined {
  const match = RANGE_FILE.exec(name);
  if (!match?.[1] || !match[2]) return undefined;
  const index = Number(match[1]);
  return index <= MAX_U32 ? { index, position: BigInt(match[2]) } : undefined;
}

export function manifestFileName(position: bigint): string {
  return `${position.toString().padStart(20, '0')}.json`;
}

export function parseManifestFileName(name: string): bigint | undefined {
  const match = MANIFEST_FILE.exec(name);
  return match?.[1] ? BigInt(match[1]) : undefined;
}

/** The manifest's bytes: JSON with a fixed key order, one range per line, so a diff reads well. */
export function encodeManifest(manifest: CheckpointManifest): Buffer {
  assertManifest(manifest, 'manifest');
  const head = {
    format: MANIFEST_FORMAT,
    version: MANIFEST_VERSION,
    databaseId: manifest.databaseId,
    position: manifest.position.toString(),
    term: manifest.term.toString(),
    commitTimeMs: manifest.commitTimeMs,
    time: new Date(manifest.commitTimeMs).toISOString(),
    pageSize: manifest.pageSize,
    databaseSizePages: manifest.databaseSizePages,
    checksum: formatChecksum(manifest.checksum),
    rangePages: manifest.rangePages,
  };
  const ranges = manifest.ranges.map((range) =>
    JSON.stringify({
      index: range.index,
      file: range.file,
      firstPage: range.firstPage,
      pages: range.pages,
      bytes: range.bytes,
      sha256: range.sha256,
      checksum: formatChecksum(range.checksum),
    }),
  );
  const headJson = JSON.stringify(head, null, 1).slice(0, -2); // without the closing "\n}"
  const body = ranges.length === 0 ? '[]' : `[\n  ${ranges.join(',\n  ')}\n ]`;
  return Buffer.from(`${headJson},\n "ranges": ${body}\n}\n`);
}

/** Parse and check a manifest (every rule of FORMAT.md §8); `name` goes into error messages. */
export function decodeManifest(bytes: Uint8Array, name: string, databaseId?: string): CheckpointManifest {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
  } catch (error) {
    throw invalid(name, `not JSON (${(error as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw invalid(name, 'not a JSON object');
  if (json.format !== MANIFEST_FORMAT) throw invalid(name, `format is ${JSON.stringify(json.format)}, expected "${MANIFEST_FORMAT}"`);
  if (json.version !== MANIFEST_VERSION) {
    throw invalid(name, `version ${JSON.stringify(json.version)} is not one this node reads (it reads ${MANIFEST_VERSION})`);
  }
  if (!Array.isArray(json.ranges)) throw invalid(name, 'ranges is not a list');
  const manifest: CheckpointManifest = {
    databaseId: field(json, 'databaseId', 'string', name),
    position: u64(field(json, 'position', 'string', name), 'position', name),
    term: u64(field(json, 'term', 'string', name), 'term', name),
    commitTimeMs: field(json, 'commitTimeMs', 'number', name),
    pageSize: field(json, 'pageSize', 'number', name),
    databaseSizePages: field(json, 'databaseSizePages', 'number', name),
    checksum: hex16(field(json, 'checksum', 'string', name), 'checksum', name),
    rangePages: field(json, 'rangePages', 'number', name),
    ranges: json.ranges.map((raw: unknown, at: number): ManifestRange => {
      if (typeof raw !== 'object' || raw === null) throw invalid(name, `range ${at} is not an object`);
      const entry = raw as Record<string, unknown>;
      const what = `${name} range ${at}`;
      return {
        index: field(entry, 'index', 'number', what),
        file: field(entry, 'file', 'string', what),
        firstPage: field(entry, 'firstPage', 'number', what),
        pages: field(entry, 'pages', 'number', what),
        bytes: field(entry, 'bytes', 'number', what),
        sha256: field(entry, 'sha256', 'string', what),
        checksum: hex16(field(entry, 'checksum', 'string', what), 'checksum', what),
      };
    }),
  };
  assertManifest(manifest, name);
  if (databaseId !== undefined && manifest.databaseId !== databaseId) {
    throw new LitebaseError('CHECKPOINT_FOREIGN', `${name} belongs to database ${manifest.databaseId}, not ${databaseId}`, {
      details: { file: name },
    });
  }
  return manifest;
}

/**
 * The rules a manifest follows: ranges in index order that cover pages 1..databaseSizePages
 * exactly, each named for its index, and range checksums that XOR to the database checksum.
 */
export function assertManifest(manifest: CheckpointManifest, name: string): void {
  const { pageSize, databaseSizePages, rangePages, ranges } = manifest;
  if (!UUID.test(manifest.databaseId)) throw invalid(name, `database id ${JSON.stringify(manifest.databaseId)} is not a UUID`);
  if (manifest.position < 1n || manifest.position > MAX_U64) throw invalid(name, `position ${manifest.position} is outside 1..2^64-1`);
  if (!Number.isSafeInteger(manifest.commitTimeMs) || manifest.commitTimeMs < 0) throw invalid(name, 'commit time is not a time');
  if (!Number.isInteger(pageSize) || pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) {
    throw invalid(name, `page size ${pageSize} is not a power of two in 512..65536`);
  }
  if (!isU32(databaseSizePages)) throw invalid(name, `database size ${databaseSizePages} is not a u32`);
  if (!isU32(rangePages) || rangePages < 1) throw invalid(name, `range size ${rangePages} pages is not in 1..2^32-1`);
  const expected = rangeCount(rangePages, databaseSizePages);
  if (ranges.length !== expected) {
    throw invalid(name, `it lists ${ranges.length} ranges; ${databaseSizePages} pages in ranges of ${rangePages} make ${expected}`);
  }
  let sum = 0n;
  ranges.forEach((range, at) => {
    const extent = rangeExtent(at, rangePages, databaseSizePages);
    const parsed = parseRangeFileName(range.file);
    const problem =
      range.index !== at
        ? `range ${at} says index ${range.index}`
        : range.firstPage !== extent.firstPage || range.pages !== extent.pages
          ? `range ${at} holds pages ${range.firstPage}+${range.pages}, it must hold ${extent.firstPage}+${extent.pages}`
          : parsed?.index !== at
            ? `range ${at} names file ${JSON.stringify(range.file)}, not a range file of index ${at}`
            : parsed.position > manifest.position
              ? `range ${at} was written at position ${parsed.position}, after the manifest's ${manifest.position}`
              : !Number.isSafeInteger(range.bytes) || range.bytes < 104
                ? `range ${at} has ${range.bytes} bytes`
                : !SHA256.test(range.sha256)
                  ? `range ${at} has no SHA-256`
                  : undefined;
    if (problem) throw invalid(name, problem);
    sum ^= range.checksum;
  });
  if (sum !== manifest.checksum) {
    throw invalid(name, `its ranges' checksums XOR to ${formatChecksum(sum)}, its checksum is ${formatChecksum(manifest.checksum)}`);
  }
}

/** The rules a range file's header follows beyond the segment format, checked against its manifest entry. */
export function assertRangeHeader(header: SegmentHeader, range: ManifestRange, name: string, databaseId: string): void {
  if (header.databaseId !== databaseId) {
    throw new LitebaseError('CHECKPOINT_FOREIGN', `${name} belongs to database ${header.databaseId}, not ${databaseId}`, {
      details: { file: name },
    });
  }
  const problem =
    header.preChecksum !== 0n
      ? `pre-checksum is ${formatChecksum(header.preChecksum)}, a range file has 0`
      : header.transactionCount !== 0
        ? `transaction count is ${header.transactionCount}, a range file has 0`
        : header.pageCount !== range.pages
          ? `it holds ${header.pageCount} pages, its manifest says ${range.pages}`
          : header.postChecksum !== range.checksum
            ? `its checksum is ${formatChecksum(header.postChecksum)}, its manifest says ${formatChecksum(range.checksum)}`
            : undefined;
  if (problem) throw invalid(name, problem);
}

function invalid(name: string, problem: string): LitebaseError {
  return new LitebaseError('CHECKPOINT_INVALID', `${name} is not a valid checkpoint: ${problem}`, { details: { file: name } });
}

function isU32(value: number): boolean {
  return Number.isInteger(value) && value >= 0 && value <= MAX_U32;
}

function field<T extends 'string' | 'number'>(
  json: Record<string, unknown>,
  key: string,
  type: T,
  name: string,
): T extends 'string' ? string : number {
  const value = json[key];
  if (typeof value !== type || (type === 'number' && !Number.isFinite(value))) {
    throw invalid(name, `${key} is ${JSON.stringify(value)}, expected a ${type}`);
  }
  return value as T extends 'string' ? string : number;
}

function u64(text: string, key: string, name: string): bigint {
  if (!/^\d{1,20}$/.test(text) || BigInt(text) > MAX_U64) throw invalid(name, `${key} ${JSON.stringify(text)} is not a u64`);
  return BigInt(text);
}

function hex16(text: string, key: string, name: string): bigint {
  if (!HEX16.test(text)) throw invalid(name, `${key} ${JSON.stringify(text)} is not 16 hex digits`);
  return BigInt(`0x${text}`);
}
