import { EventEmitter } from 'node:events';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { LitebaseError } from '../errors.js';
import { defaultPollMs, type LeaseHolder, type PrimaryView, type Role } from './election.js';
import { readHeartbeats, type Heartbeat } from './lease-store.js';
import {
  SHARED_STATE_BYTES,
  sendToKeeper,
  sharedState,
  startKeeper,
  type KeeperData,
  type KeeperEvent,
  type SharedState,
} from './lease-worker.js';

/**
 * This node's membership in the cluster: who is the Primary, and may this node write now.
 * docs/CLUSTER.md describes the protocol (election by exclusive create of `cluster/terms/<N>`, a
 * lease in `cluster/lease.json` renewed every third of its TTL, the clock assumption, fencing).
 *
 * ```ts
 * const member = await ClusterMember.start({ dataDir, nodeId, address, leaseTtlMs: 5000, logger });
 * member.on('role', (role, term) => ...);   // became 'primary', or stepped down to 'replica'/'candidate'
 * member.on('lease', (lease) => ...);       // the Primary changed: forward writes to lease.primaryAddress
 * if (!member.canWrite()) throw ...;        // before every append to a log: cheap and synchronous
 * member.stepDown('EEXIST on segment 42');  // the log showed another writer: stop at once
 * member.setDatabasePositions({ app: { position: '42' } }); // published in this node's heartbeat
 * await member.nodes();                     // every node's heartbeat, for GET /v1/cluster
 * await member.stop();                      // graceful: a Primary releases its lease for a fast handover
 * ```
 *
 * Roles: 'primary' holds an unexpired lease it renewed itself; 'replica' follows a live Primary
 * (`lease.primaryAddress`); 'candidate' sees no live Primary (the lease expired and the election
 * is under way, or this node was asked to step down): writes get a retryable error.
 *
 * The lease is kept by a worker thread (lease-worker.ts), so a long SQL statement on the main thread
 * does not let it expire. `canWrite()`, `role` and `term` read memory shared with that thread and
 * are current even while events are queued behind a busy main thread; `lease` and the events come
 * by message and may lag by as long as the main thread was busy. After start, `role` is known: the
 * first round of the election has run (on an empty folder this node may already be the Primary).
 *
 * `canWrite()` is the authority for writing. It is true only while this node is the Primary, no
 * step-down is pending and the write window of its last successful renewal is open: TTL - TTL/4
 * after the renewal started, by the process's monotonic clock. So after the process was stopped
 * (SIGSTOP) or the main thread blocked past that window it returns false at once, before any
 * event could tell. The log's exclusive create stays the fence behind it (docs/ARCHITECTURE.md §2.2): a write
 * that started inside the window but lands after another node took over fails with EEXIST, and the
 * engine then calls `stepDown`.
 */

export type { LeaseHolder, Role } from './election.js';

export interface ClusterMemberOptions {
  /** The shared folder (docs/ARCHITECTURE.md §3): cluster state lives in `<dataDir>/cluster`. */
  dataDir: string;
  /** Stable, unique per node: `[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}`. */
  nodeId: string;
  /** Where other nodes reach this one (private network), written into the lease and heartbeats. */
  address: string;
  /** Lease time to live. Default 5000 ms; at least 100. The Primary renews every third of it. */
  leaseTtlMs?: number;
  /** Heartbeat interval. Default 1000 ms. */
  heartbeatMs?: number;
  /**
   * How far node clocks may disagree (NTP keeps them far closer). A lease counts as expired only
   * this long after its expiry time. Default 500 ms.
   */
  clockSkewMs?: number;
  /** How often a non-Primary reads the cluster state. Default min(heartbeatMs, leaseTtlMs / 3). */
  pollMs?: number;
  /**
   * This process, as written into lease.json. Give it only while the process holds its local
   * folder's exclusive lock (src/storage/local-dir-lock.ts): then a lease left by an earlier,
   * crashed process of this node is taken over at once instead of waited out (docs/CLUSTER.md).
   */
  holder?: LeaseHolder;
  logger: Logger;
}

/** The current Primary as this node knows it. Names are undefined while there is no live Primary. */
export interface LeaseView {
  term: bigint;
  primaryNodeId: string | undefined;
  primaryAddress: string | undefined;
  /** Wall-clock ms; 0 when no lease was seen. */
  expiresAt: number;
}

/** One node's last heartbeat (`cluster/nodes/<nodeId>.json`). */
export type ClusterNode = Heartbeat;

export interface ClusterMemberEvents {
  /** This node became the Primary, or stopped being it, or moved between replica and candidate. */
  role: [role: Role, term: bigint];
  /** The Primary (term, node or address) changed. */
  lease: [lease: LeaseView];
}

const NODE_ID_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;
const RESTART_DELAY_MS = 1000;

interface Settings {
  dataDir: string;
  nodeId: string;
  address: string;
  leaseTtlMs: number;
  heartbeatMs: number;
  clockSkewMs: number;
  pollMs: number;
  holder?: LeaseHolder;
}

function invalid(message: string): LitebaseError {
  return new LitebaseError('CONFIG_INVALID', message);
}

function integerOption(name: string, value: number | undefined, fallback: number, min: number): number {
  const result = value ?? fallback;
  if (!Number.isSafeInteger(result) || result < min) throw invalid(`${name} must be an integer of at least ${min}, not ${String(value)}`);
  return result;
}

function settingsFrom(options: ClusterMemberOptions): Settings {
  if (!NODE_ID_PATTERN.test(options.nodeId))
    throw invalid(`node id ${JSON.stringify(options.nodeId)} must match ${NODE_ID_PATTERN.source}`);
  if (typeof options.address !== 'string' || options.address.length === 0) throw invalid('the node address must not be empty');
  const leaseTtlMs = integerOption('leaseTtlMs', options.leaseTtlMs, 5000, 100);
  const heartbeatMs = integerOption('heartbeatMs', options.heartbeatMs, 1000, 10);
  const clockSkewMs = integerOption('clockSkewMs', options.clockSkewMs, 500, 0);
  const pollMs = integerOption('pollMs', options.pollMs, defaultPollMs(leaseTtlMs, heartbeatMs), 10);
  return {
    dataDir: path.resolve(options.dataDir),
    nodeId: options.nodeId,
    address: options.address,
    leaseTtlMs,
    heartbeatMs,
    clockSkewMs,
    pollMs,
    ...(options.holder ? { holder: options.holder } : {}),
  };
}

/**
 * terminate() waits for the thread to reach JavaScript; a keeper inside a file call on a hung
 * file system (hard NFS mount) never does (docs/ARCHITECTURE.md §10). Wait a little, then go on without it.
 */
async function terminate(worker: Worker): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, 1000);
    timer.unref();
  });
  await Promise.race([
    worker.terminate().then(
      () => undefined,
      () => undefined,
    ),
    gaveUp,
  ]);
  clearTimeout(timer);
}

const NO_LEASE: LeaseView = { term: 0n, primaryNodeId: undefined, primaryAddress: undefined, expiresAt: 0 };

export class ClusterMember extends EventEmitter<ClusterMemberEvents> {
  private readonly buffer = new SharedArrayBuffer(SHARED_STATE_BYTES);
  private readonly shared: SharedState = sharedState(this.buffer);
  private worker: Worker | undefined;
  private currentLease: LeaseView = NO_LEASE;
  private announcedRole: Role = 'candidate';
  private databases: Record<string, { position: string }> = {};
  private state: 'running' | 'stopping' | 'stopped' = 'running';
  private stopping: Promise<void> | undefined;
  private stopWaiters: Array<() => void> = [];
  private restartTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly settings: Settings,
    private readonly logger: Logger,
  ) {
    super();
  }

  /** Start the keeper and run the first round of the election. */
  static async start(options: ClusterMemberOptions): Promise<ClusterMember> {
    const settings = settingsFrom(options);
    await mkdir(path.join(settings.dataDir, 'cluster', 'terms'), { recursive: true });
    await mkdir(path.join(settings.dataDir, 'cluster', 'nodes'), { recursive: true });
    const member = new ClusterMember(settings, options.logger.child({ component: 'cluster', nodeId: settings.nodeId }));
    await member.startKeeper();
    return member;
  }

  get nodeId(): string {
    return this.settings.nodeId;
  }

  get role(): Role {
    const role = this.shared.role();
    // A Primary whose write window closed (stopped process, stuck keeper) is about to step down.
    if (role === 'primary' && !this.shared.canWrite()) return 'candidate';
    return role;
  }

  /** The highest term this node has seen; while it is the Primary, the term it holds. */
  get term(): bigint {
    return this.shared.term();
  }

  get lease(): LeaseView {
    return this.currentLease;
  }

  canWrite(): boolean {
    return this.shared.canWrite();
  }

  /** The memory `canWrite()` reads, for threads that must check it themselves (the append worker). */
  get writeFence(): SharedArrayBuffer {
    return this.buffer;
  }

  /**
   * Stop being the Primary now (the log showed a higher term or another writer): canWrite() is
   * false when this returns, the lease is not renewed, and this node does not stand again for
   * 2 x TTL + clock skew (a full TTL after the others may), so another node wins the next term.
   */
  stepDown(reason: string): void {
    if (this.state !== 'running') return;
    const wasPrimary = this.canWrite();
    this.shared.requestStepDown();
    if (this.worker !== undefined) sendToKeeper(this.worker, { type: 'step-down', reason });
    if (wasPrimary) this.logger.warn({ reason, term: this.term.toString() }, 'stepping down');
    this.announce();
  }

  /** The engine's per-database positions, written into this node's heartbeat. */
  setDatabasePositions(positions: Record<string, { position: string }>): void {
    const copy: Record<string, { position: string }> = {};
    for (const [name, entry] of Object.entries(positions)) copy[name] = { position: String(entry.position) };
    this.databases = copy;
    if (this.worker !== undefined) sendToKeeper(this.worker, { type: 'databases', databases: copy });
  }

  /** Every node's last heartbeat, sorted by node id. */
  async nodes(): Promise<ClusterNode[]> {
    return readHeartbeats(this.settings.dataDir);
  }

  /**
   * Graceful stop: a Primary stops writing, then writes its lease expired (only if it still holds
   * it) so that another node wins the next term at once; a last heartbeat is written. Call it after
   * the engine stopped appending.
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown(true);
    return this.stopping;
  }

  /**
   * Stop at once without releasing the lease or writing anything: to the other nodes this looks
   * like a crash, and they take over once the lease expired. For tests, and for a fatal error.
   */
  async abandon(): Promise<void> {
    this.state = 'stopped';
    this.shared.requestStepDown();
    if (this.restartTimer !== undefined) clearTimeout(this.restartTimer);
    const worker = this.worker;
    this.worker = undefined;
    this.stopping ??= Promise.resolve();
    if (worker !== undefined) await terminate(worker);
  }

  private async shutdown(release: boolean): Promise<void> {
    this.state = 'stopping';
    if (this.restartTimer !== undefined) clearTimeout(this.restartTimer);
    const worker = this.worker;
    if (worker !== undefined) {
      await new Promise<void>((resolve) => {
        // A keeper stuck in a file call on a hung file system must not hold the stop forever.
        const timeout = setTimeout(resolve, Math.max(2000, 2 * this.settings.leaseTtlMs));
        timeout.unref();
        this.stopWaiters.push(() => {
          clearTimeout(timeout);
          resolve();
        });
        sendToKeeper(worker, { type: 'stop', release });
      });
      this.worker = undefined;
      await terminate(worker);
    }
    // Whatever the keeper managed to do, this node writes no more.
    this.shared.requestStepDown();
    this.state = 'stopped';
    this.announce();
  }

  private startKeeper(): Promise<void> {
    const data: KeeperData = { ...this.settings, shared: this.buffer };
    return new Promise((resolve, reject) => {
      let settled = false;
      const worker = startKeeper(data);
      this.worker = worker;
      worker.on('message', (event: KeeperEvent) => {
        this.onKeeperEvent(event);
        if (!settled && event.type === 'state') {
          settled = true;
          resolve();
        }
      });
      worker.on('error', (error) => {
        this.logger.error({ err: error }, 'the lease keeper failed');
        if (!settled) {
          settled = true;
          reject(new LitebaseError('CLUSTER_KEEPER_FAILED', `the lease keeper failed: ${error.message}`, { cause: error }));
        }
      });
      worker.on('exit', (code) => {
        this.onKeeperExit(worker, code);
        if (!settled) {
          settled = true;
          reject(new LitebaseError('CLUSTER_KEEPER_FAILED', `the lease keeper exited with code ${code} before it started`));
        }
      });
      if (Object.keys(this.databases).length > 0) sendToKeeper(worker, { type: 'databases', databases: this.databases });
    });
  }

  private onKeeperExit(worker: Worker, code: number): void {
    for (const waiter of this.stopWaiters.splice(0)) waiter();
    if (this.worker !== worker) return;
    this.worker = undefined;
    if (this.state !== 'running') return;
    // Unexpected: stop writing now, and start a new keeper that stands like any other node.
    this.shared.requestStepDown();
    this.logger.error({ code }, 'the lease keeper exited; starting a new one');
    this.announce();
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.state !== 'running') return;
      this.startKeeper().catch((error: unknown) => this.logger.error({ err: error }, 'could not restart the lease keeper'));
    }, RESTART_DELAY_MS);
    this.restartTimer.unref();
  }

  private onKeeperEvent(event: KeeperEvent): void {
    switch (event.type) {
      case 'log':
        this.logger[event.level](event.fields, event.msg);
        return;
      case 'stopped':
        for (const waiter of this.stopWaiters.splice(0)) waiter();
        return;
      case 'state':
        this.updateLease(event.term, event.primary);
        this.announce();
        return;
    }
  }

  private updateLease(term: bigint, primary: PrimaryView | undefined): void {
    const next: LeaseView =
      primary === undefined
        ? { term, primaryNodeId: undefined, primaryAddress: undefined, expiresAt: 0 }
        : { term: primary.term, primaryNodeId: primary.nodeId, primaryAddress: primary.address, expiresAt: primary.expiresAt };
    const previous = this.currentLease;
    this.currentLease = next;
    if (next.term !== previous.term || next.primaryNodeId !== previous.primaryNodeId || next.primaryAddress !== previous.primaryAddress) {
      this.emit('lease', next);
    }
  }

  /** Emit 'role' when the role read from shared memory differs from the last one announced. */
  private announce(): void {
    const role = this.role;
    if (role === this.announcedRole) return;
    this.announcedRole = role;
    this.emit('role', role, this.term);
  }
}
