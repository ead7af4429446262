import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { POSITION_DIGITS } from '../storage/layout.js';

/**
 * Reads segment files ahead on a worker thread while the caller decodes and applies the previous
 * batch: a long replay (a node joining, or restarting far behind) is half file reads, and on two
 * cores the reads need not wait for the decoding. The worker only reads bytes; everything is
 * still decoded and verified on the caller's side. One batch's files arrive in one transferred
 * buffer, so nothing is copied between the threads.
 *
 * The worker's code is plain JavaScript kept here as text, so the same code runs from the compiled
 * build and from the TypeScript sources under the test runner.
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');
parentPort.on('message', ({ id, dir, first, count, maxBytes }) => {
  let buffer = new Uint8Array(1024 * 1024);
  let used = 0;
  const sizes = [];
  let error;
  try {
    let position = BigInt(first);
    while (sizes.length < count && used < maxBytes) {
      const file = path.join(dir, position.toString().padStart(${POSITION_DIGITS}, '0') + '.seg');
      let fd;
      try {
        fd = fs.openSync(file, 'r');
      } catch (caught) {
        if (caught && caught.code === 'ENOENT') break;
        throw caught;
      }
      try {
        const size = fs.fstatSync(fd).size;
        if (used + size > buffer.length) {
          const grown = new Uint8Array(Math.max(buffer.length * 2, used + size));
          grown.set(buffer.subarray(0, used));
          buffer = grown;
        }
        let read = 0;
        while (read < size) {
          const n = fs.readSync(fd, buffer, used + read, size - read, read);
          if (n === 0) break;
          read += n;
        }
        sizes.push(read);
        used += read;
      } finally {
        fs.closeSync(fd);
      }
      position += 1n;
    }
  } catch (caught) {
    error = { code: caught && caught.code, message: String(caught && caught.message) };
  }
  parentPort.postMessage({ id, sizes, buffer: buffer.buffer, error }, [buffer.buffer]);
});
`;

export interface PrefetchedBatch {
  first: bigint;
  /** The files from `first` on, in order, up to the first missing one or the batch limits. */
  files: Buffer[];
}

interface Reply {
  id: number;
  sizes: number[];
  buffer: ArrayBuffer;
  error?: { code?: string; message: string };
}

export class SegmentPrefetcher {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { first: bigint; resolve: (batch: PrefetchedBatch) => void; reject: (error: Error) => void }>();
  private nextId = 1;

  constructor(
    private readonly dir: string,
    private readonly limits = { count: 512, bytes: 16 * 1024 * 1024 },
  ) {
    this.worker = new Worker(WORKER_SOURCE, { eval: true });
    this.worker.on('message', (reply: Reply) => this.settle(reply));
    this.worker.on('error', (error) => this.failAll(error));
    this.worker.on('exit', (code) => this.failAll(new Error(`segment prefetch worker exited with code ${code}`)));
  }

  /** Read the files from `first` on (resolves with fewer, or none, when the log ends sooner). */
  fetch(first: bigint): Promise<PrefetchedBatch> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { first, resolve, reject });
      this.worker.postMessage({ id, dir: path.resolve(this.dir), first: first.toString(), count: this.limits.count, maxBytes: this.limits.bytes });
    });
  }

  async close(): Promise<void> {
    this.pending.clear();
    await this.worker.terminate();
  }

  private settle(reply: Reply): void {
    const request = this.pending.get(reply.id);
    if (!request) return;
    this.pending.delete(reply.id);
    if (reply.error) {
      const error = new Error(`reading segments from ${this.dir}: ${reply.error.message}`) as Error & { code?: string };
      if (reply.error.code) error.code = reply.error.code;
      request.reject(error);
      return;
    }
    const files: Buffer[] = [];
    let offset = 0;
    for (const size of reply.sizes) {
      files.push(Buffer.from(reply.buffer, offset, size));
      offset += size;
    }
    request.resolve({ first: request.first, files });
  }

  private failAll(error: Error): void {
    for (const request of this.pending.values()) request.reject(error);
    this.pending.clear();
  }
}
