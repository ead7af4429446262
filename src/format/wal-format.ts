/**
 * SQLite's write-ahead log format (https://sqlite.org/fileformat2.html#walformat), read-only.
 * Pure: takes bytes, returns parsed frames. The Primary uses it to capture the pages each commit
 * changed; nothing here touches a file.
 *
 * The WAL is a 32-byte header followed by frames of (24-byte frame header + one page image).
 * A frame is valid when its salts equal the header's and its cumulative checksum matches; a frame
 * with a non-zero "database size" field ends a transaction (a commit frame). Only frames up to the
 * last valid commit frame are committed; anything after is an unfinished or stale transaction.
 */
export const WAL_HEADER_SIZE = 32;
export const WAL_FRAME_HEADER_SIZE = 24;
const WAL_MAGIC_LITTLE_ENDIAN = 0x377f0682;
const WAL_MAGIC_BIG_ENDIAN = 0x377f0683;

export interface WalHeader {
  /** Checksums are computed over big-endian 32-bit words when true (magic 0x377f0683). */
  bigEndianChecksums: boolean;
  pageSize: number;
  checkpointSequence: number;
  salt1: number;
  salt2: number;
  checksum1: number;
  checksum2: number;
}

/** The running state of the cumulative frame checksum. */
export interface WalChecksum {
  s1: number;
  s2: number;
}

/** Parse and verify a WAL header; null when it is absent, torn or not a WAL header. */
export function parseWalHeader(bytes: Uint8Array): WalHeader | null {
  if (bytes.length < WAL_HEADER_SIZE) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, WAL_HEADER_SIZE);
  const magic = view.getUint32(0);
  if (magic !== WAL_MAGIC_LITTLE_ENDIAN && magic !== WAL_MAGIC_BIG_ENDIAN) return null;
  const bigEndianChecksums = magic === WAL_MAGIC_BIG_ENDIAN;
  const rawPageSize = view.getUint32(8);
  // SQLite stores 65536 as 1 in the database header but as 65536 here; accept both spellings.
  const pageSize = rawPageSize === 1 ? 65536 : rawPageSize;
  if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) return null;
  const expected = walChecksum(bytes.subarray(0, 24), bigEndianChecksums, { s1: 0, s2: 0 });
  const checksum1 = view.getUint32(24);
  const checksum2 = view.getUint32(28);
  if (expected.s1 !== checksum1 || expected.s2 !== checksum2) return null;
  return {
    bigEndianChecksums,
    pageSize,
    checkpointSequence: view.getUint32(12),
    salt1: view.getUint32(16),
    salt2: view.getUint32(20),
    checksum1,
    checksum2,
  };
}

/**
 * SQLite's WAL checksum: a Fibonacci-weighted sum over pairs of 32-bit words, continued from `seed`.
 * `bytes.length` must be a multiple of 8.
 */
const NATIVE_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

export function walChecksum(bytes: Uint8Array, bigEndian: boolean, seed: WalChecksum): WalChecksum {
  let s1 = seed.s1;
  let s2 = seed.s2;
  if (!bigEndian && NATIVE_LITTLE_ENDIAN && bytes.byteOffset % 4 === 0) {
    // The common case on x86 and ARM: read the words in place, about 5x faster than a DataView.
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
    for (let i = 0; i < words.length; i += 2) {
      s1 = (s1 + (words[i] as number) + s2) >>> 0;
      s2 = (s2 + (words[i + 1] as number) + s1) >>> 0;
    }
    return { s1, s2 };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < bytes.byteLength; i += 8) {
    s1 = (s1 + view.getUint32(i, !bigEndian) + s2) >>> 0;
    s2 = (s2 + view.getUint32(i + 4, !bigEndian) + s1) >>> 0;
  }
  return { s1, s2 };
}

export interface WalFrame {
  pageNumber: number;
  /** Database size in pages after the transaction, for a commit frame; 0 otherwise. */
  commitSize: number;
  /** The page image (a view into the scanned buffer). */
  page: Uint8Array;
}

export interface WalTransaction {
  frames: WalFrame[];
  /** Database size in pages after this transaction committed. */
  databaseSizePages: number;
}

export interface WalScanResult {
  /** Complete transactions, in commit order. */
  transactions: WalTransaction[];
  /** Bytes of `bytes` consumed by those transactions (a multiple of the frame size). */
  consumedBytes: number;
  /** The checksum state after the last consumed frame: the seed of the next scan. */
  checksum: WalChecksum;
}

/**
 * Scan frames from `bytes`, which must start on a frame boundary, continuing the checksum chain
 * from `seed` (the WAL header's checksum for the first frame). Stops at the first frame that is
 * incomplete, has other salts or a wrong checksum; frames after the last commit are not consumed.
 */
export function scanWalFrames(bytes: Uint8Array, header: WalHeader, seed: WalChecksum): WalScanResult {
  const frameSize = WAL_FRAME_HEADER_SIZE + header.pageSize;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const transactions: WalTransaction[] = [];
  let pending: WalFrame[] = [];
  let checksum = seed;
  let consumedBytes = 0;
  let committedChecksum = seed;
  for (let offset = 0; offset + frameSize <= bytes.byteLength; offset += frameSize) {
    if (view.getUint32(offset + 8) !== header.salt1 || view.getUint32(offset + 12) !== header.salt2) break;
    let next = walChecksum(bytes.subarray(offset, offset + 8), header.bigEndianChecksums, checksum);
    const page = bytes.subarray(offset + WAL_FRAME_HEADER_SIZE, offset + frameSize);
    next = walChecksum(page, header.bigEndianChecksums, next);
    if (next.s1 !== view.getUint32(offset + 16) || next.s2 !== view.getUint32(offset + 20)) break;
    checksum = next;
    const frame: WalFrame = { pageNumber: view.getUint32(offset), commitSize: view.getUint32(offset + 4), page };
    pending.push(frame);
    if (frame.commitSize !== 0) {
      transactions.push({ frames: pending, databaseSizePages: frame.commitSize });
      pending = [];
      consumedBytes = offset + frameSize;
      committedChecksum = checksum;
    }
  }
  return { transactions, consumedBytes, checksum: committedChecksum };
}

/**
 * The net effect of a run of transactions: the last image of each page, sorted by page number,
 * and the database size after the last one. Pages past that size were removed by a shrinking
 * transaction and are left out.
 */
export function mergeTransactions(transactions: readonly WalTransaction[]): {
  pages: Array<{ pageNumber: number; data: Uint8Array }>;
  databaseSizePages: number;
} {
  const last = transactions[transactions.length - 1];
  if (!last) return { pages: [], databaseSizePages: 0 };
  const latest = new Map<number, Uint8Array>();
  for (const transaction of transactions) {
    for (const frame of transaction.frames) latest.set(frame.pageNumber, frame.page);
  }
  const pages = [...latest.entries()]
    .filter(([pageNumber]) => pageNumber <= last.databaseSizePages)
    .sort(([a], [b]) => a - b)
    .map(([pageNumber, data]) => ({ pageNumber, data }));
  return { pages, databaseSizePages: last.databaseSizePages };
}
