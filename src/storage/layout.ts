import path from 'node:path';
import { badRequest } from '../errors.js';

/**
 * Where things live on the shared file system (docs/ARCHITECTURE.md §3). Every path a request can influence
 * goes through `assertDatabaseName` first, so a name never reaches the file system unchecked.
 */
export const DATABASE_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export function assertDatabaseName(name: string): string {
  if (!DATABASE_NAME_PATTERN.test(name)) {
    throw badRequest(
      'INVALID_DATABASE_NAME',
      `database name ${JSON.stringify(name.slice(0, 80))} must match ${DATABASE_NAME_PATTERN.source}`,
    );
  }
  return name;
}

/** Positions are log sequence numbers; file names pad them so that names sort like numbers. */
export const POSITION_DIGITS = 20;

export function formatPosition(position: bigint): string {
  return position.toString().padStart(POSITION_DIGITS, '0');
}

export class SharedLayout {
  constructor(readonly root: string) {}

  get clusterDir(): string {
    return path.join(this.root, 'cluster');
  }

  get databasesDir(): string {
    return path.join(this.root, 'databases');
  }

  get rootKeyFile(): string {
    return path.join(this.clusterDir, 'root.key');
  }

  databaseDir(name: string): string {
    return path.join(this.databasesDir, assertDatabaseName(name));
  }

  databaseFile(name: string): string {
    return path.join(this.databaseDir(name), 'database.json');
  }

  logDir(name: string): string {
    return path.join(this.databaseDir(name), 'log');
  }

  checkpointsDir(name: string): string {
    return path.join(this.databaseDir(name), 'checkpoints');
  }

  /** A checkpoint file: the 20-digit position, like a segment's name (docs/FORMAT.md §8). */
  checkpointFile(name: string, position: bigint): string {
    return path.join(this.checkpointsDir(name), `${formatPosition(position)}.ckpt`);
  }
}

/** The node-local page cache: one folder per database, holding its SQLite file and state. */
export class LocalLayout {
  constructor(readonly root: string) {}

  databaseDir(name: string): string {
    return path.join(this.root, 'databases', assertDatabaseName(name));
  }

  sqliteFile(name: string): string {
    return path.join(this.databaseDir(name), 'db.sqlite');
  }

  stateFile(name: string): string {
    return path.join(this.databaseDir(name), 'state.json');
  }

  /** The compactor's work files of a database (the spill of a fold, bundles being built; src/compactor). */
  compactorDir(name: string): string {
    return path.join(this.databaseDir(name), 'compactor');
  }

  /** Backups being written for a download (GET /v1/databases/:db/backup); emptied at start. */
  get backupsDir(): string {
    return path.join(this.root, 'backups');
  }

  /** Work space of restores running on this node (downloads and the database being rebuilt). */
  get restoresDir(): string {
    return path.join(this.root, 'restores');
  }

  /** The node process's exclusive lock on this folder, holding the folder's instance id (src/storage/local-dir-lock.ts). */
  get lockFile(): string {
    return path.join(this.root, 'node.lock');
  }

  /** Who holds the lock (pid, host, start time), for the message a second process gets. */
  get lockOwnerFile(): string {
    return path.join(this.root, 'node.lock.owner');
  }
}
