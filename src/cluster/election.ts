/**
 * Election and lease decisions (docs/ARCHITECTURE.md §7, docs/CLUSTER.md), without I/O.
 *
 * Given what a node just read from the shared folder (the lease record, the highest term in
 * `cluster/terms`), its own state (the term it holds, if it is the Primary) and the time, `decide`
 * says what to do next: renew the lease, step down, follow the current Primary, or stand for the
 * next term. The lease keeper (lease-keeper-thread.ts) does the reading and writing.
 *
 * Two clocks are used, never mixed:
 * - `now`, the wall clock (ms since the epoch): lease expiry times are written by one node and
 *   judged by the others, so they must be wall-clock times. Node clocks are assumed to agree
 *   within `clockSkewMs` (NTP); see docs/CLUSTER.md.
 * - `localNow`, this node's monotonic clock (ms): a Primary judges how long its own lease still
 *   holds from its own earlier readings of that clock, so a wall-clock step on this node cannot
 *   stretch it.
 */

export type Role = 'primary' | 'replica' | 'candidate';

/** `cluster/lease.json`: who is the Primary and until when (wall clock). */
export interface LeaseRecord {
  term: bigint;
  nodeId: string;
  address: string;
  /** Wall-clock ms. Others may stand once their clock passes expiresAt + clockSkewMs. */
  expiresAt: number;
  renewedAt: number;
  /** Which process wrote it (absent in leases of older nodes): lets a restart prove it gone. */
  holder?: LeaseHolder;
}

/**
 * The process that holds (or held) a lease, as written into lease.json. A node that restarts after
 * a crash compares it with its own (docs/CLUSTER.md, "Instant restart"):
 * - `host`: the machine's identity (machine id and host name);
 * - `instance`: the id of the node's local folder, kept in the local folder's lock file;
 * - `life`: random per process start, so a process never mistakes its own lease for a dead one;
 * - `pid`, `boot`: for people reading the file (the kernel's boot id), not used in decisions.
 */
export interface LeaseHolder {
  host: string;
  instance: string;
  life: string;
  pid: number;
  boot: string;
}

/**
 * `cluster/terms/<term>`: the node that won a term. The content may be missing (read while being
 * written, or its writer died right after creating it): the fields are then undefined.
 */
export interface TermClaim {
  term: bigint;
  nodeId: string | undefined;
  address: string | undefined;
  createdAt: number | undefined;
}

export interface ElectionSettings {
  leaseTtlMs: number;
  /** How far node clocks may disagree. A lease counts as expired only this long after expiresAt. */
  clockSkewMs: number;
  /** How often a non-Primary reads the cluster state. */
  pollMs: number;
}

/** The term this node holds as Primary. */
export interface HeldLease {
  term: bigint;
  /** Monotonic ms at which the lease this node last wrote ends: cycle start + TTL. */
  leaseEndLocal: number;
}

/** What a node remembers between decisions. Start from `initialMemory()`. */
export interface ElectionMemory {
  /** The highest term ever seen, in cluster/terms or lease.json: never stand at or below it. */
  highestSeen: bigint;
  /**
   * The highest term seen without a lease.json of the same term (just won, or lease.json was
   * overwritten by a deposed Primary's late write) and since when (wall ms). Its holder is given
   * a full TTL from then before anyone stands against it.
   */
  unleased: { term: bigint; since: number } | undefined;
  /** After being asked to step down, do not stand again before this (wall ms). */
  holdOffUntil: number;
}

/** The Primary as this node sees it. `expiresAt` may be in the past. */
export interface PrimaryView {
  term: bigint;
  nodeId: string | undefined;
  address: string | undefined;
  expiresAt: number;
}

export interface DecisionInput {
  nodeId: string;
  settings: ElectionSettings;
  now: number;
  localNow: number;
  lease: LeaseRecord | undefined;
  highest: TermClaim | undefined;
  held: HeldLease | undefined;
  memory: ElectionMemory;
  /**
   * This process, when it holds the exclusive lock of its local folder (src/storage/local-dir-lock.ts):
   * the kernel released that lock when the lock's previous owner exited, so a lease written by
   * another life of this same node, host and local folder is proven to have no live holder.
   */
  self?: LeaseHolder;
}

export type Decision =
  /** Primary: write lease.json for `term` again. `repair`: it did not show this term. */
  | { action: 'renew'; term: bigint; repair: boolean }
  /** Primary: stop writing at once, do not renew. */
  | { action: 'step-down'; reason: string }
  /** Not Primary: look again by `checkAt` (wall ms) at the latest. */
  | { action: 'follow'; role: 'replica' | 'candidate'; checkAt: number }
  /**
   * Not Primary: try to create cluster/terms/<term> exclusively. `takeover`: the current lease has
   * not run out, but its holder is a previous life of this node, proven gone.
   */
  | { action: 'stand'; term: bigint; takeover?: boolean };

export interface DecisionResult {
  decision: Decision;
  memory: ElectionMemory;
  /** The holder of the highest term seen, undefined when no term exists yet. */
  primary: PrimaryView | undefined;
}

export function initialMemory(): ElectionMemory {
  return { highestSeen: 0n, unleased: undefined, holdOffUntil: 0 };
}

export function decide(input: DecisionInput): DecisionResult {
  const { nodeId, settings, now, lease, highest, held } = input;
  const ttl = settings.leaseTtlMs;

  // Never trust lease.json alone: the folder of terms is the record of who won what.
  let seen = input.memory.highestSeen;
  if (highest !== undefined && highest.term > seen) seen = highest.term;
  if (lease !== undefined && lease.term > seen) seen = lease.term;

  let primary: PrimaryView | undefined;
  let unleased: ElectionMemory['unleased'];
  if (seen > 0n) {
    if (lease !== undefined && lease.term === seen) {
      primary = { term: seen, nodeId: lease.nodeId, address: lease.address, expiresAt: lease.expiresAt };
    } else {
      const previous = input.memory.unleased;
      const since = previous !== undefined && previous.term === seen ? previous.since : now;
      const claim = highest !== undefined && highest.term === seen ? highest : undefined;
      const createdAt = claim !== undefined && claim.createdAt !== undefined ? claim.createdAt : since;
      primary = {
        term: seen,
        nodeId: claim === undefined ? undefined : claim.nodeId,
        address: claim === undefined ? undefined : claim.address,
        expiresAt: Math.max(createdAt, since) + ttl,
      };
      unleased = { term: seen, since };
    }
  }
  const memory: ElectionMemory = { highestSeen: seen, unleased, holdOffUntil: input.memory.holdOffUntil };

  if (held !== undefined) {
    if (seen > held.term) {
      const winner = primary !== undefined && primary.nodeId !== undefined ? primary.nodeId : 'another node';
      return { decision: { action: 'step-down', reason: `term ${seen} was won by ${winner}` }, memory, primary };
    }
    if (lease !== undefined && lease.term === held.term && lease.nodeId !== nodeId) {
      const reason = `lease.json shows term ${lease.term} held by ${lease.nodeId}`;
      return { decision: { action: 'step-down', reason }, memory, primary };
    }
    if (input.localNow >= held.leaseEndLocal) {
      const reason = `the lease of term ${held.term} ran out before it was renewed`;
      return { decision: { action: 'step-down', reason }, memory, primary };
    }
    // A lease.json of a lower term is a deposed Primary's late write: write ours over it.
    const repair = lease === undefined || lease.term !== held.term;
    return { decision: { action: 'renew', term: held.term, repair }, memory, primary };
  }

  if (primary !== undefined && now < primary.expiresAt + settings.clockSkewMs && now >= memory.holdOffUntil) {
    if (lease !== undefined && lease.term === seen && previousLifeGone(lease, nodeId, input.self)) {
      return { decision: { action: 'stand', term: seen + 1n, takeover: true }, memory, primary };
    }
  }
  if (primary !== undefined) {
    if (now < primary.expiresAt) {
      // Our own unexpired lease without holding it is a previous life of this node: wait it out.
      const role = primary.nodeId === undefined || primary.nodeId === nodeId ? 'candidate' : 'replica';
      return { decision: { action: 'follow', role, checkAt: primary.expiresAt + settings.clockSkewMs }, memory, primary };
    }
    if (now < primary.expiresAt + settings.clockSkewMs) {
      return { decision: { action: 'follow', role: 'candidate', checkAt: primary.expiresAt + settings.clockSkewMs }, memory, primary };
    }
  }
  if (now < memory.holdOffUntil) {
    return { decision: { action: 'follow', role: 'candidate', checkAt: memory.holdOffUntil }, memory, primary };
  }
  return { decision: { action: 'stand', term: seen + 1n }, memory, primary };
}

/**
 * Is the holder of `lease` a previous life of this very node that no longer runs? Only when this
 * process holds its local folder's lock (`self` given), the lease names this node id, the same
 * host and the same local folder, and another life: the previous life held that same lock while it
 * ran, and the kernel gave it to us only once that process had exited. Anything less (another host,
 * another local folder, an older lease without a holder, our own life) proves nothing.
 */
export function previousLifeGone(lease: LeaseRecord, nodeId: string, self: LeaseHolder | undefined): boolean {
  const holder = lease.holder;
  if (self === undefined || holder === undefined || lease.nodeId !== nodeId) return false;
  return holder.host === self.host && holder.instance === self.instance && holder.life !== self.life;
}

/**
 * How long after the start of a successful renewal (or win) the Primary may accept writes: the
 * TTL less a safety margin of a quarter of it. The margin covers a write that starts just before
 * the window closes; the log's exclusive create is the fence behind it (docs/ARCHITECTURE.md §2.2).
 */
export function canWriteWindowMs(leaseTtlMs: number): number {
  return leaseTtlMs - Math.floor(leaseTtlMs / 4);
}

/** The Primary renews every third of the TTL. */
export function renewIntervalMs(leaseTtlMs: number): number {
  return Math.max(1, Math.floor(leaseTtlMs / 3));
}

/**
 * A renewal (or the first lease write after a win) counts only if it finished before the lease it
 * extends ran out, by this node's monotonic clock. A write that lands later may have landed after
 * another node saw the old lease expired and stood: the writer must step down instead.
 */
export function renewalAccepted(doneLocal: number, previousLeaseEndLocal: number): boolean {
  return doneLocal < previousLeaseEndLocal;
}

/** A small random delay so that candidates racing for a term do not move in lockstep. */
export function backoffMs(settings: ElectionSettings, random: number): number {
  const spread = Math.max(10, Math.min(250, Math.floor(settings.leaseTtlMs / 10)));
  return Math.floor(Math.min(Math.max(random, 0), 1) * spread);
}

/** The default polling interval of a non-Primary: often enough to notice a new Primary quickly. */
export function defaultPollMs(leaseTtlMs: number, heartbeatMs: number): number {
  return Math.max(10, Math.min(heartbeatMs, Math.floor(leaseTtlMs / 3)));
}
