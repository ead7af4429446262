import type { Worker } from 'node:worker_threads';
import { startModuleWorker } from '../threads/worker-pool.js';
import type { LeaseHolder, PrimaryView, Role } from './election.js';

/**
 * The lease keeper: one worker thread per ClusterMember that reads the cluster state, stands for
 * terms, renews the lease while this node is the Primary and writes its heartbeat. It runs on its
 * own thread because a SQL statement on the main thread can block the event loop for seconds
 * (docs/ARCHITECTURE.md §10), and a lease that waits for the event loop would expire under a long query. Its
 * file calls are synchronous so they do not queue behind the main thread's work in libuv's shared
 * thread pool either.
 *
 * The keeper and the main thread share a small SharedArrayBuffer (`sharedState`): role, term, the
 * monotonic time until which this node may write, and a step-down request counter. `canWrite()`
 * on the main thread reads it with Atomics and the monotonic clock, so it is right at once after
 * the main thread was blocked or the whole process was stopped (SIGSTOP): the write window is a
 * deadline, not a flag someone has to clear.
 *
 * The thread runs src/cluster/lease-keeper-thread.ts; this file is the main thread's side of it.
 */

export interface KeeperData {
  dataDir: string;
  nodeId: string;
  address: string;
  leaseTtlMs: number;
  clockSkewMs: number;
  heartbeatMs: number;
  pollMs: number;
  shared: SharedArrayBuffer;
  /** This process, written into lease.json; given only when it holds its local folder's lock. */
  holder?: LeaseHolder;
}

/** Main thread to keeper. */
export type KeeperCommand =
  | { type: 'databases'; databases: Record<string, { position: string }> }
  | { type: 'step-down'; reason: string }
  | { type: 'stop'; release: boolean };

/** Keeper to main thread. */
export type KeeperEvent =
  | { type: 'state'; role: Role; term: bigint; primary: PrimaryView | undefined; reason: string | undefined }
  | { type: 'log'; level: 'debug' | 'info' | 'warn' | 'error'; msg: string; fields: Record<string, unknown> }
  | { type: 'stopped' };

export interface SharedState {
  role(): Role;
  setRole(role: Role): void;
  term(): bigint;
  setTerm(term: bigint): void;
  /** process.hrtime.bigint() deadline of the write window; 0 when there is none. */
  validUntilNs(): bigint;
  setValidUntilNs(deadline: bigint): void;
  /** Step-down requests made by the main thread, and how many of them the keeper has handled. */
  requested(): number;
  requestStepDown(): void;
  acknowledged(): number;
  acknowledge(count: number): void;
  /** Primary, no step-down pending, and the write window still open by the monotonic clock. */
  canWrite(): boolean;
}

export const SHARED_STATE_BYTES = 32;

/**
 * Views over the shared buffer. Ints: [0] role (0 candidate, 1 replica, 2 primary), [1] step-down
 * requests, [2] requests handled. BigInts: [0] term, [1] write deadline (ns, monotonic).
 * Only the main thread writes [1] of the ints; the keeper writes everything else.
 */
export function sharedState(buffer: SharedArrayBuffer): SharedState {
  const ints = new Int32Array(buffer, 0, 4);
  const bigs = new BigInt64Array(buffer, 16, 2);
  const roles: Role[] = ['candidate', 'replica', 'primary'];
  return {
    role: () => roles[Atomics.load(ints, 0)] ?? 'candidate',
    setRole: (role) => {
      Atomics.store(ints, 0, roles.indexOf(role));
    },
    term: () => Atomics.load(bigs, 0),
    setTerm: (term) => {
      Atomics.store(bigs, 0, term);
    },
    validUntilNs: () => Atomics.load(bigs, 1),
    setValidUntilNs: (deadline) => {
      Atomics.store(bigs, 1, deadline);
    },
    requested: () => Atomics.load(ints, 1),
    requestStepDown: () => {
      Atomics.add(ints, 1, 1);
    },
    acknowledged: () => Atomics.load(ints, 2),
    acknowledge: (count) => {
      Atomics.store(ints, 2, count);
    },
    canWrite: () => writeFenceOpen(buffer),
  };
}

/**
 * May the node that owns `buffer` write the log now: Primary, no step-down pending, and inside the
 * write window of its last renewal. The append thread (src/log/append-thread.ts) checks it right
 * before linking a segment, so a process that was paused while a segment was queued cannot append
 * it after it resumes.
 */
export function writeFenceOpen(buffer: SharedArrayBuffer): boolean {
  const ints = new Int32Array(buffer, 0, 4);
  const bigs = new BigInt64Array(buffer, 16, 2);
  return Atomics.load(ints, 0) === 2 && Atomics.load(ints, 1) === Atomics.load(ints, 2) && process.hrtime.bigint() < Atomics.load(bigs, 1);
}

/** Start a keeper thread. The caller owns it: listen to 'message' (KeeperEvent), 'error', 'exit'. */
export function startKeeper(data: KeeperData): Worker {
  const worker = startModuleWorker(import.meta.url, './lease-keeper-thread.js', { workerData: data, name: `lease-keeper-${data.nodeId}` });
  worker.unref();
  return worker;
}

/** Send a command to a keeper (typed). */
export function sendToKeeper(worker: Worker, command: KeeperCommand): void {
  worker.postMessage(command);
}
