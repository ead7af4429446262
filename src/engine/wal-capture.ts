import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { LitebaseError, systemErrorCode } from '../errors.js';
import {
  parseWalHeader,
  scanWalFrames,
  WAL_HEADER_SIZE,
  type WalChecksum,
  type WalHeader,
  type WalTransaction,
} from '../format/wal-format.js';

/**
 * Follows the Primary's local -wal file and hands out the transactions committed since the last
 * call. It runs on the thread that commits, right after commits, so the file cannot change under
 * it. SQLite restarts the WAL from the top (new salts) after a full checkpoint; the capture notices
 * the new salts and starts over at the first frame.
 */
export class WalCapture {
  private header: WalHeader | null = null;
  private offset = WAL_HEADER_SIZE;
  private checksum: WalChecksum = { s1: 0, s2: 0 };

  constructor(readonly walFile: string) {}

  /** Bytes of the current WAL generation already captured (the size the local WAL has grown to). */
  get bytesConsumed(): number {
    return this.header ? this.offset : 0;
  }

  /** Transactions committed since the last call, in commit order (empty when none). */
  readCommitted(): WalTransaction[] {
    const fd = this.open();
    if (fd === undefined) return [];
    try {
      const size = fstatSync(fd).size;
      if (size < WAL_HEADER_SIZE) return [];
      const headerBytes = Buffer.alloc(WAL_HEADER_SIZE);
      readSync(fd, headerBytes, 0, WAL_HEADER_SIZE, 0);
      const header = parseWalHeader(headerBytes);
      if (!header) return [];
      if (!this.header || header.salt1 !== this.header.salt1 || header.salt2 !== this.header.salt2) {
        // A new WAL generation: everything in it is new to us.
        this.header = header;
        this.offset = WAL_HEADER_SIZE;
        this.checksum = { s1: header.checksum1, s2: header.checksum2 };
      }
      if (size <= this.offset) return [];
      // allocUnsafeSlow: a buffer of its own, 8-byte aligned, so checksums can read words in place.
      const bytes = Buffer.allocUnsafeSlow(size - this.offset);
      const bytesRead = readSync(fd, bytes, 0, bytes.length, this.offset);
      const scan = scanWalFrames(bytes.subarray(0, bytesRead), header, this.checksum);
      this.offset += scan.consumedBytes;
      this.checksum = scan.checksum;
      return scan.transactions;
    } catch (error) {
      throw new LitebaseError('WAL_READ_FAILED', `cannot read ${this.walFile}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }

  /**
   * The WAL file stays open between captures: SQLite truncates it in place on checkpoint and never
   * replaces it while the database is open, so one descriptor sees every generation.
   */
  private fd: number | undefined;

  private open(): number | undefined {
    if (this.fd !== undefined) return this.fd;
    try {
      this.fd = openSync(this.walFile, 'r');
    } catch (error) {
      if (systemErrorCode(error) === 'ENOENT') return undefined;
      throw error;
    }
    return this.fd;
  }

  /** Release the descriptor (before the database's files are removed or replaced). */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  /** Forget the position (after the WAL was checkpointed and truncated, or on reopen). */
  reset(): void {
    this.header = null;
    this.offset = WAL_HEADER_SIZE;
    this.checksum = { s1: 0, s2: 0 };
  }
}
