import { Worker } from 'node:worker_threads';

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
 */

const STAMP_MS = 100;

export interface Watchdog {
  stop(): void;
}

/** The worker's code, as text (`eval: true`): it runs from the build and the TypeScript sources alike. */
const WATCHDOG_SOURCE = `
const { workerData } = require('node:worker_threads');
const { writeSync } = require('node:fs');
const stamp = new Int32Array(workerData.buffer);
const { limitMs, tickMs } = workerData;
let seen = Atomics.load(stamp, 0);
let movedAt = performance.now();
let lastTick = movedAt;
setInterval(() => {
  const now = performance.now();
  // The whole process was paused: the main thread had no chance to stamp.
  if (now - lastTick > tickMs + 1000) movedAt = now;
  lastTick = now;
  const current = Atomics.load(stamp, 0);
  if (current !== seen) {
    seen = current;
    movedAt = now;
    return;
  }
  if (now - movedAt > limitMs) {
    writeSync(2, 'FATAL EVENT_LOOP_BLOCKED: the main thread did not run for ' + Math.round(now - movedAt) +
      ' ms (limit ' + limitMs + ' ms: statement timeout + LITEBASE_WATCHDOG_MS); killing the process so that it restarts and another node can take over\\n');
    process.kill(process.pid, 'SIGKILL');
  }
}, tickMs);
`;

/** Start the watchdog: the process is killed when its event loop is blocked longer than `limitMs`. */
export function startWatchdog(limitMs: number): Watchdog {
  const buffer = new SharedArrayBuffer(4);
  const stamp = new Int32Array(buffer);
  const timer = setInterval(() => Atomics.add(stamp, 0, 1), STAMP_MS);
  timer.unref();
  const worker = new Worker(WATCHDOG_SOURCE, { eval: true, workerData: { buffer, limitMs, tickMs: STAMP_MS }, name: 'event-loop-watchdog' });
  worker.unref();
  return {
    stop(): void {
      clearInterval(timer);
      void worker.terminate();
    },
  };
}
