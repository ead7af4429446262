import { startModuleWorker } from '../threads/worker-pool.js';
import type { WatchdogData } from './watchdog-thread.js';

/**
 * The last line of defence against anything that keeps the main thread from running: a statement
 * the write connection's deadline cannot stop (the statement-deadline extension was not built, see
 * src/engine/statement-deadline.ts), or a bug. The main thread bumps a counter in a
 * SharedArrayBuffer every `STAMP_MS`; a worker thread, which runs while the main thread is stuck,
 * ends the whole process with SIGKILL once the counter has not moved for `limitMs`. A supervisor
 * restarts the node; in a cluster another node takes the lease once it expires, exactly as after
 * `kill -9` (the local copy is only a cache of the log).
 *
 * A process stopped as a whole (SIGSTOP, a suspended VM) is not blocked: the worker notices its
 * own ticks were late too and starts counting again.
 *
 * The thread runs src/server/watchdog-thread.ts.
 */

const STAMP_MS = 100;

export interface Watchdog {
  stop(): void;
}

/** Start the watchdog: the process is killed when its event loop is blocked longer than `limitMs`. */
export function startWatchdog(limitMs: number): Watchdog {
  const buffer = new SharedArrayBuffer(4);
  const stamp = new Int32Array(buffer);
  const timer = setInterval(() => Atomics.add(stamp, 0, 1), STAMP_MS);
  timer.unref();
  const workerData: WatchdogData = { buffer, limitMs, tickMs: STAMP_MS };
  const worker = startModuleWorker(import.meta.url, './watchdog-thread.js', { workerData, name: 'event-loop-watchdog' });
  worker.unref();
  return {
    stop(): void {
      clearInterval(timer);
      void worker.terminate();
    },
  };
}
