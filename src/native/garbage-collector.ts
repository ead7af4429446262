import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * V8's full garbage collection, run on purpose after heavy work.
 *
 * Why: a Buffer's memory lives outside V8's heap and is freed only when the garbage collector
 * finds the Buffer dead. V8 starts a collection for such memory only once it has grown by some
 * 64 MiB since the last one, and work that reads, decompresses and writes large buffers while
 * allocating little JavaScript (a restore, a checkpoint written from a file) keeps that much dead
 * memory resident between two collections. A node restoring 1 GiB from the shared log peaked at
 * 281-302 MiB without a collection of its own, 237-254 MiB with one every 32 MiB of pages (three
 * runs each; bench/README.md, "memory").
 *
 * The price is time: a full collection marks the whole heap (a server's: tens of megabytes of
 * objects), ~18 ms on the calling thread and more on V8's helper threads. That 1 GiB restore took
 * 22-23 s instead of 17-19 s. So it runs every few tens of megabytes of heavy work, never per
 * request. (A minor collection, which would be cheap, freed nothing there: the buffers had lived
 * through one already.)
 *
 * `gc` is reached the way jest's leak detector reaches it: V8's `--expose-gc` flag set at run time
 * makes a new context's global `gc` function available.
 */
type GarbageCollect = () => void;

let collect: GarbageCollect | null | undefined;

/** Runs a full garbage collection; false when V8 does not offer one here. */
export function collectGarbage(): boolean {
  if (collect === undefined) collect = exposedCollector();
  if (collect === null) return false;
  collect();
  return true;
}

function exposedCollector(): GarbageCollect | null {
  const global = (globalThis as { gc?: unknown }).gc;
  if (typeof global === 'function') return global as GarbageCollect; // started with --expose-gc
  try {
    setFlagsFromString('--expose-gc');
    const exposed: unknown = runInNewContext('gc');
    return typeof exposed === 'function' ? (exposed as GarbageCollect) : null;
  } catch {
    return null;
  }
}
