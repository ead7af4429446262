import type { MessagePort } from 'node:worker_threads';
import { Worker } from 'node:worker_threads';
import {
  backoffMs,
  canWriteWindowMs,
  decide,
  electionSource,
  initialMemory,
  renewalAccepted,
  renewIntervalMs,
  type ElectionMemory,
  type ElectionSettings,
  type HeldLease,
  type PrimaryView,
  type Role,
} from './election.js';
import { LeaseStore, leaseStoreSource, type PathModule, type SyncFs } from './lease-store.js';

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
 * The worker's code is `runKeeper` below plus the functions of election.ts and lease-store.ts,
 * joined as source text (Function.prototype.toString) and started with `eval: true`, so it runs
 * from the compiled build and from the TypeScript sources under the test runner alike. Hence
 * `runKeeper` is self-contained: everything it uses comes in through its `env` argument.
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
 * write window of its last renewal. Self-contained (no imports, no module values): the append
 * worker embeds its source text and checks it right before linking a segment, so a process that
 * was paused while a segment was queued cannot append it after it resumes.
 */
export function writeFenceOpen(buffer: SharedArrayBuffer): boolean {
  const ints = new Int32Array(buffer, 0, 4);
  const bigs = new BigInt64Array(buffer, 16, 2);
  return Atomics.load(ints, 0) === 2 && Atomics.load(ints, 1) === Atomics.load(ints, 2) && process.hrtime.bigint() < Atomics.load(bigs, 1);
}

export interface KeeperEnv {
  port: Pick<MessagePort, 'postMessage' | 'on'>;
  data: KeeperData;
  fs: SyncFs;
  path: PathModule;
  lib: {
    decide: typeof decide;
    initialMemory: typeof initialMemory;
    canWriteWindowMs: typeof canWriteWindowMs;
    renewIntervalMs: typeof renewIntervalMs;
    renewalAccepted: typeof renewalAccepted;
    backoffMs: typeof backoffMs;
    sharedState: typeof sharedState;
    LeaseStore: typeof LeaseStore;
  };
}

/** The keeper's main function, run in the worker thread. Self-contained: see the header. */
export function runKeeper(env: KeeperEnv): void {
  const { port, data, lib } = env;
  const { nodeId, address } = data;
  const ttl = data.leaseTtlMs;
  const settings: ElectionSettings = { leaseTtlMs: ttl, clockSkewMs: data.clockSkewMs, pollMs: data.pollMs };
  const shared = lib.sharedState(data.shared);
  const store = new lib.LeaseStore(data.dataDir, env.fs, env.path);
  const monoMs = (): number => Number(process.hrtime.bigint()) / 1e6;
  const nanoseconds = (ms: number): bigint => BigInt(Math.floor(ms * 1e6));
  const describe = (error: unknown): string => (error instanceof Error ? error.message : String(error));
  const jitter = (): number => lib.backoffMs(settings, Math.random());

  let held: HeldLease | undefined;
  let memory: ElectionMemory = lib.initialMemory();
  let role: Role = 'candidate';
  let primary: PrimaryView | undefined;
  let databases: Record<string, { position: string }> = {};
  let stepDownReason: string | undefined;
  let stopping = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let readFailing = false;
  let heartbeatFailing = false;
  let heartbeatRole: Role | undefined;
  // Tells a restart of this node from a long-lived one (the Primary's nudger starts afresh).
  const startedAt = Date.now();

  // A keeper starts holding nothing; step-down requests made before it started are moot.
  shared.setRole('candidate');
  shared.setValidUntilNs(0n);
  shared.acknowledge(shared.requested());

  function log(level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
    port.postMessage({ type: 'log', level, msg, fields });
  }

  function publish(reason?: string): void {
    port.postMessage({ type: 'state', role, term: held === undefined ? memory.highestSeen : held.term, primary, reason });
  }

  /** Views of an expired lease name nobody: there is no Primary to send writes to. */
  function liveView(view: PrimaryView | undefined, now: number): PrimaryView | undefined {
    if (view === undefined || now < view.expiresAt) return view;
    return { term: view.term, nodeId: undefined, address: undefined, expiresAt: view.expiresAt };
  }

  function setRole(next: Role): void {
    if (next !== 'primary') {
      shared.setRole(next);
      shared.setValidUntilNs(0n);
    }
    role = next;
  }

  function loseLease(reason: string): void {
    if (held === undefined && role !== 'primary') return;
    const term = held === undefined ? undefined : held.term.toString();
    held = undefined;
    setRole('candidate');
    log('warn', 'stepped down', { term, reason });
    publish(reason);
  }

  function handleStepDownRequest(): void {
    const requested = shared.requested();
    if (requested === shared.acknowledged()) return;
    const reason = stepDownReason ?? 'the engine asked';
    stepDownReason = undefined;
    // Let the others win the next term: this node's lease runs out within a TTL, then the others
    // may stand after the skew allowance; this node waits one TTL more before it stands itself.
    memory = { ...memory, holdOffUntil: Date.now() + 2 * ttl + settings.clockSkewMs };
    if (held !== undefined) loseLease(`asked to step down: ${reason}`);
    shared.acknowledge(requested);
  }

  /** Write lease.json for the held term; this node may write only if it landed in time. */
  function writeLease(term: bigint, now: number, local: number, repair: boolean): number {
    const previousEnd = held === undefined ? local : held.leaseEndLocal;
    if (repair) log('warn', "lease.json did not show this node's term; writing it again", { term: term.toString() });
    try {
      store.writeLease({ term, nodeId, address, expiresAt: now + ttl, renewedAt: now });
    } catch (error) {
      loseLease(`lease renewal failed: ${describe(error)}`);
      return settings.pollMs;
    }
    const done = monoMs();
    if (!lib.renewalAccepted(done, previousEnd)) {
      loseLease(`the lease write of term ${term} finished ${Math.round(done - previousEnd)} ms after the lease ran out`);
      return 0;
    }
    if (shared.requested() !== shared.acknowledged()) {
      handleStepDownRequest();
      return 0;
    }
    held = { term, leaseEndLocal: local + ttl };
    shared.setTerm(term);
    shared.setValidUntilNs(nanoseconds(local + lib.canWriteWindowMs(ttl)));
    if (role !== 'primary') {
      shared.setRole('primary');
      role = 'primary';
      log('info', 'became primary', { term: term.toString() });
    }
    primary = { term, nodeId, address, expiresAt: now + ttl };
    return Math.max(0, local + lib.renewIntervalMs(ttl) - done);
  }

  function stand(term: bigint): number {
    setRole('candidate');
    const now = Date.now();
    const local = monoMs();
    let won: boolean;
    try {
      won = store.claimTerm(term, { nodeId, address, createdAt: now });
    } catch (error) {
      log('warn', 'could not stand for a term', { term: term.toString(), error: describe(error) });
      return settings.pollMs + jitter();
    }
    if (term > memory.highestSeen) memory = { ...memory, highestSeen: term };
    shared.setTerm(memory.highestSeen);
    if (!won) {
      log('debug', 'another node won the term', { term: term.toString() });
      return 1 + jitter();
    }
    log('info', 'won the term', { term: term.toString() });
    held = { term, leaseEndLocal: local + ttl };
    return writeLease(term, now, local, false);
  }

  function step(): number {
    handleStepDownRequest();
    const now = Date.now();
    const local = monoMs();
    let lease;
    let highest;
    try {
      lease = store.readLease();
      highest = store.highestTerm();
    } catch (error) {
      if (!readFailing) log('warn', 'cannot read the cluster state', { error: describe(error) });
      readFailing = true;
      if (held !== undefined) loseLease(`cannot read the cluster state: ${describe(error)}`);
      return settings.pollMs;
    }
    if (readFailing) log('info', 'the cluster state is readable again');
    readFailing = false;

    const result = lib.decide({ nodeId, settings, now, localNow: local, lease, highest, held, memory });
    memory = result.memory;
    const decision = result.decision;
    // While this node may write, the shared term stays the one it holds: a higher term is
    // published only once it stepped down.
    switch (decision.action) {
      case 'renew':
        return writeLease(decision.term, now, local, decision.repair);
      case 'step-down':
        loseLease(decision.reason);
        shared.setTerm(memory.highestSeen);
        primary = liveView(result.primary, now);
        return 0;
      case 'follow':
        setRole(decision.role);
        shared.setTerm(memory.highestSeen);
        primary = liveView(result.primary, now);
        return Math.min(settings.pollMs, Math.max(0, decision.checkAt - now) + jitter());
      case 'stand':
        shared.setTerm(memory.highestSeen);
        primary = liveView(result.primary, now);
        return stand(decision.term);
    }
  }

  function tick(): void {
    timer = undefined;
    if (stopping) return;
    let delay = settings.pollMs;
    try {
      delay = step();
    } catch (error) {
      log('error', 'lease keeper step failed', { error: describe(error) });
      loseLease(`lease keeper step failed: ${describe(error)}`);
    }
    publish();
    // Others see a change of role at once, not at the next heartbeat.
    if (role !== heartbeatRole) writeHeartbeat();
    schedule(delay);
  }

  function schedule(delayMs: number): void {
    if (stopping) return;
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(tick, Math.max(0, Math.ceil(delayMs)));
  }

  function writeHeartbeat(): void {
    heartbeatRole = role;
    try {
      store.writeHeartbeat({
        nodeId,
        address,
        role,
        term: (held === undefined ? memory.highestSeen : held.term).toString(),
        lastHeartbeat: Date.now(),
        startedAt,
        databases,
      });
      if (heartbeatFailing) log('info', 'heartbeats are written again');
      heartbeatFailing = false;
    } catch (error) {
      if (!heartbeatFailing) log('warn', 'cannot write the heartbeat', { error: describe(error) });
      heartbeatFailing = true;
    }
  }

  const heartbeatTimer = setInterval(() => {
    if (!stopping) writeHeartbeat();
  }, data.heartbeatMs);

  function stop(release: boolean): void {
    stopping = true;
    if (timer !== undefined) clearTimeout(timer);
    clearInterval(heartbeatTimer);
    if (held !== undefined) {
      // Release only a lease this node still holds by its own clock: nobody else can have won.
      const stillHeld = release && shared.canWrite();
      const term = held.term;
      held = undefined;
      setRole('replica');
      if (stillHeld) {
        try {
          const lease = store.readLease();
          if (lease !== undefined && lease.term === term && lease.nodeId === nodeId) {
            store.writeLease({ term, nodeId, address, expiresAt: 0, renewedAt: Date.now() });
            log('info', 'released the lease', { term: term.toString() });
          }
        } catch (error) {
          log('warn', 'could not release the lease', { term: term.toString(), error: describe(error) });
        }
      }
    }
    setRole('replica');
    writeHeartbeat();
    publish('stopped');
    port.postMessage({ type: 'stopped' });
  }

  port.on('message', (command: KeeperCommand) => {
    if (command.type === 'databases') {
      databases = command.databases;
    } else if (command.type === 'step-down') {
      stepDownReason = command.reason;
      if (stopping) return;
      handleStepDownRequest();
      publish();
    } else if (command.type === 'stop') {
      if (!stopping) stop(command.release);
    }
  });

  try {
    store.ensureLayout();
  } catch (error) {
    log('warn', 'cannot create the cluster folders', { error: describe(error) });
  }
  tick();
}

let source: string | undefined;

/** The worker's program: the embedded functions, then a call of runKeeper. */
export function keeperSource(): string {
  source ??= [
    "'use strict';",
    "const { parentPort, workerData } = require('node:worker_threads');",
    "const fs = require('node:fs');",
    "const path = require('node:path');",
    electionSource(),
    leaseStoreSource(),
    writeFenceOpen.toString(),
    sharedState.toString(),
    runKeeper.toString(),
    'runKeeper({ port: parentPort, data: workerData, fs, path, lib: { decide, initialMemory, canWriteWindowMs, ' +
      'renewIntervalMs, renewalAccepted, backoffMs, sharedState, LeaseStore } });',
  ].join('\n\n');
  return source;
}

/** Start a keeper thread. The caller owns it: listen to 'message' (KeeperEvent), 'error', 'exit'. */
export function startKeeper(data: KeeperData): Worker {
  const worker = new Worker(keeperSource(), { eval: true, workerData: data, name: `lease-keeper-${data.nodeId}` });
  worker.unref();
  return worker;
}

/** Send a command to a keeper (typed). */
export function sendToKeeper(worker: Worker, command: KeeperCommand): void {
  worker.postMessage(command);
}
