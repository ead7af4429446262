import { readFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { mergeTransactions, parseWalHeader, scanWalFrames, WAL_HEADER_SIZE } from '../../../src/format/wal-format.js';
import { tempDir } from '../../support/server.js';
import { rmSync } from 'node:fs';

/** Real WAL files written by SQLite, read back by our parser. */
describe('WAL format', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((dir) => rmSync(dir, { recursive: true, force: true })));

  function walDatabase(): { db: Database.Database; walFile: string; dbFile: string } {
    const dir = tempDir('wal-');
    dirs.push(dir);
    const dbFile = path.join(dir, 'a.db');
    const db = new Database(dbFile);
    db.pragma('journal_mode = WAL');
    db.pragma('wal_autocheckpoint = 0');
    return { db, walFile: `${dbFile}-wal`, dbFile };
  }

  it('parses every committed transaction SQLite wrote, with the last image of each page', () => {
    const { db, walFile } = walDatabase();
    db.exec('CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT)');
    const insert = db.prepare('INSERT INTO t(b) VALUES (?)');
    for (let i = 0; i < 50; i++) insert.run('x'.repeat(200));
    const wal = readFileSync(walFile);
    const header = parseWalHeader(wal);
    expect(header).not.toBeNull();
    expect(header?.pageSize).toBe(4096);
    const scan = scanWalFrames(wal.subarray(WAL_HEADER_SIZE), header!, { s1: header!.checksum1, s2: header!.checksum2 });
    expect(scan.transactions).toHaveLength(51);
    expect(scan.consumedBytes).toBe(wal.length - WAL_HEADER_SIZE);
    const merged = mergeTransactions(scan.transactions);
    const pageCount = db.pragma('page_count', { simple: true }) as number;
    expect(merged.databaseSizePages).toBe(pageCount);
    expect(merged.pages.map((page) => page.pageNumber)).toEqual([...Array(pageCount).keys()].map((i) => i + 1));
    db.close();
  });

  it('stops at a torn or altered frame and keeps only whole transactions', () => {
    const { db, walFile } = walDatabase();
    db.exec('CREATE TABLE t(a)');
    db.exec('INSERT INTO t VALUES (1)');
    db.exec('INSERT INTO t VALUES (2)');
    const wal = readFileSync(walFile);
    const header = parseWalHeader(wal)!;
    const seed = { s1: header.checksum1, s2: header.checksum2 };
    const full = scanWalFrames(wal.subarray(WAL_HEADER_SIZE), header, seed);
    expect(full.transactions).toHaveLength(3);
    // Truncate in the middle of the last frame: the last transaction disappears.
    const torn = scanWalFrames(wal.subarray(WAL_HEADER_SIZE, wal.length - 100), header, seed);
    expect(torn.transactions).toHaveLength(2);
    // Flip one bit of the last page image: its checksum fails and the scan stops before it.
    const altered = Buffer.from(wal);
    altered[altered.length - 1]! ^= 1;
    expect(scanWalFrames(altered.subarray(WAL_HEADER_SIZE), header, seed).transactions).toHaveLength(2);
    // A header with a bad checksum is not a header.
    const badHeader = Buffer.from(wal.subarray(0, WAL_HEADER_SIZE));
    badHeader[20]! ^= 1;
    expect(parseWalHeader(badHeader)).toBeNull();
    db.close();
  });
});
