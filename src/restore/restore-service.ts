import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { CheckpointDirectory, writeCheckpointFromFile } from '../compactor/checkpoints.js';
import type { NodeDatabases } from '../engine/node-databases.js';
import { PrimaryDatabase } from '../engine/primary-database.js';
import { badRequest, conflict, errorMessage, LitebaseError, notFound } from '../errors.js';
import { LogDirectory } from '../log/log-directory.js';
import { formatChecksum } from '../log/rolling-checksum.js';
import type { DatabaseMeta } from '../storage/catalog.js';
import { assertDatabaseName, DATABASE_NAME_PATTERN, type LocalLayout, type SharedLayout } from '../storage/layout.js';
import type { ObjectStore } from '../storage/object-store.js';
import { executeRestore, type RestoreProgress } from './executor.js';
import { planRestore, restoreRange, type RestoreCatalog, type RestorePlan, type RestoreTarget } from './planner.js';
import { loadArchiveCatalog, loadSharedCatalog, mergeCatalogs } from './sources.js';

/**
 * Restores through the API (docs/FORMAT.md §11.4, README "Backups, compaction and point-in-time
 * restore"). A restore is planned at once (so a target outside the history is refused with 400
 * before anything starts), then runs as a job on the Primary: the history is applied into a file
 * in the node-local restore folder, and the result becomes a new database whose log starts from a
 * checkpoint at position 1 holding those pages, so it is an ordinary replicated database on every
 * node. Jobs live in memory on the Primary (the last 100); a restart forgets them.
 */

export interface RestorePointsAnswer {
  database: string;
  databaseId: string;
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
  error?: { code: string; message: string };
}

export interface RestoreServiceOptions {
  databases: NodeDatabases;
  shared: SharedLayout;
  local: LocalLayout;
  store: ObjectStore;
  logger: Logger;
  retentionMs: number;
  term: () => bigint;
}

const KEPT_JOBS = 100;

export class RestoreService {
  private readonly jobs = new Map<string, { view: RestoreJobView; done: Promise<void> }>();
  private readonly reservedTargets = new Set<string>();

  constructor(private readonly options: RestoreServiceOptions) {}

  private async sources(meta: DatabaseMeta, shared = true): Promise<RestoreCatalog> {
    const { store, logger } = this.options;
    if (!shared) return loadArchiveCatalog(store, meta.name, meta.id, { logger });
    // The shared folder first: what a compaction deletes from it after that is in the archive.
    const log = new LogDirectory(this.options.shared.logDir(meta.name));
    const checkpoints = new CheckpointDirectory(this.options.shared.checkpointsDir(meta.name));
    const local = await loadSharedCatalog(meta.name, meta.id, log, checkpoints, logger);
    return mergeCatalogs(await loadArchiveCatalog(store, meta.name, meta.id, { logger }), local);
  }

  /** Earliest and latest restorable points (archive and shared log together), and the checkpoints. */
  async restorePoints(name: string): Promise<RestorePointsAnswer> {
    const meta = (await this.options.databases.get(name)).meta;
    const catalog = await this.sources(meta);
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
      if (checkpoint.location.kind === 'archive') entry.archived = true;
      else entry.shared = true;
      byPosition.set(checkpoint.position, entry);
    }
    const archiveRuns = catalog.runs.filter((run) => run.location.kind === 'archive');
    const point = (value: { position: bigint; timeMs: number }) => ({ position: value.position.toString(), time: new Date(value.timeMs).toISOString() });
    return {
      database: meta.name,
      databaseId: meta.id,
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
   * Plan a restore of `name` and start it (Primary only). Refuses at once what cannot work: an
   * unknown database (404), a target name that is taken (409) or invalid (400), a point outside
   * the history (400 RESTORE_OUT_OF_RANGE).
   */
  async start(name: string, target: RestoreTarget, targetName: string | undefined): Promise<{ view: RestoreJobView; done: Promise<void> }> {
    const { databases } = this.options;
    const source = await databases.get(name);
    // No segment the plan reads from the shared log may be deleted until the restore has read it.
    const release = source instanceof PrimaryDatabase ? await source.compactor?.pin() : undefined;
    let plan: RestorePlan;
    let newName: string;
    try {
      plan = planRestore(await this.sources(source.meta), target);
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
      target: newName,
      status: 'running',
      request: 'position' in target ? { position: target.position.toString() } : { timestamp: new Date(target.timeMs).toISOString() },
      plan: {
        basePosition: plan.basePosition.toString(),
        checkpoint: plan.base ? (plan.base.location.kind === 'archive' ? plan.base.location.key : plan.base.location.file) : null,
        objects: plan.steps.filter((step) => step.run.location.kind === 'archive').length + (plan.base?.location.kind === 'archive' ? 1 : 0),
        lastPosition: plan.lastPosition.toString(),
        totalBytes: plan.totalBytes,
        totalSegments: plan.totalSegments,
        clampedToLatest: plan.clampedToLatest,
      },
      progress: { phase: plan.base ? 'checkpoint' : 'segments', bytes: 0, totalBytes: plan.totalBytes, segments: 0, totalSegments: plan.totalSegments, percent: 0, position: plan.basePosition.toString() },
      startedAt: new Date().toISOString(),
    };
    const done = this.run(view, plan, source.meta, release).finally(() => {
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
    if (!job || job.view.database !== name) throw notFound('RESTORE_NOT_FOUND', `no restore ${id} of database ${name} on this node (jobs are kept in memory on the Primary)`);
    return job.view;
  }

  list(name: string): RestoreJobView[] {
    return [...this.jobs.values()].map((job) => job.view).filter((view) => view.database === name);
  }

  private async run(view: RestoreJobView, plan: RestorePlan, source: DatabaseMeta, release: (() => void) | undefined): Promise<void> {
    const { local, shared, store, logger, databases } = this.options;
    const workDir = path.join(local.restoresDir, view.id);
    const file = path.join(workDir, 'restored.sqlite');
    try {
      const outcome = await executeRestore(plan, file, {
        workDir: path.join(workDir, 'downloads'),
        store,
        log: new LogDirectory(shared.logDir(source.name)),
        onProgress: (progress) => {
          view.progress = progress;
        },
      });
      release?.();
      const engine = await databases.create(view.target, async (meta) => {
        const checkpoints = new CheckpointDirectory(shared.checkpointsDir(meta.name));
        await checkpoints.publish(1n, (temp) =>
          writeCheckpointFromFile(
            temp,
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
            outcome.hashes(),
          ),
        );
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
      logger.info({ restore: view.id, database: view.database, target: view.target, position: view.result.position }, 'restore done');
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
        : `-restored-${new Date(target.timeMs).toISOString().replace(/[-:]/g, '').replace('T', '-').replace(/\.\d+Z$/, '').toLowerCase()}`;
    for (let attempt = 1; attempt < 1000; attempt++) {
      const numbered = attempt === 1 ? suffix : `${suffix}-${attempt}`;
      const candidate = `${name.slice(0, 63 - numbered.length)}${numbered}`;
      if (!DATABASE_NAME_PATTERN.test(candidate)) break;
      if (!this.reservedTargets.has(candidate) && !(await this.options.databases.exists(candidate))) return candidate;
    }
    throw badRequest('RESTORE_TARGET_REQUIRED', `no free default name for a restore of ${name}; give "target"`);
  }
}
