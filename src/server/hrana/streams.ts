import { randomBytes } from 'node:crypto';

/**
 * Hrana streams over HTTP and their batons (HTTP_V2_SPEC.md): a stream lives between requests on
 * the node that opened it, and each answer hands the client a new baton for the next request.
 *
 * A baton is `<node>.<token>`: the node part (base64url of the node id) says where the stream
 * lives, so another node can forward the request there; the token is 128 random bits kept in this
 * table, replaced on every answer and deleted when used. A baton therefore cannot be forged, and
 * cannot be used twice (a second request with the same baton, even concurrent, finds nothing).
 */

/** A transaction open on a stream: a write transaction holds the Primary's write lock (an engine interactive transaction). */
export type StreamTransaction =
  | { kind: 'write'; id: string }
  /** `deferred`: a BEGIN DEFERRED a Replica runs as reads until it writes (session.ts). */
  | { kind: 'read'; deferred?: boolean };

export interface HranaStream {
  readonly database: string;
  /** The access key that opened it: no other key may continue it. */
  readonly keyId: string;
  readonly sqls: Map<number, string>;
  transaction: StreamTransaction | undefined;
  closed: boolean;
}

/** Why a baton was refused: an HTTP error (the stream is not valid any more). */
export class BatonError extends Error {
  constructor(
    readonly code: 'STREAM_EXPIRED' | 'BATON_INVALID',
    message: string,
  ) {
    super(message);
    this.name = 'BatonError';
  }
}

interface Entry {
  stream: HranaStream;
  timer: NodeJS.Timeout;
}

/** How many recently expired batons are remembered, to answer STREAM_EXPIRED instead of BATON_INVALID. */
const EXPIRED_REMEMBERED = 1000;

export class StreamTable {
  private readonly waiting = new Map<string, Entry>();
  private readonly expired = new Set<string>();
  private readonly nodeTag: string;

  constructor(
    nodeId: string,
    private readonly idleMs: number,
    /** A stream was idle too long: roll back what it holds. */
    private readonly onExpired: (stream: HranaStream) => void,
  ) {
    this.nodeTag = Buffer.from(nodeId).toString('base64url');
  }

  /** Streams waiting for their next request (not counting those running one). */
  get size(): number {
    return this.waiting.size;
  }

  open(database: string, keyId: string): HranaStream {
    return { database, keyId, sqls: new Map(), transaction: undefined, closed: false };
  }

  /** True when the baton names a stream of this node (false: it lives elsewhere, or is garbage). */
  isLocal(baton: string): boolean {
    return baton.startsWith(`${this.nodeTag}.`);
  }

  /** The node a baton says its stream lives on (undefined for a baton of no recognisable shape). */
  nodeOf(baton: string): string | undefined {
    const dot = baton.indexOf('.');
    if (dot <= 0) return undefined;
    const node = Buffer.from(baton.slice(0, dot), 'base64url').toString();
    return node.length > 0 ? node : undefined;
  }

  /** Take the stream a baton names, for one request: the baton is used up. */
  take(baton: string, database: string, keyId: string): HranaStream {
    const token = baton.slice(this.nodeTag.length + 1);
    const entry = this.isLocal(baton) ? this.waiting.get(token) : undefined;
    if (!entry) {
      if (this.expired.has(token))
        throw new BatonError('STREAM_EXPIRED', 'the stream was closed after 10 s without a request, and its transaction rolled back');
      throw new BatonError(
        'BATON_INVALID',
        'the baton is not valid: it was already used, its stream was closed, or it was never issued here',
      );
    }
    if (entry.stream.database !== database || entry.stream.keyId !== keyId) {
      throw new BatonError('BATON_INVALID', 'the baton belongs to another database or another access key');
    }
    this.waiting.delete(token);
    clearTimeout(entry.timer);
    return entry.stream;
  }

  /** The request is answered: park the stream under a new baton and start its idle timer. */
  park(stream: HranaStream): string {
    const token = randomBytes(16).toString('base64url');
    const timer = setTimeout(() => {
      if (this.waiting.get(token)?.stream !== stream) return;
      this.waiting.delete(token);
      this.expired.add(token);
      if (this.expired.size > EXPIRED_REMEMBERED) this.expired.delete(this.expired.values().next().value as string);
      stream.closed = true;
      this.onExpired(stream);
    }, this.idleMs);
    timer.unref();
    this.waiting.set(token, { stream, timer });
    return `${this.nodeTag}.${token}`;
  }

  /** Close every parked stream (the node stops). */
  closeAll(): void {
    for (const [token, entry] of this.waiting) {
      clearTimeout(entry.timer);
      this.waiting.delete(token);
      entry.stream.closed = true;
      this.onExpired(entry.stream);
    }
  }
}
