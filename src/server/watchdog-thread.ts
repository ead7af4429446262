/**
 * The event-loop watchdog's thread (started by src/server/event-loop-watchdog.ts): runs while the
 * main thread is stuck, and kills the process once the main thread's counter has not moved for
 * `limitMs`.
 */
import { writeSync } from 'node:fs';
import { workerData } from 'node:worker_threads';

export interface WatchdogData {
  /** The main thread's counter: one Int32, bumped every `tickMs`. */
  buffer: SharedArrayBuffer;
  limitMs: number;
  tickMs: number;
}

const { buffer, limitMs, tickMs } = workerData as WatchdogData;
const stamp = new Int32Array(buffer);
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
    writeSync(
      2,
      `FATAL EVENT_LOOP_BLOCKED: the main thread did not run for ${Math.round(now - movedAt)} ms (limit ${limitMs} ms: ` +
        'statement timeout + LITEBASE_WATCHDOG_MS); killing the process so that it restarts and another node can take over\n',
    );
    process.kill(process.pid, 'SIGKILL');
  }
}, tickMs);
