import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { LitebaseError } from '../errors.js';
import { pathExists } from '../storage/fs-util.js';
import type { ObjectStore } from '../storage/object-store.js';
import { quickCheckFile } from '../storage/sqlite-file.js';
import { executeRestore, type RestoreOutcome, type RestoreProgress } from './executor.js';
import { planRestore, type RestorePlan, type RestoreTarget } from './planner.js';
import { loadArchiveCatalog, resolveArchivedId } from './sources.js';

/**
 * Restore straight from the object store into a SQLite file, with no server: what
 * `litebase restore NAME ... --output FILE` runs. The file is built beside the output under a
 * temporary name, verified (every checksum, then SQLite's own check), turned into a plain
 * rollback-journal file, and only then renamed to the output.
 */

export interface OfflineRestoreOptions {
  store: ObjectStore;
  database: string;
  /** Which archived database of that name; default the newest. */
  databaseId?: string;
  target: RestoreTarget;
  output: string;
  /** Replace an existing output file. */
  force?: boolean;
  /** Run PRAGMA quick_check on the result (default true). */
  check?: boolean;
  onProgress?: (progress: RestoreProgress) => void;
  logger?: Logger;
}

export interface OfflineRestoreResult {
  databaseId: string;
  /** Other ids archived under the same name (an earlier database dropped and created again). */
  otherIds: string[];
  plan: RestorePlan;
  outcome: RestoreOutcome;
  output: string;
}

export async function restoreToFile(options: OfflineRestoreOptions): Promise<OfflineRestoreResult> {
  const output = path.resolve(options.output);
  if (!options.force && (await pathExists(output))) {
    throw new LitebaseError('OUTPUT_EXISTS', `${output} exists; choose another file or pass --force`);
  }
  await fs.mkdir(path.dirname(output), { recursive: true });
  const suffix = randomBytes(6).toString('hex');
  const workDir = path.join(path.dirname(output), `.${path.basename(output)}.restore-${suffix}`);
  const building = path.join(workDir, 'restored.sqlite');
  try {
    const { databaseId, others } = await resolveArchivedId(options.store, options.database, options.databaseId);
    const catalog = await loadArchiveCatalog(options.store, options.database, databaseId, options.logger ? { logger: options.logger } : {});
    const plan = planRestore(catalog, options.target);
    const outcome = await executeRestore(plan, building, {
      workDir: path.join(workDir, 'downloads'),
      store: options.store,
      standalone: true,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    if (options.check !== false && outcome.databaseSizePages > 0)
      await quickCheckFile(building, 'RESTORE_VERIFY_FAILED', 'the restored database');
    await fs.rename(building, output);
    return { databaseId, otherIds: others, plan, outcome, output };
  } finally {
    await fs.rm(workDir, { recursive: true, force: true });
  }
}
