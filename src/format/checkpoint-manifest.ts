import { LitebaseError } from '../errors.js';
import { formatChecksum } from './rolling-checksum.js';
import type { SegmentHeader } from './segment-codec.js';

/*
 * STAND-IN, written by the archive helper against /work/wt/RANGES-SPEC.md until the lead's module
 * lands on main ("Range checkpoints: ..."): on that merge, main's version replaces this file whole.
 * Range checkpoints: a manifest per checkpoint position listing immutable page-range files.
 */

export interface ManifestRange {
  index: number;
  file: string;
  firstPage: number;
  pages: number;
  bytes: number;
  sha256: string;
  checksum: bigint;
}

export interface CheckpointManifest {
  databaseId: string;
  position: bigint;
  term: bigint;
  commitTimeMs: number;
  pageSize: number;
  databaseSizePages: number;
  checksum: bigint;
  rangePages: number;
  ranges: ManifestRange[];
}

const RANGE_FILE = /^(\d{10})-(\d{20})-([0-9a-f]{16})\.range$/;

export function rangeFileName(index: number, position: bigint, nonce: string): string {
  return `${String(index).padStart(10, '0')}-${position.toString().padStart(20, '0')}-${nonce}.range`;
}

export function parseRangeFileName(name: string): { index: number; position: bigint } | undefined {
  const match = RANGE_FILE.exec(name);
  if (!match?.[1] || !match[2]) return undefined;
  return { index: Number(match[1]), position: BigInt(match[2]) };
}

export function encodeManifest(m: CheckpointManifest): Buffer {
  const json = {
    format: 'litebase-checkpoint-manifest',
    version: 1,
    databaseId: m.databaseId,
    position: m.position.toString(),
    term: m.term.toString(),
    commitTimeMs: m.commitTimeMs,
    pageSize: m.pageSize,
    databaseSizePages: m.databaseSizePages,
    checksum: formatChecksum(m.checksum),
    rangePages: m.rangePages,
    ranges: m.ranges.map((r) => ({
      index: r.index,
      file: r.file,
      firstPage: r.firstPage,
      pages: r.pages,
      bytes: r.bytes,
      sha256: r.sha256,
      checksum: formatChecksum(r.checksum),
    })),
  };
  return Buffer.from(JSON.stringify(json, null, 1) + '\n');
}

function invalid(name: string, problem: string): LitebaseError {
  return new LitebaseError('CHECKPOINT_INVALID', `${name} is not a checkpoint manifest: ${problem}`, { details: { file: name } });
}

export function decodeManifest(bytes: Uint8Array, name: string, databaseId?: string): CheckpointManifest {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8')) as Record<string, unknown>;
  } catch {
    throw invalid(name, 'not JSON');
  }
  if (json.format !== 'litebase-checkpoint-manifest' || json.version !== 1) throw invalid(name, 'unknown format or version');
  const str = (v: unknown, what: string): string => {
    if (typeof v !== 'string') throw invalid(name, `${what} is not a string`);
    return v;
  };
  const int = (v: unknown, what: string): number => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw invalid(name, `${what} is not a count`);
    return v;
  };
  const hex = (v: unknown, what: string): bigint => {
    const s = str(v, what);
    if (!/^[0-9a-f]{16}$/.test(s)) throw invalid(name, `${what} is not 16 hex digits`);
    return BigInt(`0x${s}`);
  };
  const manifest: CheckpointManifest = {
    databaseId: str(json.databaseId, 'databaseId'),
    position: BigInt(str(json.position, 'position')),
    term: BigInt(str(json.term, 'term')),
    commitTimeMs: int(json.commitTimeMs, 'commitTimeMs'),
    pageSize: int(json.pageSize, 'pageSize'),
    databaseSizePages: int(json.databaseSizePages, 'databaseSizePages'),
    checksum: hex(json.checksum, 'checksum'),
    rangePages: int(json.rangePages, 'rangePages'),
    ranges: [],
  };
  if (!Array.isArray(json.ranges)) throw invalid(name, 'ranges is not a list');
  let next = 1;
  let sum = 0n;
  for (const [i, raw] of (json.ranges as unknown[]).entries()) {
    const r = raw as Record<string, unknown>;
    const range: ManifestRange = {
      index: int(r.index, 'index'),
      file: str(r.file, 'file'),
      firstPage: int(r.firstPage, 'firstPage'),
      pages: int(r.pages, 'pages'),
      bytes: int(r.bytes, 'bytes'),
      sha256: str(r.sha256, 'sha256'),
      checksum: hex(r.checksum, 'checksum'),
    };
    const parsed = parseRangeFileName(range.file);
    if (
      range.index !== i ||
      !parsed ||
      parsed.index !== i ||
      range.firstPage !== next ||
      range.firstPage !== i * manifest.rangePages + 1 ||
      range.pages < 1 ||
      range.pages > manifest.rangePages
    ) {
      throw invalid(name, `range ${i} is out of place`);
    }
    next += range.pages;
    sum ^= range.checksum;
    manifest.ranges.push(range);
  }
  if (next - 1 !== manifest.databaseSizePages) throw invalid(name, 'ranges do not cover the database');
  if (sum !== manifest.checksum) throw invalid(name, 'range checksums do not sum to the checksum');
  if (databaseId !== undefined && manifest.databaseId !== databaseId) {
    throw new LitebaseError('CHECKPOINT_FOREIGN', `${name} belongs to database ${manifest.databaseId}, not ${databaseId}`, {
      details: { file: name },
    });
  }
  return manifest;
}

export function assertRangeHeader(header: SegmentHeader, range: ManifestRange, name: string, databaseId: string): void {
  const problem =
    header.preChecksum !== 0n
      ? 'pre-checksum is not 0'
      : header.transactionCount !== 0
        ? 'transaction count is not 0'
        : header.pageCount !== range.pages
          ? `it holds ${header.pageCount} pages, the manifest says ${range.pages}`
          : header.postChecksum !== range.checksum
            ? `its checksum is ${formatChecksum(header.postChecksum)}, the manifest says ${formatChecksum(range.checksum)}`
            : undefined;
  if (problem)
    throw new LitebaseError('CHECKPOINT_INVALID', `${name} is not the range the manifest lists: ${problem}`, { details: { file: name } });
  if (header.databaseId !== databaseId) {
    throw new LitebaseError('CHECKPOINT_FOREIGN', `${name} belongs to database ${header.databaseId}, not ${databaseId}`, {
      details: { file: name },
    });
  }
}
