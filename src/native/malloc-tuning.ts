import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Database, { type Statement } from 'better-sqlite3';
import { collectGarbage } from './garbage-collector.js';

/**
 * glibc's allocator, tuned through src/native/malloc-tuning.c (which explains why):
 *
 * - fixMmapThreshold: the mmap threshold, fixed by `litebase serve`: the equivalent of starting the
 *   process with MALLOC_MMAP_THRESHOLD_, which glibc reads only at start-up, set through mallopt
 *   once the server runs. Loading with ~10 MiB requests peaked some 40-60 MiB lower with it
 *   (bench/README.md, "memory").
 * - releaseFreeMemory: malloc_trim(0), after work that churned through much more memory than it
 *   holds at the end (a restore, a compaction, a checkpoint load). glibc gives memory back to the
 *   system only from the top of a heap; the free chunks in between stay resident. A node that had
 *   restored a 400 MiB database held 448 MiB, 306 MiB once trimmed (bench/README.md, "memory").
 */

/** Where infra/build-native.mjs puts the library: beside this module when compiled, or under dist for the TypeScript sources. */
const CANDIDATES = ['./malloc-tuning.so', '../../dist/src/native/malloc-tuning.so'].map((relative) =>
  fileURLToPath(new URL(relative, import.meta.url)),
);
const builtLibrary = (): string | undefined => CANDIDATES.find((candidate) => existsSync(candidate));

export type MmapThresholdOutcome =
  /** Fixed at the given size. */
  | 'set'
  /** Not asked for (0). */
  | 'off'
  /** The environment sets glibc's own (MALLOC_MMAP_THRESHOLD_ or GLIBC_TUNABLES): left as it is. */
  | 'environment'
  /** Not glibc (another C library, another system): nothing to do. */
  | 'unsupported'
  /** The library was not built (no C compiler at install time). */
  | 'not-built'
  /** mallopt refused the value. */
  | 'refused';

/** Fix glibc's mmap threshold at `bytes` for the rest of the process's life; what happened. */
export function fixMmapThreshold(
  bytes: number,
  env: NodeJS.ProcessEnv = process.env,
  findLibrary: () => string | undefined = builtLibrary,
): MmapThresholdOutcome {
  if (bytes === 0) return 'off';
  if (env.MALLOC_MMAP_THRESHOLD_ !== undefined || env.GLIBC_TUNABLES?.includes('glibc.malloc.mmap_threshold')) return 'environment';
  if (process.platform !== 'linux') return 'unsupported';
  const library = findLibrary();
  if (library === undefined) return 'not-built';
  const db = new Database(':memory:');
  try {
    db.loadExtension(library);
    const result = db.prepare<[number], number>('SELECT litebase_mmap_threshold(?)').pluck().get(bytes);
    return result === 1 ? 'set' : result === -1 ? 'unsupported' : 'refused';
  } finally {
    db.close();
  }
}

/** The prepared `litebase_malloc_trim()`; null when there is none here (not Linux, not built, not loadable). */
let trimmer: Statement<[], number> | null | undefined;

/**
 * Frees the buffers that work dropped (a full garbage collection: garbage-collector.ts says why),
 * then gives the free memory inside glibc's heaps back to the system (malloc_trim(0): every arena,
 * the worker threads' too). A few milliseconds each; safe at any point of the event loop. False
 * when the trim cannot run here (not Linux, or the library was not built); a C library other than
 * glibc has nothing to do and answers true.
 */
export function releaseFreeMemory(): boolean {
  collectGarbage();
  if (trimmer === undefined) trimmer = openTrimmer();
  if (trimmer === null) return false;
  trimmer.get();
  return true;
}

/**
 * For long work that drops memory as it goes (decompressed pages, compressed chunks): a function
 * to call with the bytes each step went through; it releases free memory every `everyBytes`.
 * Between two releases up to that much dropped memory stays resident.
 */
export function releaseEvery(everyBytes: number): (bytes: number) => void {
  let unreleased = 0;
  return (bytes) => {
    unreleased += bytes;
    if (unreleased < everyBytes) return;
    unreleased = 0;
    releaseFreeMemory();
  };
}

function openTrimmer(): Statement<[], number> | null {
  const library = process.platform === 'linux' ? builtLibrary() : undefined;
  if (library === undefined) return null;
  try {
    // Kept open for the life of the process: one statement per call.
    const db = new Database(':memory:');
    db.loadExtension(library);
    return db.prepare<[], number>('SELECT litebase_malloc_trim()').pluck();
  } catch {
    return null;
  }
}
