import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { errorMessage, LitebaseError } from '../errors.js';
import type { LocalLayout } from './layout.js';

/**
 * The node process's exclusive lock on its local folder, held from start to exit.
 *
 * Two jobs:
 * - two processes must never share one local folder (both would write the same SQLite copies):
 *   the second one stops at start with LOCAL_DIR_IN_USE;
 * - a restarted node must be able to prove that the process before it has exited, to take over
 *   its lease at once (docs/CLUSTER.md, "Instant restart"). The lock is a POSIX record lock taken
 *   by SQLite on `node.lock` (a tiny SQLite database in EXCLUSIVE locking mode, written once and
 *   kept open): the kernel drops such a lock the moment its process exits, however it exits
 *   (kill -9 included), and in no other way. So holding the lock proves every earlier holder is
 *   gone, whatever its pid namespace: a pid check could not prove that inside a restarted container.
 *
 * `instanceId`, random and kept in the lock file, names the folder; lease.json records it so that
 * only a process on this same folder can take a lease over (src/cluster/election.ts).
 */
export class LocalDirLock {
  private constructor(
    private readonly db: Database.Database,
    readonly instanceId: string,
  ) {}

  /** Take the lock, or fail with LOCAL_DIR_IN_USE naming the holder. The folder must exist. */
  static acquire(layout: LocalLayout): LocalDirLock {
    const db = new Database(layout.lockFile, { timeout: 0 });
    try {
      // A rollback journal, not WAL: in EXCLUSIVE locking mode the first write takes the file's
      // exclusive lock and keeps it until the connection closes; WAL mode would use shared memory.
      db.pragma('journal_mode = DELETE');
      db.pragma('locking_mode = EXCLUSIVE');
      const instanceId = db
        .transaction(() => {
          db.exec('CREATE TABLE IF NOT EXISTS instance (id TEXT NOT NULL)');
          const row = db.prepare('SELECT id FROM instance LIMIT 1').get() as { id: string } | undefined;
          if (row !== undefined) return row.id;
          const id = randomUUID();
          db.prepare('INSERT INTO instance (id) VALUES (?)').run(id);
          return id;
        })
        .exclusive();
      writeOwner(layout);
      return new LocalDirLock(db, instanceId);
    } catch (error) {
      db.close();
      if (isBusy(error)) {
        throw new LitebaseError(
          'LOCAL_DIR_IN_USE',
          `the local folder ${layout.root} is in use by another process (${describeOwner(layout)})`,
          {
            cause: error,
          },
        );
      }
      throw error;
    }
  }

  /** Give the lock back (at a clean stop; an exit gives it back on its own). */
  release(): void {
    if (this.db.open) this.db.close();
  }
}

function isBusy(error: unknown): boolean {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' && (code === 'SQLITE_BUSY' || code.startsWith('SQLITE_BUSY_') || code === 'SQLITE_LOCKED');
}

function writeOwner(layout: LocalLayout): void {
  try {
    writeFileSync(layout.lockOwnerFile, JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() }) + '\n');
  } catch {
    // Only for the message another process gets: the lock itself is what counts.
  }
}

function describeOwner(layout: LocalLayout): string {
  try {
    const owner = JSON.parse(readFileSync(layout.lockOwnerFile, 'utf8')) as { pid?: unknown; startedAt?: unknown };
    return `pid ${String(owner.pid)}, started ${String(owner.startedAt)}`;
  } catch (error) {
    return `owner unknown: ${errorMessage(error)}`;
  }
}
