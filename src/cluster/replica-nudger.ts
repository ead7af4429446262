import type { Logger } from 'pino';

export interface NudgePeer {
  nodeId: string;
  /** Base URL the peer is reached at (its advertise address). */
  address: string;
}

export interface ReplicaNudgerOptions {
  /** Sends one nudge naming `databases` to the peer at `address`; rejects when it was not taken. */
  send: (address: string, databases: string[]) => Promise<void>;
  logger: Logger;
  /** A peer that did not take a nudge is left alone this long (it may be down or restarting). */
  backoffMs?: number;
}

interface PeerState {
  address: string;
  inFlight: boolean;
  /** Databases that grew while a nudge to this peer was on its way: sent as one nudge after it. */
  waiting: Set<string>;
  quietUntil: number;
}

/**
 * The Primary tells replicas over HTTP that a log grew (DESIGN.md §6): on NFS a file watcher sees
 * only its own machine's changes, so without this a replica would learn of new segments only by
 * polling. It is a hint: a lost nudge costs a replica nothing but the wait for its watcher or its
 * next poll. At most one nudge per peer is on its way; what happens meanwhile goes in the next
 * one, so a burst of commits costs each peer one or two requests, not one per segment.
 */
export class ReplicaNudger {
  private readonly peers = new Map<string, PeerState>();
  private readonly backoffMs: number;

  constructor(private readonly options: ReplicaNudgerOptions) {
    this.backoffMs = options.backoffMs ?? 2000;
  }

  /** The nodes to nudge (every live node but this one); called as heartbeats are read. */
  setPeers(peers: readonly NudgePeer[]): void {
    const seen = new Set<string>();
    for (const { nodeId, address } of peers) {
      seen.add(nodeId);
      const state = this.peers.get(nodeId);
      if (state) state.address = address;
      else this.peers.set(nodeId, { address, inFlight: false, waiting: new Set(), quietUntil: 0 });
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
      () => {
        state.inFlight = false;
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
