/**
 * A read process's orphan guard (started by src/engine/read-sandbox-child.ts): kills the process
 * when the node is gone or the statement running there is far past its time. The node kills its
 * read processes itself, but not if the node died meanwhile, and a statement stuck in SQLite would
 * never see the IPC channel close. Runs on a thread, since the main thread may be inside SQLite.
 */
import { workerData } from 'node:worker_threads';

export interface OrphanGuardData {
  /** One Float64: the wall-clock ms past which the running statement is far too late; 0 when idle. */
  buffer: SharedArrayBuffer;
  /** The node's process id: once the read process has another parent, the node is gone. */
  parent: number;
}

const { buffer, parent } = workerData as OrphanGuardData;
const deadline = new Float64Array(buffer);

setInterval(() => {
  const until = deadline[0] ?? 0;
  if (process.ppid !== parent || (until > 0 && Date.now() > until)) process.kill(process.pid, 'SIGKILL');
}, 500);
