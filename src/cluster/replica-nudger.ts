import type { Logger } from 'pino';
import type { NudgeEntry } from '../format/nudge-codec.js';

export interface NudgePeer {
  nodeId: string;
  /** Base URL the peer is reached at (its advertise address). */
  address: string;
  /** When the peer's process started: a restarted peer (perhaps configured otherwise) starts afresh. */
  startedAt?: number;
}

export interface ReplicaNudgerOptions {
  /**
   * Sends one nudge naming the databases of `entries`, with the segments each carries, to the peer
   * at `address`; resolves with whether the peer's own watchers see those logs change (then nudges
   * add nothing there), rejects when it was not taken.
   */
  send: (address: string, entries: NudgeEntry[]) => Promise<{ watching: boolean }>;
  /** Nudges carry the new segments (default true); without, a replica reads them from the log. */
  carrySegments?: boolean;
  /**
   * Most segment bytes waiting for one peer per database (default 4 MiB): past it they are dropped
   * and the nudge only says that the log grew (the peer reads the log).
   */
  maxSegmentBytes?: number;
  logger: Logger;
  /** A peer that did not take a nudge is left alone this long (it may be down or restarting). */
  backoffMs?: number;
  /** After this many nudges in a row that a peer says it does not need... */
  redundantLimit?: number;
  /** ...it is left alone this long: its watchers work (a local file system), and nudges cost it CPU. */
  redundantPauseMs?: number;
}

/** What waits for one peer about one database: the segments made durable since its last nudge. */
interface Waiting {
  segments: Buffer[];
  bytes: number;
  /** Some were dropped (too many bytes, or made while the peer was quiet): send none, the peer reads the log. */
  dropped: boolean;
}

interface PeerState {
  address: string;
  startedAt: number | undefined;
  inFlight: boolean;
  /** Databases that grew while a nudge to this peer was on its way: sent as one nudge after it. */
  waiting: Map<string, Waiting>;
  quietUntil: number;
  redundantStreak: number;
}

/**
 * The Primary tells replicas over HTTP that a log grew (docs/ARCHITECTURE.md §6.1): on NFS a file watcher sees
 * only its own machine's changes, so without this a replica would learn of new segments only by
 * polling. A nudge also carries the new segments themselves (src/format/nudge-codec.ts): on a
 * distributed file system reading a file another client appends to costs round trips, and a
 * replica that verifies and applies the carried bytes under the log's fence need not read them.
 * It is a hint: a lost nudge costs a replica nothing but the wait for its watcher or its
 * next poll, and then a read of the log. At most one nudge per peer is on its way; what happens meanwhile goes in the next
 * one, so a burst of commits costs each peer one or two requests, not one per segment. A peer that
 * keeps answering that its watchers see the logs change (a local file system) is left alone for a
 * while and then tried again, so nudges cost CPU only where they help (NFS).
 */
export class ReplicaNudger {
  private readonly peers = new Map<string, PeerState>();
  private readonly backoffMs: number;
  private readonly redundantLimit: number;
  private readonly redundantPauseMs: number;
  private readonly maxSegmentBytes: number;

  constructor(private readonly options: ReplicaNudgerOptions) {
    this.backoffMs = options.backoffMs ?? 2000;
    this.redundantLimit = options.redundantLimit ?? 50;
    this.redundantPauseMs = options.redundantPauseMs ?? 10_000;
    this.maxSegmentBytes = options.maxSegmentBytes ?? 4 * 1024 * 1024;
  }

  /** True when some peer would be sent segments now (so the Primary keeps copies of what it encodes). */
  wantsSegments(): boolean {
    if (this.options.carrySegments === false) return false;
    const now = Date.now();
    for (const state of this.peers.values()) if (state.quietUntil <= now) return true;
    return false;
  }

  /** The nodes to nudge (every live node but this one); called as heartbeats are read. */
  setPeers(peers: readonly NudgePeer[]): void {
    const seen = new Set<string>();
    for (const { nodeId, address, startedAt } of peers) {
      seen.add(nodeId);
      const state = this.peers.get(nodeId);
      if (state && state.startedAt === startedAt) state.address = address;
      else this.peers.set(nodeId, { address, startedAt, inFlight: false, waiting: new Map(), quietUntil: 0, redundantStreak: 0 });
    }
    for (const nodeId of this.peers.keys()) if (!seen.has(nodeId)) this.peers.delete(nodeId);
  }

  /**
   * `database`'s log grew by `segments` (in position order, right after those of the last call), or
   * by segments not given (`undefined`: a large one, or copies were not kept).
   */
  nudge(database: string, segments?: readonly Buffer[]): void {
    const now = Date.now();
    for (const state of this.peers.values()) {
      if (state.quietUntil > now) continue;
      let waiting = state.waiting.get(database);
      if (!waiting) {
        waiting = { segments: [], bytes: 0, dropped: false };
        state.waiting.set(database, waiting);
      }
      this.addSegments(waiting, segments);
      if (!state.inFlight) this.sendWaiting(state);
    }
  }

  /**
   * The segments a peer is sent must follow one another with no gap, from right after those it was
   * sent last: once one is missing (not given, too many bytes), none is sent until the next nudge.
   */
  private addSegments(waiting: Waiting, segments: readonly Buffer[] | undefined): void {
    if (waiting.dropped) return;
    if (segments === undefined || this.options.carrySegments === false) {
      this.drop(waiting);
      return;
    }
    for (const segment of segments) {
      if (waiting.bytes + segment.length > this.maxSegmentBytes) {
        this.drop(waiting);
        return;
      }
      waiting.segments.push(segment);
      waiting.bytes += segment.length;
    }
  }

  private drop(waiting: Waiting): void {
    waiting.dropped = true;
    waiting.segments = [];
    waiting.bytes = 0;
  }

  private sendWaiting(state: PeerState): void {
    const entries: NudgeEntry[] = [...state.waiting].map(([database, waiting]) => ({ database, segments: waiting.segments }));
    state.waiting.clear();
    state.inFlight = true;
    this.options.send(state.address, entries).then(
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
