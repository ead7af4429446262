import { availableParallelism } from 'node:os';
import { BundleFormatError } from '../format/bundle-codec.js';
import { sliceBlocks, type PickList } from '../format/bundle-picks.js';
import { LitebaseError } from '../errors.js';
import { WorkerPool } from '../threads/worker-pool.js';
import type { PageWriteReply, PageWriteRequest } from './page-write-thread.js';

/**
 * Threads that decode format 2 bundles and write the images straight into the restored file
 * (src/restore/page-write-thread.ts). Checking and decompressing the blocks of a large restore is
 * about as much work as writing the pages, and neither needs the calling thread, which meanwhile
 * reads the next bundles and plans them: which page takes which image is decided from the
 * bundles' tables alone (PageMajorBundle.plan), newest bundle first, before any image is decoded.
 * One thread per core, at most four.
 */
const writers = new WorkerPool<PageWriteRequest, PageWriteReply>(
  import.meta.url,
  './page-write-thread.js',
  Math.max(1, Math.min(4, availableParallelism())),
  'restore-page-writer',
  5_000, // stopped after 5 s without work: restores come in bursts
);

/** Start the threads now (a large restore does, while it lists and plans). */
export function warmUpPageWriters(): void {
  writers.startAll();
}

/** Blocks per request (about 2 MiB of images): small enough to spread a bundle over the threads. */
const CHUNK_BLOCKS = 32;

/**
 * Decode what `picks` names from `bundle` (a Buffer at the start of a SharedArrayBuffer) and write
 * it into `fd`, spread over the threads.
 * Resolves with the bytes written; rejects with BundleFormatError (named after `name`) when the
 * bundle is damaged, or RESTORE_WRITE_FAILED when the file could not be written.
 */
export async function writePicksOnThreads(bundle: Buffer, picks: PickList, fd: number, name: string): Promise<number> {
  if (!(bundle.buffer instanceof SharedArrayBuffer) || bundle.byteOffset !== 0)
    throw new Error('writePicksOnThreads: the bundle must start a SharedArrayBuffer');
  const memory = bundle.buffer;
  const { list, pageSize } = picks;
  const blocks = list[0] as number;
  const chunks: Array<Promise<PageWriteReply>> = [];
  for (let block = 0, at = 1; block < blocks; block += CHUNK_BLOCKS) {
    const chunk = sliceBlocks(list, at, Math.min(CHUNK_BLOCKS, blocks - block));
    at = chunk.next;
    chunks.push(writers.request({ bundle: memory, length: bundle.byteLength, list: chunk.list, pageSize, fd }));
  }
  let replies: PageWriteReply[];
  try {
    replies = await Promise.all(chunks);
  } catch (error) {
    throw new LitebaseError(
      'RESTORE_WRITE_FAILED',
      `a page-writing thread failed: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
  let bytes = 0;
  for (const reply of replies) {
    if (reply.error?.kind === 'bundle') throw new BundleFormatError(`${name}: ${reply.error.message}`, { key: name });
    if (reply.error)
      throw new LitebaseError('RESTORE_WRITE_FAILED', `writing the restored file: ${reply.error.message}`, {
        details: reply.error.code ? { code: reply.error.code } : {},
      });
    bytes += reply.bytes;
  }
  return bytes;
}
