import type { Logger } from 'pino';
import type { LitebaseConfig } from '../config/config.js';
import { conflict, notFound, unavailable } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { DatabaseCatalog, DatabaseMeta } from '../storage/catalog.js';
import type { LocalLayout, SharedLayout } from '../storage/layout.js';
import type { ObjectStore } from '../storage/object-store.js';
import type { NudgeEntry } from '../format/nudge-codec.js';
import { Compactor } from '../compactor/compactor.js';
import { PrimaryDatabase, type ReplicaFeed } from '../engine/primary-database.js';
import { ReplicaDatabase } from '../engine/replica-database.js';
import { statementMetrics } from '../engine/statement-metrics.js';
import { StatementStats } from '../engine/statement-stats.js';
import type { Metric } from 'prom-client';

/** A Primary's log is followed by its compactor when the node has an object store. */
export type Engine = PrimaryDatabase<Compactor> | ReplicaDatabase;
export type NodeRole = 'primary' | 'replica';

export interface NodeDatabasesOptions {
  catalog: DatabaseCatalog;
  shared: SharedLayout;
  local: LocalLayout;
  config: LitebaseConfig;
  logger: Logger;
  metrics: Metrics;
  /** The term this node writes under while it is the Primary. */
  term: () => bigint;
  /** False the moment this node's lease is not valid: checked before every segment is linked. */
  canWrite: () => boolean;
  /** Shared memory holding the same answer, checked by the append worker before each link. */
  writeFence?: SharedArrayBuffer;
  /** A segment position was taken by another writer: this node is no longer the Primary. */
  onDeposed: (reason: string) => void;
  /** The archive: Primaries run a compactor per database when it is given. */
  objectStore?: ObjectStore;
  /** A Primary's database made new commits durable (the node nudges its replicas). */
  replicaFeed?: ReplicaFeed;
}

/**
 * The databases this node serves, each as a Primary (this node writes the log) or a Replica (it
 * tails the log), following the node's role. Engines open lazily and are swapped on role changes.
 */
export class NodeDatabases {
  private readonly engines = new Map<string, Promise<Engine>>();
  /** Names being created with content (a restore): hidden until their first state is in place. */
  private readonly preparing = new Set<string>();
  private currentRole: NodeRole;
  private switching: Promise<void> = Promise.resolve();
  /**
   * The statements this node ran, per database (GET /v1/databases/:db/statements). Kept across
   * role switches: the engines come and go, the node's counts stay.
   */
  readonly statements: StatementStats;

  constructor(
    private readonly options: NodeDatabasesOptions,
    role: NodeRole,
  ) {
    this.currentRole = role;
    this.statements = new StatementStats(options.config.statementMetrics);
    // prom-client's Registry takes any object with its Metric's name, get() and reset().
    for (const metric of statementMetrics(this.statements)) options.metrics.registry.registerMetric(metric as unknown as Metric);
  }

  get role(): NodeRole {
    return this.currentRole;
  }

  async openAll(): Promise<void> {
    for (const meta of await this.options.catalog.list()) await this.get(meta.name);
  }

  /**
   * Create a database (Primary only: the HTTP layer forwards this from replicas). `prepare` runs
   * after the catalog entry exists and before any engine opens it on this node (a restore writes
   * the database's first checkpoint there); meanwhile the name answers 503 DATABASE_PREPARING
   * here, and if `prepare` fails the database is dropped again.
   */
  async create(name: string, prepare?: (meta: DatabaseMeta) => Promise<void>): Promise<Engine> {
    if (this.preparing.has(name)) throw conflict('DATABASE_EXISTS', `database ${name} is being created`);
    if (!prepare) {
      const meta = await this.options.catalog.create(name);
      return this.openEngine(meta);
    }
    this.preparing.add(name);
    try {
      const meta = await this.options.catalog.create(name);
      try {
        await prepare(meta);
      } catch (error) {
        await this.options.catalog
          .drop(name)
          .catch((dropError: unknown) =>
            this.options.logger.error({ err: dropError, database: name }, 'could not drop a database whose creation failed'),
          );
        throw error;
      }
      this.preparing.delete(name);
      return await this.openEngine(meta);
    } finally {
      this.preparing.delete(name);
    }
  }

  /** True while `create` prepares the name, or when the catalog has it. */
  async exists(name: string): Promise<boolean> {
    return this.preparing.has(name) || this.engines.has(name) || (await this.options.catalog.find(name)) !== undefined;
  }

  /** The open engine, opening it on first use; 404 when the catalog does not have it. */
  async get(name: string): Promise<Engine> {
    await this.switching;
    const opening = this.engines.get(name);
    if (opening) return opening;
    if (this.preparing.has(name)) {
      throw unavailable('DATABASE_PREPARING', `database ${name} is being created from a restore; retry shortly`);
    }
    const meta = await this.options.catalog.find(name);
    if (!meta) throw notFound('DATABASE_NOT_FOUND', `database ${name} does not exist`);
    return this.openEngine(meta);
  }

  private openEngine(meta: DatabaseMeta): Promise<Engine> {
    const existing = this.engines.get(meta.name);
    if (existing) return existing;
    const { shared, local, config, logger, metrics, objectStore } = this.options;
    const opening: Promise<Engine> =
      this.currentRole === 'primary'
        ? PrimaryDatabase.open<Compactor>({
            meta,
            shared,
            local,
            settings: config,
            logger,
            metrics,
            term: this.options.term(),
            canWrite: this.options.canWrite,
            ...(this.options.writeFence ? { writeFence: this.options.writeFence } : {}),
            onDeposed: this.options.onDeposed,
            ...(objectStore
              ? {
                  follow: ({ canWrite, rollLog }) =>
                    new Compactor({ meta, shared, local, store: objectStore, settings: config.compaction, logger, canWrite, rollLog }),
                }
              : {}),
            ...(this.options.replicaFeed ? { replicaFeed: this.options.replicaFeed } : {}),
            statements: this.statements,
          })
        : ReplicaDatabase.open({ meta, shared, local, settings: config, logger, metrics, statements: this.statements });
    this.engines.set(meta.name, opening);
    opening.catch(() => this.engines.delete(meta.name));
    return opening;
  }

  /**
   * The Primary says these databases' logs grew, perhaps with the new segments: replicas apply
   * those or look at once; unknown names are ignored. True when every nudge was needless: this
   * node's watchers see those logs change (ReplicaDatabase.nudge).
   */
  async nudge(entries: readonly NudgeEntry[]): Promise<boolean> {
    const needless = await Promise.all(
      entries.map(async ({ database, segments }) => {
        const engine = await this.engines.get(database)?.catch(() => undefined);
        return engine instanceof ReplicaDatabase && engine.nudge(segments);
      }),
    );
    return needless.length > 0 && needless.every(Boolean);
  }

  async list(): Promise<Engine[]> {
    const metas = (await this.options.catalog.list()).filter((meta) => !this.preparing.has(meta.name));
    return Promise.all(metas.map((meta) => this.get(meta.name)));
  }

  /** Drop a database (Primary only). */
  async drop(name: string): Promise<void> {
    const engine = await this.get(name);
    this.engines.delete(name);
    if (engine instanceof PrimaryDatabase) await engine.destroy();
    else await engine.close();
    this.statements.forget(name);
    await this.options.catalog.drop(name);
  }

  /**
   * Reconcile open engines with the catalog: close databases another node dropped (or dropped and
   * created again under the same name), so a replica never serves a database that is gone.
   */
  async syncWithCatalog(): Promise<void> {
    const metas = new Map((await this.options.catalog.list()).map((meta) => [meta.name, meta]));
    for (const [name, opening] of [...this.engines]) {
      const engine = await opening.catch(() => undefined);
      const meta = metas.get(name);
      if (engine && (!meta || meta.id !== engine.meta.id)) {
        this.engines.delete(name);
        this.statements.forget(name);
        await engine.close();
      }
    }
  }

  /** Positions per database, for heartbeats and /v1/cluster. */
  async positions(): Promise<Record<string, { position: string }>> {
    const positions: Record<string, { position: string }> = {};
    for (const [name, opening] of this.engines) {
      const engine = await opening.catch(() => undefined);
      if (engine) positions[name] = { position: engine.position.toString() };
    }
    return positions;
  }

  /** Segments this node refused to apply (corrupt, foreign, out of order), per database. */
  async logErrors(): Promise<Record<string, NonNullable<ReplicaDatabase['lastError']>>> {
    const errors: Record<string, NonNullable<ReplicaDatabase['lastError']>> = {};
    for (const [name, opening] of this.engines) {
      const engine = await opening.catch(() => undefined);
      if (engine instanceof ReplicaDatabase && engine.lastError) errors[name] = engine.lastError;
    }
    return errors;
  }

  /** Switch every database to the new role (close, then reopen as the other kind). */
  setRole(role: NodeRole): Promise<void> {
    this.switching = this.switching.then(async () => {
      if (role === this.currentRole) return;
      this.options.logger.info({ from: this.currentRole, to: role }, 'switching role');
      const open = [...this.engines.values()];
      this.engines.clear();
      this.currentRole = role;
      for (const opening of open) {
        const engine = await opening.catch(() => undefined);
        await engine?.close().catch((error: unknown) => this.options.logger.warn({ err: error }, 'close during role switch failed'));
      }
      // The shared folder may be unreadable right now (its mount died): the switch still ends, and
      // each database opens in the new role on first use (get). A rejected switch would fail every
      // later request, and the caller's unhandled rejection would end the process.
      const metas = await this.options.catalog.list().catch((error: unknown) => {
        this.options.logger.error({ err: error }, 'could not list the databases for the new role; each opens on first use');
        return [];
      });
      for (const meta of metas) {
        if (this.preparing.has(meta.name)) continue;
        await this.openEngine(meta).catch((error: unknown) =>
          this.options.logger.error({ err: error, database: meta.name }, 'could not open database in its new role'),
        );
      }
    });
    return this.switching;
  }

  /** True when every open database can serve requests. */
  async allReady(): Promise<boolean> {
    const engines = await Promise.allSettled(this.engines.values());
    return engines.every((result) => result.status === 'fulfilled' && result.value.isReady);
  }

  async close(): Promise<void> {
    await this.switching;
    const engines = await Promise.allSettled(this.engines.values());
    this.engines.clear();
    for (const result of engines) {
      if (result.status === 'fulfilled') await result.value.close();
    }
  }
}
