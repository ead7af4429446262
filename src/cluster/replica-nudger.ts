import type { Logger } from 'pino';

export interface NudgePeer {
  nodeId: string;
  /** Base URL the peer is reached at (its advertise address). */
  address: string;
  /** When the peer's process started: a restarted peer (perhaps configured otherwise) starts afresh. */
  startedAt?: number;
}

export interface ReplicaNudgerOptions {
  /**
   * Sends one nudge naming `databases` to the peer at `address`; resolves with whether the peer's
   * own watchers see those logs change (then nudges add nothing there), rejects when it was not taken.
   */
  send: (address: string, databases: string[]) => Promise<{ watching: boolean }>;
  logger: Logger;
  /** A peer that did not take a nudge is left alone this long (it may be down or restarting). */
  backoffMs?: number;
  /** After this many nudges in a row that a peer says it does not need... */
  redundantLimit?: number;
  /** ...it is left alone this long: its watchers work (a local file system), and nudges cost it CPU. */
  redundantPauseMs?: number;
}

interface PeerState {
  address: string;
  startedAt: number | undefined;
  inFlight: boolean;
  /** Databases that grew while a nudge to this peer was on its way: sent as one nudge after it. */
  waiting: Set<string>;
  quietUntil: number;
  redundantStreak: number;
}

/**
 * The Primary tells replicas over HTTP that a log grew (docs/ARCHITECTURE.md §6.1): on NFS a file watcher sees
 * only its own machine's changes, so without this a replica would learn of new segments only by
 * polling. It is a hint: a lost nudge costs a replica nothing but the wait for its watcher or its
 * next poll. At most one nudge per peer is on its way; what happens meanwhile goes in the next
 * one, so a burst of commits costs each peer one or two requests, not one per segment. A peer that
 * keeps answering that its watchers see the logs change (a local file system) is left alone for a
 * while and then tried again, so nudges cost CPU only where they help (NFS).
 */
export class ReplicaNudger {
  private readonly peers = new Map<string, PeerState>();
  private readonly backoffMs: number;
  private readonly redundantLimit: number;
  private readonly redundantPauseMs: number;

  constructor(private readonly options: ReplicaNudgerOptions) {
    this.backoffMs = options.backoffMs ?? 2000;
    this.redundantLimit = options.redundantLimit ?? 50;
    this.redundantPauseMs = options.redundantPauseMs ?? 10_000;
  }

  /** The nodes to nudge (every live node but this one); called as heartbeats are read. */
  setPeers(peers: readonly NudgePeer[]): void {
    const seen = new Set<string>();
    for (const { nodeId, address, startedAt } of peers) {
      seen.add(nodeId);
      const state = this.peers.get(nodeId);
      if (state && state.startedAt === startedAt) state.address = address;
      else this.peers.set(nodeId, { address, startedAt, inFlight: false, waiting: new Set(), quietUntil: 0, redundantStreak: 0 });
    }
    for (const nodeId of this.peers.keys()) if (!seen.has(nodeId)) this.peers.delete(nodeId);
  }

  /** `database`'s log grew. */
  nudge(database: string): void {
    const now = Date.now();
    for (const state of this.peers.values()) {
      if (state.quietUntil > now) continue;
      state.waiting.add(database);
      if (!state.inFlight) this.sendWaiting(state);
    }
  }

  private sendWaiting(state: PeerState): void {
    const databases = [...state.waiting];
    state.waiting.clear();
    state.inFlight = true;
    this.options.send(state.address, databases).then(
      ({ watching }) => {
        state.inFlight = false;
        state.redundantStreak = watching ? state.redundantStreak + 1 : 0;
        if (state.redundantStreak >= this.redundantLimit) {
          state.redundantStreak = 0;
          state.waiting.clear();
          state.quietUntil = Date.now() + this.redundantPauseMs;
          return;
        }
        if (state.waiting.size > 0) this.sendWaiting(state);
      },
      (error: unknown) => {
        state.inFlight = false;
        state.waiting.clear();
        state.quietUntil = Date.now() + this.backoffMs;
        this.options.logger.debug({ err: error, peer: state.address }, 'a replica did not take a nudge; it will poll');
      },
    );
  }
}
