import { availableParallelism } from 'node:os';
import { LitebaseError } from '../errors.js';
import type { ErrorCode } from '../error-codes.js';
import type { ManifestRange } from '../format/checkpoint-manifest.js';
import { WorkerPool } from '../threads/worker-pool.js';
import { loadRange, releaseReadBuffer, type RangeLoadReply, type RangeLoadRequest } from './range-load-thread.js';
import { releaseFreeMemory } from '../native/malloc-tuning.js';

/**
 * Loading a range checkpoint into a file on threads (src/replay/range-load-thread.ts): one range
 * file per request, as many threads as cores (at most 4). Reading, decoding, hashing and writing a
 * gigabyte took about 7 s on one thread of this project's 2-core test machine; the threads share
 * it, and are stopped when the load ends (a node loads a checkpoint at start, rarely after).
 */
const threads = new WorkerPool<RangeLoadRequest, RangeLoadReply>(
  import.meta.url,
  './range-load-thread.js',
  Math.min(4, Math.max(2, availableParallelism())),
  'range-load',
);

export interface RangeToLoad {
  file: string;
  /** How errors name the file. */
  name: string;
  range: ManifestRange;
}

/**
 * Load `ranges` into the file open as `fd`, each verified against its entry, filling `hashes`
 * (index = page number - 1). Rejects with the first failure, once every range in flight ended
 * (no thread writes into the file after this returns). `threads: false` runs the same work on
 * this thread, one range per turn of the event loop: for a small checkpoint, starting the threads
 * costs more than they save.
 */
export async function loadRanges(
  ranges: readonly RangeToLoad[],
  target: { fd: number; databaseId: string; pageSize: number; hashes: BigUint64Array },
  options: { threads: boolean; onLoaded?: (range: ManifestRange) => void },
): Promise<void> {
  const { onLoaded } = options;
  if (!options.threads) {
    try {
      for (const [index, next] of ranges.entries()) {
        if (index > 0) await new Promise((resolve) => setImmediate(resolve));
        const reply = loadRange({ ...next, id: index, databaseId: target.databaseId, pageSize: target.pageSize, fd: target.fd });
        if (reply.error) throw rangeLoadError(reply.error);
        if (reply.hashes) target.hashes.set(reply.hashes, next.range.firstPage - 1);
        onLoaded?.(next.range);
      }
    } finally {
      releaseReadBuffer();
    }
    return;
  }
  const queue = [...ranges];
  let failure: unknown;
  // Two ranges per thread in flight: a thread starts on the next file while its last reply travels.
  const lanes = Math.min(queue.length, threads.size * 2);
  const lane = async (): Promise<void> => {
    for (let next = queue.shift(); next !== undefined && failure === undefined; next = queue.shift()) {
      const reply = await threads.request({ ...next, databaseId: target.databaseId, pageSize: target.pageSize, fd: target.fd });
      if (reply.error) {
        failure ??= rangeLoadError(reply.error);
        return;
      }
      if (reply.hashes) target.hashes.set(reply.hashes, next.range.firstPage - 1);
      onLoaded?.(next.range);
    }
  };
  try {
    await Promise.all(Array.from({ length: lanes }, lane));
  } finally {
    await threads.stopIdle();
    releaseFreeMemory();
  }
  if (failure !== undefined) throw failure;
}

function rangeLoadError(error: NonNullable<RangeLoadReply['error']>): Error {
  if (error.kind === 'check') return new LitebaseError(error.code as ErrorCode, error.message, { details: error.details });
  return Object.assign(new Error(error.message), { code: error.code });
}
