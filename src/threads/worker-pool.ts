import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker, type Transferable } from 'node:worker_threads';

/**
 * A worker thread running the module `relative` to `callerUrl` (the caller's import.meta.url):
 * the compiled module next to the caller's. Under the test runner, which runs the TypeScript
 * sources, the .ts file, loaded through tsx (a dev dependency) by a small bootstrap.
 */
export function startModuleWorker(callerUrl: string, relative: string): Worker {
  if (!callerUrl.endsWith('.ts')) return new Worker(new URL(relative, callerUrl));
  const tsx = pathToFileURL(createRequire(callerUrl).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
  const source = new URL(relative.replace(/\.js$/, '.ts'), callerUrl).href;
  const bootstrap = `import { register } from ${JSON.stringify(tsx)}; register(); await import(${JSON.stringify(source)});`;
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(bootstrap)}`));
}

/** What every request and reply of a pool carries: the id that pairs them. */
export interface PoolMessage {
  id: number;
}

/**
 * A few threads running one module, shared by the whole process: requests go to them in turn and
 * each reply settles its request's promise. A thread is started on first use (or by `startAll`),
 * holds the process open only while it has a request to answer, and is started afresh after it
 * died (its requests fail with the reason).
 */
export class WorkerPool<Request extends PoolMessage, Reply extends PoolMessage> {
  private readonly workers: Array<Worker | undefined> = [];
  private readonly pending = new Map<number, { worker: Worker; resolve: (reply: Reply) => void; reject: (error: Error) => void }>();
  private nextId = 1;
  private turn = 0;

  constructor(
    private readonly callerUrl: string,
    private readonly module: string,
    readonly size: number,
  ) {}

  request(message: Omit<Request, 'id'>, transfer: readonly Transferable[] = []): Promise<Reply> {
    const worker = this.worker(this.turn++ % this.size);
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      this.pending.set(id, { worker, resolve, reject });
      worker.ref();
      worker.postMessage({ ...message, id }, [...transfer]);
    });
  }

  startAll(): void {
    for (let slot = 0; slot < this.size; slot++) this.worker(slot);
  }

  private worker(slot: number): Worker {
    const existing = this.workers[slot];
    if (existing) return existing;
    const worker = startModuleWorker(this.callerUrl, this.module);
    worker.on('message', (reply: Reply) => this.settle(reply));
    worker.on('error', (error) => this.lost(slot, worker, error));
    worker.on('exit', (code) => this.lost(slot, worker, new Error(`worker ${this.module} exited with code ${code}`)));
    // After the listeners: adding a 'message' listener refs the worker's port again.
    worker.unref();
    this.workers[slot] = worker;
    return worker;
  }

  private settle(reply: Reply): void {
    const request = this.pending.get(reply.id);
    if (!request) return;
    this.pending.delete(reply.id);
    if (![...this.pending.values()].some((other) => other.worker === request.worker)) request.worker.unref();
    request.resolve(reply);
  }

  private lost(slot: number, worker: Worker, error: Error): void {
    if (this.workers[slot] !== worker) return;
    this.workers[slot] = undefined;
    for (const [id, request] of this.pending) {
      if (request.worker !== worker) continue;
      this.pending.delete(id);
      request.reject(error);
    }
  }
}
