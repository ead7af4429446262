import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import {
  mergeTransactions,
  parseWalHeader,
  scanWalFrames,
  WAL_FRAME_HEADER_SIZE,
  WAL_HEADER_SIZE,
  type WalScanResult,
} from '../../../src/format/wal-format.js';
import { Prng } from '../../support/golden-segments.js';

/**
 * Hostile bytes for the WAL parser (issue 6, item 5): damaged headers and frames of a real WAL
 * written by SQLite, and garbage. The parser never throws, consumes whole frames only, and never
 * returns a transaction that is not a prefix of the real ones.
 */
const work = mkdtempSync(path.join(tmpdir(), 'litebase-wal-fuzz-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('WAL parser fuzz', () => {
  /** A real WAL written by SQLite: several transactions, some pages changed more than once. */
  function realWal(): Buffer {
    const dir = mkdtempSync(path.join(work, 'wal-'));
    const db = new Database(path.join(dir, 'a.db'));
    db.pragma('journal_mode = WAL');
    db.pragma('wal_autocheckpoint = 0');
    db.pragma('page_size = 1024');
    db.exec('CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT)');
    const insert = db.prepare('INSERT INTO t(b) VALUES (?)');
    for (let i = 0; i < 30; i++) insert.run('x'.repeat(100 + i * 7));
    db.exec("UPDATE t SET b = 'y' WHERE a % 3 = 0");
    const wal = readFileSync(path.join(dir, 'a.db-wal'));
    db.close();
    return wal;
  }

  const wal = realWal();
  const header = parseWalHeader(wal)!;
  const seed = { s1: header.checksum1, s2: header.checksum2 };
  const frames = wal.subarray(WAL_HEADER_SIZE);
  const full = scanWalFrames(frames, header, seed);
  const frameSize = WAL_FRAME_HEADER_SIZE + header.pageSize;

  function invariants(result: WalScanResult, input: Uint8Array): string | undefined {
    if (result.consumedBytes % frameSize !== 0) return `consumed ${result.consumedBytes} bytes, not whole frames`;
    if (result.consumedBytes > input.length) return `consumed ${result.consumedBytes} of ${input.length} bytes`;
    const counted = result.transactions.reduce((sum, transaction) => sum + transaction.frames.length, 0);
    if (counted * frameSize !== result.consumedBytes)
      return `${counted} frames in transactions, ${result.consumedBytes / frameSize} consumed`;
    for (const transaction of result.transactions) {
      if (transaction.databaseSizePages < 1) return 'a transaction with no database size';
      for (const frame of transaction.frames) if (frame.page.length !== header.pageSize) return 'a frame of the wrong size';
    }
    return undefined;
  }

  /** The transactions of `result` are the first transactions of the whole WAL, byte for byte. */
  function isPrefix(result: WalScanResult): boolean {
    return result.transactions.every((transaction, t) => {
      const expected = full.transactions[t];
      return (
        expected !== undefined &&
        expected.databaseSizePages === transaction.databaseSizePages &&
        expected.frames.length === transaction.frames.length &&
        transaction.frames.every(
          (frame, f) =>
            frame.pageNumber === expected.frames[f]!.pageNumber && Buffer.from(frame.page).equals(Buffer.from(expected.frames[f]!.page)),
        )
      );
    });
  }

  it('parses the real WAL (baseline)', () => {
    expect(full.transactions.length).toBeGreaterThanOrEqual(30);
    expect(full.consumedBytes).toBe(frames.length - (frames.length % frameSize));
  });

  it('never throws on random or damaged headers, and accepts only valid ones', () => {
    const prng = new Prng(77);
    for (let i = 0; i < 3000; i++) {
      let bytes: Buffer;
      if (i % 3 === 0) bytes = prng.bytes(prng.below(64));
      else {
        bytes = Buffer.from(wal.subarray(0, WAL_HEADER_SIZE));
        bytes[prng.below(WAL_HEADER_SIZE)]! ^= 1 << prng.below(8);
      }
      const parsed = parseWalHeader(bytes);
      if (parsed) {
        expect([512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]).toContain(parsed.pageSize);
      }
    }
  });

  it('stops at the first damaged frame and never returns anything but a prefix of the real transactions', () => {
    const prng = new Prng(88);
    let shorter = 0;
    for (let i = 0; i < 2000; i++) {
      const kind = prng.below(4);
      let input: Buffer;
      if (kind === 0) input = frames.subarray(0, prng.below(frames.length + 1));
      else if (kind === 1) {
        input = Buffer.from(frames);
        input[prng.below(input.length)]! ^= 1 << prng.below(8);
      } else if (kind === 2) {
        input = Buffer.from(frames);
        const at = prng.below(input.length - 4);
        input.writeUInt32BE(prng.u32(), at - (at % 4));
      } else {
        // Unaligned: the same bytes one byte into a buffer take the DataView path.
        const padded = Buffer.alloc(frames.length + 1);
        frames.copy(padded, 1);
        input = padded.subarray(1, 1 + prng.below(frames.length + 1));
      }
      const result = scanWalFrames(input, header, seed);
      expect(invariants(result, input), `input #${i} (kind ${kind})`).toBeUndefined();
      expect(isPrefix(result), `input #${i} (kind ${kind}) returned a transaction the WAL does not have`).toBe(true);
      if (result.transactions.length < full.transactions.length) shorter++;
      mergeTransactions(result.transactions);
    }
    expect(shorter).toBeGreaterThan(1000);
  });

  it('never throws on garbage frames, with real or random headers', () => {
    const prng = new Prng(99);
    for (let i = 0; i < 1000; i++) {
      const randomHeader = { ...header, salt1: prng.chance(0.5) ? header.salt1 : prng.u32(), bigEndianChecksums: prng.chance(0.5) };
      const input = prng.bytes(prng.below(frameSize * 4));
      if (input.length >= 16 && prng.chance(0.5)) {
        input.writeUInt32BE(randomHeader.salt1, 8);
        input.writeUInt32BE(randomHeader.salt2, 12);
      }
      const result = scanWalFrames(input, randomHeader, { s1: prng.u32(), s2: prng.u32() });
      expect(result.consumedBytes % frameSize).toBe(0);
      expect(result.consumedBytes).toBeLessThanOrEqual(input.length);
    }
  });
});
