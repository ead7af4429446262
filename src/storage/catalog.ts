import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { conflict, LitebaseError, notFound, systemErrorCode } from '../errors.js';
import { assertDatabaseName, DATABASE_NAME_PATTERN, type SharedLayout } from './layout.js';
import { fsyncDir, writeFileAtomic } from './fs-util.js';

/** What database.json holds: the identity of a database, fixed at creation. */
export interface DatabaseMeta {
  name: string;
  /** A fresh id per creation, so a database dropped and created again never replays the old log. */
  id: string;
  createdAt: string;
  pageSize: number;
}

/** The list of databases, kept on the shared file system as one folder each. */
export class DatabaseCatalog {
  constructor(private readonly layout: SharedLayout) {}

  async create(name: string, pageSize = 4096): Promise<DatabaseMeta> {
    assertDatabaseName(name);
    await fs.mkdir(this.layout.databasesDir, { recursive: true });
    const dir = this.layout.databaseDir(name);
    try {
      // mkdir is atomic and exclusive: of two nodes creating the same name, one wins.
      await fs.mkdir(dir);
    } catch (error) {
      if (systemErrorCode(error) === 'EEXIST') throw conflict('DATABASE_EXISTS', `database ${name} already exists`);
      throw error;
    }
    const meta: DatabaseMeta = { name, id: randomUUID(), createdAt: new Date().toISOString(), pageSize };
    await fs.mkdir(this.layout.logDir(name));
    await fs.mkdir(this.layout.checkpointsDir(name));
    await writeFileAtomic(this.layout.databaseFile(name), JSON.stringify(meta, null, 2) + '\n');
    await fsyncDir(this.layout.databasesDir);
    return meta;
  }

  /** The metadata of a database, or undefined when it does not exist (or is half created). */
  async find(name: string): Promise<DatabaseMeta | undefined> {
    assertDatabaseName(name);
    try {
      const meta = JSON.parse(await fs.readFile(this.layout.databaseFile(name), 'utf8')) as DatabaseMeta;
      return meta;
    } catch (error) {
      if (systemErrorCode(error) === 'ENOENT') return undefined;
      throw new LitebaseError('CATALOG_UNREADABLE', `cannot read ${this.layout.databaseFile(name)}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }

  async get(name: string): Promise<DatabaseMeta> {
    const meta = await this.find(name);
    if (!meta) throw notFound('DATABASE_NOT_FOUND', `database ${name} does not exist`);
    return meta;
  }

  async list(): Promise<DatabaseMeta[]> {
    let names: string[];
    try {
      names = await fs.readdir(this.layout.databasesDir);
    } catch (error) {
      if (systemErrorCode(error) === 'ENOENT') return [];
      throw error;
    }
    const metas: DatabaseMeta[] = [];
    for (const name of names.filter((entry) => DATABASE_NAME_PATTERN.test(entry)).sort()) {
      const meta = await this.find(name);
      if (meta) metas.push(meta);
    }
    return metas;
  }

  /**
   * Remove a database from the shared file system. The folder is first renamed out of the
   * namespace (atomic), so the name is free at once even while the files are being deleted.
   */
  async drop(name: string): Promise<DatabaseMeta> {
    const meta = await this.get(name);
    const trash = path.join(this.layout.databasesDir, `.dropped-${name}-${meta.id}`);
    await fs.rename(this.layout.databaseDir(name), trash);
    await fsyncDir(this.layout.databasesDir);
    await fs.rm(trash, { recursive: true, force: true });
    return meta;
  }
}
