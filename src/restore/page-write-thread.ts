/**
 * A restore's page-writing thread (started by src/restore/page-writers.ts): checks and
 * decompresses the blocks of a format 2 bundle that a pick list names (decodePicks, the code the
 * calling thread runs for small lists) and writes each image straight into the restored file at
 * its page's offset, neighbouring pages in one vectored write. Nothing comes back but a count:
 * the calling thread decided from the bundle's tables which page takes which image, and recorded
 * their hashes, before asking.
 */
import { parentPort } from 'node:worker_threads';
import { decodePicks } from '../format/bundle-picks.js';
import { writevFullySync } from '../storage/fs-util.js';

export interface PageWriteRequest {
  id: number;
  /** The bundle, shared (nothing is copied to get here): its first `length` bytes. The memory may be longer (a reused buffer). */
  bundle: SharedArrayBuffer;
  length: number;
  /** A pick list (bundle.ts, PickList) of some of its blocks. */
  list: Float64Array;
  pageSize: number;
  /** The restored file, open for writing in this process. */
  fd: number;
}

export interface PageWriteReply {
  id: number;
  pages: number;
  bytes: number;
  /** What went wrong: the bundle is damaged (decodePicks' message), or writing the file failed. */
  error?: { kind: 'bundle' | 'io'; message: string; code?: string };
}

export function writePicks(request: PageWriteRequest): PageWriteReply {
  const { pageSize, fd } = request;
  let pages = 0;
  let run: Uint8Array[] = [];
  let runFirst = 0;
  const flush = (): void => {
    if (run.length === 0) return;
    writevFullySync(fd, run, (runFirst - 1) * pageSize);
    run = [];
  };
  try {
    decodePicks(new Uint8Array(request.bundle, 0, request.length), request.list, pageSize, (pageNumber, image) => {
      if (run.length > 0 && pageNumber !== runFirst + run.length) flush();
      if (run.length === 0) runFirst = pageNumber;
      run.push(image);
      pages++;
    });
    flush();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const message = error instanceof Error ? error.message : String(error);
    // System errors (ENOSPC, EIO) carry a code; decodePicks' plain Errors do not.
    const kind = typeof code === 'string' ? 'io' : 'bundle';
    return { id: request.id, pages, bytes: pages * pageSize, error: { kind, message, ...(typeof code === 'string' ? { code } : {}) } };
  }
  return { id: request.id, pages, bytes: pages * pageSize };
}

parentPort?.on('message', (request: PageWriteRequest) => {
  parentPort?.postMessage(writePicks(request));
});
