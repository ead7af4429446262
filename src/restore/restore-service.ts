import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { CheckpointDirectory, writeCheckpointFromFile } from '../replay/checkpoints.js';
import { handOverPageHashes, writeLocalState } from '../replay/local-copy.js';
import { DEFAULT_RANGE_BYTES, rangePagesFor } from '../format/checkpoint-manifest.js';
import type { Engine, NodeDatabases } from '../node/node-databases.js';
import { PrimaryDatabase } from '../engine/primary-database.js';
import { badRequest, conflict, errorMessage, LitebaseError, notFound } from '../errors.js';
import { LogDirectory } from '../log/log-directory.js';
import { formatChecksum } from '../format/rolling-checksum.js';
import { assertDatabaseName, DATABASE_NAME_PATTERN, type LocalLayout, type SharedLayout } from '../storage/layout.js';
import type { ObjectStore } from '../storage/object-store.js';
import { executeRestore, type RestoreProgress } from './executor.js';
import { isArchivedCheckpoint, planRestore, restoreRange, type RestoreCatalog, type RestorePlan, type RestoreTarget } from './planner.js';
import { listArchivedIds, loadArchiveCatalog, loadSharedCatalog, mergeCatalogs } from './sources.js';
import { releaseFreeMemory } from '../native/malloc-tuning.js';

/**
 * Restores through the API (docs/FORMAT.md §11.4, README "Backups, compaction and point-in-time
 * restore"). A restore is planned at once (so a target outside the history is refused with 400
 * before anything starts), then runs as a job on the Primary: the history is applied into a file
 * in the node-local restore folder, and the result becomes a new database whose log starts from a
 * checkpoint at position 1 holding those pages, so it is an ordinary replicated database on every
 * node. Jobs live in memory on the Primary (the last 100); a restart forgets them.
 *
 * The source is found by name: a database in the catalog is read from its archive and from the
 * shared folder (the log since the last archive, the checkpoints there). A name the catalog does
 * not have (the database was dropped, or the shared folder was lost) is read from the object store
 * alone, as the offline restore reads it: the newest database id archived under that name, unless
 * `databaseId` picks another (also for an earlier database of a name that exists again). Such a
 * restore may go into the name itself, since it is free: that is how a lost database comes back.
 */

/**
 * Where a restore reads: `catalog`, a database of the catalog (its archive and the shared folder);
 * `archive`, the object store alone (a name the catalog lacks, or an older id of the name).
 */
export type RestoreSourceKind = 'catalog' | 'archive';

interface RestoreSource {
  name: string;
  databaseId: string;
  kind: RestoreSourceKind;
  /** The open engine of a `catalog` source. */
  engine?: Engine;
  /** For an `archive` source: the other ids archived under the name, newest first. */
  otherDatabaseIds: string[];
}

export interface RestorePointsAnswer {
  database: string;
  databaseId: string;
  /** `catalog`: the database exists (archive and shared folder read); `archive`: the object store alone. */
  source: RestoreSourceKind;
  /** With `source: "archive"`: other ids archived under the name (earlier databases of it), newest first. */
  otherDatabaseIds?: string[];
  earliest: { position: string; time: string } | null;
  latest: { position: string; time: string } | null;
  checkpoints: Array<{ position: string; time: string; bytes: number; archived: boolean; shared: boolean }>;
  archive: { bundles: number; bytes: number; archivedThrough: string; store: string };
  retentionMs: number;
}

export type RestoreStatus = 'running' | 'succeeded' | 'failed';

export interface RestoreJobView {
  id: string;
  database: string;
  databaseId: string;
  source: RestoreSourceKind;
  otherDatabaseIds?: string[];
  target: string;
  status: RestoreStatus;
  request: { position?: string; timestamp?: string };
  plan: {
    basePosition: string;
    checkpoint: string | null;
    objects: number;
    lastPosition: string;
    totalBytes: number;
    totalSegments: number;
    clampedToLatest: boolean;
  };
  progress: RestoreProgress;
  startedAt: string;
  finishedAt?: string;
  result?: {
    position: string;
    time: string | null;
    checksum: string;
    pages: number;
    pageSize: number;
    bytes: number;
    segments: number;
    durationMs: number;
    database: { name: string; id: string; position: string };
  };
  error?: { code: LitebaseError['code']; message: string };
}

export interface RestoreServiceOptions {
  databases: NodeDatabases;
  shared: SharedLayout;
  local: LocalLayout;
  store: ObjectStore;
  logger: Logger;
  retentionMs: number;
  term: () => bigint;
  /** Range size of a restored database's first checkpoint (LITEBASE_CHECKPOINT_RANGE_BYTES); default 16 MiB. */
  rangeBytes?: number;
}

const KEPT_JOBS = 100;

export class RestoreService {
  private readonly jobs = new Map<string, { view: RestoreJobView; done: Promise<void> }>();
  private readonly reservedTargets = new Set<string>();

  constructor(private readonly options: RestoreServiceOptions) {}

  /**
   * The database to restore: the catalog's (when `databaseId` is absent or its id), else the
   * newest id archived under the name (or the one asked for). 404 DATABASE_NOT_FOUND when neither
   * the catalog nor the object store knows the name, 404 RESTORE_NO_HISTORY when the id asked for
   * is not archived.
   */
  private async resolve(name: string, databaseId?: string): Promise<RestoreSource> {
    const { databases, store } = this.options;
    let engine: Engine | undefined;
    let missing: LitebaseError | undefined;
    try {
      engine = await databases.get(name);
    } catch (error) {
      if (!(error instanceof LitebaseError && error.code === 'DATABASE_NOT_FOUND')) throw error;
      missing = error;
    }
    if (engine && (databaseId === undefined || databaseId === engine.meta.id)) {
      return { name, databaseId: engine.meta.id, kind: 'catalog', engine, otherDatabaseIds: [] };
    }
    const archived = (await listArchivedIds(store, name)).map((entry) => entry.databaseId);
    if (archived.length === 0 && missing) {
      throw notFound('DATABASE_NOT_FOUND', `database ${name} does not exist, and ${store.url} holds no archive of it`);
    }
    const chosen = databaseId ?? archived[0];
    if (chosen === undefined || !archived.includes(chosen)) {
      const known = archived.length > 0 ? ` (archived ids: ${archived.join(', ')})` : '';
      throw new LitebaseError('RESTORE_NO_HISTORY', `${store.url} holds no archive of database ${name} with id ${chosen}${known}`);
    }
    return { name, databaseId: chosen, kind: 'archive', otherDatabaseIds: archived.filter((id) => id !== chosen) };
  }

  private async sources(source: RestoreSource): Promise<RestoreCatalog> {
    const { store, logger } = this.options;
    if (source.kind === 'archive') return loadArchiveCatalog(store, source.name, source.databaseId, { logger });
    // The shared folder first: what a compaction deletes from it after that is in the archive.
    const log = new LogDirectory(this.options.shared.logDir(source.name));
    const checkpoints = new CheckpointDirectory(this.options.shared.checkpointsDir(source.name));
    const local = await loadSharedCatalog(source.name, source.databaseId, log, checkpoints, logger);
    return mergeCatalogs(await loadArchiveCatalog(store, source.name, source.databaseId, { logger }), local);
  }

  /**
   * Earliest and latest restorable points (archive and shared log together, or the archive alone
   * for a name the catalog lacks), and the checkpoints.
   */
  async restorePoints(name: string, databaseId?: string): Promise<RestorePointsAnswer> {
    const source = await this.resolve(name, databaseId);
    const catalog = await this.sources(source);
    const range = restoreRange(catalog);
    const byPosition = new Map<bigint, { position: string; time: string; bytes: number; archived: boolean; shared: boolean }>();
    for (const checkpoint of catalog.checkpoints) {
      const entry = byPosition.get(checkpoint.position) ?? {
        position: checkpoint.position.toString(),
        time: new Date(checkpoint.timeMs).toISOString(),
        bytes: checkpoint.bytes,
        archived: false,
        shared: false,
      };
      if (isArchivedCheckpoint(checkpoint.location)) entry.archived = true;
      else entry.shared = true;
      byPosition.set(checkpoint.position, entry);
    }
    const archiveRuns = catalog.runs.filter((run) => run.location.kind === 'archive');
    const point = (value: { position: bigint; timeMs: number }) => ({
      position: value.position.toString(),
      time: new Date(value.timeMs).toISOString(),
    });
    return {
      database: source.name,
      databaseId: source.databaseId,
      source: source.kind,
      ...(source.kind === 'archive' ? { otherDatabaseIds: source.otherDatabaseIds } : {}),
      earliest: range ? point(range.earliest) : null,
      latest: range ? point(range.latest) : null,
      checkpoints: [...byPosition.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, entry]) => entry),
      archive: {
        bundles: archiveRuns.length,
        bytes: archiveRuns.reduce((sum, run) => sum + run.bytes, 0),
        archivedThrough: archiveRuns.reduce((max, run) => (run.last > max ? run.last : max), 0n).toString(),
        store: this.options.store.url,
      },
      retentionMs: this.options.retentionMs,
    };
  }

  /**
   * Plan a restore of `name` and start it (Primary only). Refuses at once what cannot work: a
   * name neither the catalog nor the archive knows (404), a target name that is taken (409) or
   * invalid (400), a point outside the history (400 RESTORE_OUT_OF_RANGE).
   */
  async start(
    name: string,
    target: RestoreTarget,
    targetName: string | undefined,
    options: { databaseId?: string } = {},
  ): Promise<{ view: RestoreJobView; done: Promise<void> }> {
    const { databases } = this.options;
    const source = await this.resolve(name, options.databaseId);
    // No segment the plan reads from the shared log may be deleted until the restore has read it.
    const release = source.engine instanceof PrimaryDatabase ? await source.engine.follower?.pin() : undefined;
    let plan: RestorePlan;
    let newName: string;
    try {
      plan = planRestore(await this.sources(source), target);
      newName = targetName === undefined ? await this.defaultName(name, target) : assertDatabaseName(targetName);
      if (this.reservedTargets.has(newName) || (await databases.exists(newName))) {
        throw conflict('DATABASE_EXISTS', `database ${newName} already exists; restore into a new name`);
      }
    } catch (error) {
      release?.();
      throw error;
    }
    this.reservedTargets.add(newName);
    const id = randomUUID();
    const view: RestoreJobView = {
      id,
      database: name,
      databaseId: source.databaseId,
      source: source.kind,
      ...(source.kind === 'archive' ? { otherDatabaseIds: source.otherDatabaseIds } : {}),
      target: newName,
      status: 'running',
      request: 'position' in target ? { position: target.position.toString() } : { timestamp: new Date(target.timeMs).toISOString() },
      plan: {
        basePosition: plan.basePosition.toString(),
        checkpoint: plan.base ? (isArchivedCheckpoint(plan.base.location) ? plan.base.location.key : plan.base.location.file) : null,
        objects:
          plan.steps.filter((step) => step.run.location.kind === 'archive').length +
          (plan.base && isArchivedCheckpoint(plan.base.location) ? 1 : 0),
        lastPosition: plan.lastPosition.toString(),
        totalBytes: plan.totalBytes,
        totalSegments: plan.totalSegments,
        clampedToLatest: plan.clampedToLatest,
      },
      progress: {
        phase: plan.base ? 'checkpoint' : 'segments',
        bytes: 0,
        totalBytes: plan.totalBytes,
        segments: 0,
        totalSegments: plan.totalSegments,
        percent: 0,
        position: plan.basePosition.toString(),
      },
      startedAt: new Date().toISOString(),
    };
    const done = this.run(view, plan, source, release).finally(() => {
      release?.();
      this.reservedTargets.delete(newName);
    });
    this.jobs.set(id, { view, done });
    while (this.jobs.size > KEPT_JOBS) {
      const oldest = [...this.jobs.entries()].find(([, job]) => job.view.status !== 'running');
      if (!oldest) break;
      this.jobs.delete(oldest[0]);
    }
    return { view, done };
  }

  job(name: string, id: string): RestoreJobView {
    const job = this.jobs.get(id);
    if (!job || job.view.database !== name)
      throw notFound('RESTORE_NOT_FOUND', `no restore ${id} of database ${name} on this node (jobs are kept in memory on the Primary)`);
    return job.view;
  }

  list(name: string): RestoreJobView[] {
    return [...this.jobs.values()].map((job) => job.view).filter((view) => view.database === name);
  }

  private async run(view: RestoreJobView, plan: RestorePlan, source: RestoreSource, release: (() => void) | undefined): Promise<void> {
    const { local, shared, store, logger, databases } = this.options;
    const workDir = path.join(local.restoresDir, view.id);
    const file = path.join(workDir, 'restored.sqlite');
    try {
      const outcome = await executeRestore(plan, file, {
        workDir: path.join(workDir, 'downloads'),
        store,
        // An archive-only plan reads no log (and the name's shared log, if any, is another database's).
        ...(source.kind === 'catalog' ? { log: new LogDirectory(shared.logDir(source.name)) } : {}),
        onProgress: (progress) => {
          view.progress = progress;
        },
        // This node goes on serving: what the restore drops is freed as it goes (executor.ts).
        releaseMemoryEveryBytes: 32 * 1024 * 1024,
      });
      release?.();
      const restoredAt = Date.now();
      const hashes = outcome.hashes();
      const engine = await databases.create(view.target, async (meta) => {
        // The new database's log starts with a range checkpoint at position 1 (docs/FORMAT.md §8).
        await writeCheckpointFromFile(
          new CheckpointDirectory(shared.checkpointsDir(meta.name)),
          file,
          {
            databaseId: meta.id,
            term: this.options.term(),
            position: 1n,
            commitTimeMs: Date.now(),
            pageSize: outcome.pageSize,
            databaseSizePages: outcome.databaseSizePages,
            checksum: outcome.checksum,
          },
          rangePagesFor(this.options.rangeBytes ?? DEFAULT_RANGE_BYTES, outcome.pageSize),
          hashes,
        );
        // The restored file holds exactly the checkpoint's pages: it becomes this node's local copy
        // at position 1, instead of the checkpoint being loaded back into a new one (a whole read,
        // decode and write of the database, on threads that held 60-100 MiB more). Its page hashes
        // are known: opening checks their sum against the log instead of hashing the file again.
        await fs.mkdir(path.dirname(local.sqliteFile(meta.name)), { recursive: true });
        await fs.rename(file, local.sqliteFile(meta.name));
        await writeLocalState(local.stateFile(meta.name), {
          databaseId: meta.id,
          position: '1',
          checksum: formatChecksum(outcome.checksum),
        });
        handOverPageHashes(local.sqliteFile(meta.name), meta.id, 1n, hashes);
      });
      view.result = {
        position: outcome.position.toString(),
        time: outcome.timeMs > 0 ? new Date(outcome.timeMs).toISOString() : null,
        checksum: formatChecksum(outcome.checksum),
        pages: outcome.databaseSizePages,
        pageSize: outcome.pageSize,
        bytes: outcome.bytes,
        segments: outcome.segments,
        durationMs: Date.now() - Date.parse(view.startedAt),
        database: { name: engine.meta.name, id: engine.meta.id, position: engine.position.toString() },
      };
      view.status = 'succeeded';
      // Writing the checkpoint and opening the database churned through as much memory again.
      releaseFreeMemory();
      logger.info(
        {
          restore: view.id,
          database: view.database,
          target: view.target,
          position: view.result.position,
          // Where the time went: reading the history and writing the pages, then the new database's checkpoint and opening.
          restoreMs: outcome.durationMs,
          checkpointAndOpenMs: Date.now() - restoredAt,
        },
        'restore done',
      );
    } catch (error) {
      view.status = 'failed';
      view.error = { code: error instanceof LitebaseError ? error.code : 'RESTORE_FAILED', message: errorMessage(error) };
      logger.error({ err: error, restore: view.id, database: view.database }, 'restore failed');
      throw error;
    } finally {
      view.finishedAt = new Date().toISOString();
      await fs.rm(workDir, { recursive: true, force: true });
    }
  }

  /** `<db>-restored-<position>` (or `-<UTC time>` for a time target), shortened and numbered to fit and be free. */
  private async defaultName(name: string, target: RestoreTarget): Promise<string> {
    const suffix =
      'position' in target
        ? `-restored-${target.position}`
        : `-restored-${new Date(target.timeMs)
            .toISOString()
            .replace(/[-:]/g, '')
            .replace('T', '-')
            .replace(/\.\d+Z$/, '')
            .toLowerCase()}`;
    for (let attempt = 1; attempt < 1000; attempt++) {
      const numbered = attempt === 1 ? suffix : `${suffix}-${attempt}`;
      const candidate = `${name.slice(0, 63 - numbered.length)}${numbered}`;
      if (!DATABASE_NAME_PATTERN.test(candidate)) break;
      if (!this.reservedTargets.has(candidate) && !(await this.options.databases.exists(candidate))) return candidate;
    }
    throw badRequest('RESTORE_TARGET_REQUIRED', `no free default name for a restore of ${name}; give "target"`);
  }
}
