import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';

/**
 * glibc's mmap threshold, fixed by `litebase serve` (src/native/malloc-tuning.c explains why):
 * the equivalent of starting the process with MALLOC_MMAP_THRESHOLD_, which glibc reads only at
 * start-up, set through mallopt once the server runs. Loading with ~10 MiB requests peaked some
 * 40-60 MiB lower with it (bench/README.md, "memory").
 */

/** Where infra/build-native.mjs puts the library: beside the compiled code, or under dist for the TypeScript sources. */
const CANDIDATES = ['../native/malloc-tuning.so', '../../dist/src/native/malloc-tuning.so'].map((relative) =>
  fileURLToPath(new URL(relative, import.meta.url)),
);

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
  findLibrary: () => string | undefined = () => CANDIDATES.find((candidate) => existsSync(candidate)),
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
