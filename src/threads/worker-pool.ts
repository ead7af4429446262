import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker, type Transferable, type WorkerOptions } from 'node:worker_threads';

/**
 * What a thread is started with: `workerData` (read by the module from node:worker_threads) and a
 * `name` (shown in the thread's title and in diagnostics).
 */
export type ModuleWorkerOptions = Pick<WorkerOptions, 'name' | 'workerData'>;

/**
 * A worker thread running the module `relative` to `callerUrl` (the caller's import.meta.url):
 * the compiled module next to the caller's. Under the test runner, which runs the TypeScript
 * sources, the .ts file, loaded through tsx (a dev dependency) by a small bootstrap. Either way
 * the thread runs a real module file, so its stack traces name that file.
 */
export function startModuleWorker(callerUrl: string, relative: string, options: ModuleWorkerOptions = {}): Worker {
  if (!callerUrl.endsWith('.ts')) return new Worker(new URL(relative, callerUrl), options);
  const tsx = pathToFileURL(
    createRequire(callerUrl)
      .resolve('tsx/esm/api')
      .replace(/\.cjs$/, '.mjs'),
  ).href;
  const source = new URL(relative.replace(/\.js$/, '.ts'), callerUrl).href;
  const bootstrap = `import { register } from ${JSON.stringify(tsx)}; register(); await import(${JSON.stringify(source)});`;
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(bootstrap)}`), options);
}

/** What every request and reply of a pool carries: the id that pairs them. */
export interface PoolMessage {
  id: number;
}

/** A request without its id (the pool adds it), for each member of a union of requests. */
export type WithoutId<Message> = Message extends PoolMessage ? Omit<Message, 'id'> : never;

export interface RequestOptions {
  /** Moved to the thread instead of copied (they become unusable here). */
  transfer?: readonly Transferable[];
  /**
   * Requests with the same key always go to the same thread, which answers them in the order they
   * were sent (a log writer's appends, one restore's hashing); without one they take turns.
   */
  affinity?: string;
}

/** The slot of an affinity key: a stable hash of the key, so one key always gets the same thread. */
export function affinitySlot(key: string, size: number): number {
  let hash = 0;
  for (let i = 0; i < key.length; i++) hash = (hash * 31 + key.charCodeAt(i)) >>> 0;
  return hash % size;
}

/**
 * A few threads running one module, shared by the whole process: requests go to them in turn (or,
 * with an affinity key, always to the same one) and each reply settles its request's promise. A
 * thread is started on first use (or by `startAll`), holds the process open only while it has a
 * request to answer, and is started afresh after it died (its requests fail with the reason).
 */
export class WorkerPool<Request extends PoolMessage, Reply extends PoolMessage> {
  private readonly workers: Array<Worker | undefined> = [];
  private readonly pending = new Map<number, { worker: Worker; resolve: (reply: Reply) => void; reject: (error: Error) => void }>();
  private nextId = 1;
  private turn = 0;
  /** Per idle thread, the timer that stops it (pools with `idleStopMs`). */
  private readonly idleTimers = new Map<Worker, NodeJS.Timeout>();

  /**
   * `name`: the threads' name (their title, diagnostics). `idleStopMs`: a thread without a request
   * for this long is stopped (a pool used in bursts, such as a restore's, gives back the ~15 MiB
   * each thread holds); the next request starts one again.
   */
  constructor(
    private readonly callerUrl: string,
    private readonly module: string,
    readonly size: number,
    private readonly name?: string,
    private readonly idleStopMs?: number,
  ) {}

  /** Send a request to a thread; resolves with its reply, rejects when the thread died meanwhile. */
  request(message: WithoutId<Request>, options: RequestOptions = {}): Promise<Reply> {
    const slot = options.affinity === undefined ? this.turn++ % this.size : affinitySlot(options.affinity, this.size);
    const worker = this.worker(slot);
    this.stopTimer(worker);
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      this.pending.set(id, { worker, resolve, reject });
      worker.ref();
      worker.postMessage({ ...message, id }, [...(options.transfer ?? [])]);
    });
  }

  startAll(): void {
    for (let slot = 0; slot < this.size; slot++) {
      const worker = this.worker(slot);
      if (!this.busy(worker)) this.stopWhenIdle(slot, worker);
    }
  }

  /**
   * Stop the threads that have no request to answer (a pool used in bursts, such as a checkpoint
   * load, gives their memory back); the next request starts a thread again.
   */
  async stopIdle(): Promise<void> {
    const stopping: Array<Promise<number>> = [];
    this.workers.forEach((worker, slot) => {
      if (!worker || this.busy(worker)) return;
      this.workers[slot] = undefined;
      this.stopTimer(worker);
      stopping.push(worker.terminate());
    });
    await Promise.all(stopping);
  }

  private worker(slot: number): Worker {
    const existing = this.workers[slot];
    if (existing) return existing;
    const worker = startModuleWorker(this.callerUrl, this.module, this.name === undefined ? {} : { name: this.name });
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
    if (!this.busy(request.worker)) {
      request.worker.unref();
      const slot = this.workers.indexOf(request.worker);
      if (slot !== -1) this.stopWhenIdle(slot, request.worker);
    }
    request.resolve(reply);
  }

  private busy(worker: Worker): boolean {
    for (const request of this.pending.values()) if (request.worker === worker) return true;
    return false;
  }

  private stopWhenIdle(slot: number, worker: Worker): void {
    if (this.idleStopMs === undefined) return;
    this.stopTimer(worker);
    const timer = setTimeout(() => {
      this.idleTimers.delete(worker);
      if (this.workers[slot] !== worker || this.busy(worker)) return;
      this.workers[slot] = undefined;
      void worker.terminate();
    }, this.idleStopMs);
    timer.unref();
    this.idleTimers.set(worker, timer);
  }

  private stopTimer(worker: Worker): void {
    const timer = this.idleTimers.get(worker);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.idleTimers.delete(worker);
  }

  private lost(slot: number, worker: Worker, error: Error): void {
    this.stopTimer(worker);
    if (this.workers[slot] !== worker) return;
    this.workers[slot] = undefined;
    for (const [id, request] of this.pending) {
      if (request.worker !== worker) continue;
      this.pending.delete(id);
      request.reject(error);
    }
  }
}
