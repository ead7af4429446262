import type { Logger } from 'pino';
import type { LitebaseConfig } from '../config/config.js';
import type { Metrics } from '../metrics.js';
import type { DatabaseCatalog, DatabaseMeta } from '../storage/catalog.js';
import { notFound } from '../errors.js';
import type { LocalLayout, SharedLayout } from '../storage/layout.js';
import { PrimaryDatabase } from './primary-database.js';

export interface NodeDatabasesOptions {
  catalog: DatabaseCatalog;
  shared: SharedLayout;
  local: LocalLayout;
  config: LitebaseConfig;
  logger: Logger;
  metrics: Metrics;
  term: bigint;
}

/** The databases this node serves, opened once and shared by every request. */
export class NodeDatabases {
  private readonly open = new Map<string, Promise<PrimaryDatabase>>();

  constructor(private readonly options: NodeDatabasesOptions) {}

  async openAll(): Promise<void> {
    for (const meta of await this.options.catalog.list()) await this.get(meta.name);
  }

  async create(name: string): Promise<PrimaryDatabase> {
    const meta = await this.options.catalog.create(name);
    return this.openDatabase(meta);
  }

  /** The open database, opening it on first use; 404 when the catalog does not have it. */
  async get(name: string): Promise<PrimaryDatabase> {
    const opening = this.open.get(name);
    if (opening) return opening;
    const meta = await this.options.catalog.find(name);
    if (!meta) throw notFound('DATABASE_NOT_FOUND', `database ${name} does not exist`);
    return this.openDatabase(meta);
  }

  private openDatabase(meta: DatabaseMeta): Promise<PrimaryDatabase> {
    const existing = this.open.get(meta.name);
    if (existing) return existing;
    const { shared, local, config, logger, metrics, term } = this.options;
    const opening = PrimaryDatabase.open({ meta, shared, local, config, logger, metrics, term });
    this.open.set(meta.name, opening);
    opening.catch(() => this.open.delete(meta.name));
    return opening;
  }

  async list(): Promise<PrimaryDatabase[]> {
    const metas = await this.options.catalog.list();
    return Promise.all(metas.map((meta) => this.get(meta.name)));
  }

  async drop(name: string): Promise<void> {
    const database = await this.get(name);
    this.open.delete(name);
    await database.destroy();
    await this.options.catalog.drop(name);
  }

  /** True when every open database can serve requests. */
  async allReady(): Promise<boolean> {
    const databases = await Promise.allSettled(this.open.values());
    return databases.every((result) => result.status === 'fulfilled' && result.value.isReady);
  }

  async close(): Promise<void> {
    const databases = await Promise.allSettled(this.open.values());
    this.open.clear();
    for (const result of databases) {
      if (result.status === 'fulfilled') await result.value.close();
    }
  }
}
