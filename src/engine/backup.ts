import { constants, promises as fs } from 'node:fs';
import Database from 'better-sqlite3';
import { unavailable } from '../errors.js';

/**
 * Backups (docs/API.md "GET /v1/databases/:db/backup"): a copy of a database's local file as one
 * self-contained SQLite file in rollback-journal mode, exactly as of one position. Never built in
 * memory (docs/ARCHITECTURE.md §2.6): the copy is written to a file, page by page or by the kernel.
 *
 * - On the Primary, the file is in WAL mode and written through SQLite, so a read transaction is a
 *   snapshot: `openSnapshot` pins one on a connection of its own, and `copySnapshot` copies it
 *   with SQLite's online backup API, a few hundred pages per turn of the event loop, while writes
 *   go on. The engine pins it under its write lock once every commit is durable, so the snapshot
 *   is exactly the durable position.
 * - On a Replica, the applier writes pages into the file behind SQLite's back, so no read
 *   transaction protects a copy: `copyFile` copies the file while the engine keeps the applier
 *   out (SandboxFile.reading), which is as long as the kernel takes to copy (or clone) the file.
 */

/** Pages copied per turn of the event loop: a few milliseconds of work at 4 KiB pages. */
const PAGES_PER_STEP = 256;

/** Reports whether the copy may go on; throws (or answers false) to abandon it. */
export type BackupCheck = () => boolean;

export function backupInterrupted(database: string): Error {
  return unavailable('BACKUP_INTERRUPTED', `database ${database} was rebuilt, closed or the request ended during the backup; retry`);
}

/**
 * A read-only connection to `sqliteFile` holding a read transaction open: it sees the database
 * as it was when this returned, whatever is committed afterwards, until it is closed.
 */
export function openSnapshot(sqliteFile: string): Database.Database {
  const db = new Database(sqliteFile, { readonly: true, fileMustExist: true });
  try {
    db.exec('BEGIN');
    // A deferred transaction takes its snapshot at its first read.
    db.prepare('SELECT count(*) FROM sqlite_schema').get();
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

/** Copy what `source` sees (its open read transaction) into `file`, a new file; then finish it. */
export async function copySnapshot(source: Database.Database, file: string, check: BackupCheck, database: string): Promise<void> {
  await source.backup(file, {
    progress: () => {
      if (!check()) throw backupInterrupted(database);
      return PAGES_PER_STEP;
    },
  });
  if (!check()) throw backupInterrupted(database);
  finishBackupFile(file);
}

/** Copy a file nobody writes meanwhile into `file` (a reflink where the file system can), then finish it. */
export async function copyFile(sqliteFile: string, file: string): Promise<void> {
  await fs.copyFile(sqliteFile, file, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
  finishBackupFile(file);
}

/**
 * Make a copied file stand alone: page 1 came from a WAL database, so SQLite would open the copy
 * in WAL mode and want `-wal` and `-shm` files beside it. Rollback-journal mode needs neither.
 * Cheap: the copy's WAL is empty, so only the header changes.
 */
export function finishBackupFile(file: string): void {
  const db = new Database(file, { fileMustExist: true });
  try {
    db.pragma('journal_mode = DELETE');
  } finally {
    db.close();
  }
}

/** Remove a backup file and anything SQLite may have left beside it. */
export async function removeBackupFile(file: string): Promise<void> {
  await Promise.all(['', '-journal', '-wal', '-shm'].map((suffix) => fs.rm(`${file}${suffix}`, { force: true })));
}
