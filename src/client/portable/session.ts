/**
 * Read-your-writes across nodes. Each database has its own log, so a session keeps, per database,
 * the highest log position any answer it saw reflected (a write's durable position, or the
 * position a read was served at). Requests made through the session ask the answering node to
 * have applied at least that position first (`minPosition` on /v1, the header
 * `x-litebase-min-position` elsewhere): a Replica waits until it has, so a read after a write sees
 * the write, and reads never go back in time, whichever node answers.
 *
 * A session is plain data: `toJSON()` gives the positions, `new LitebaseSession(saved)` takes
 * them back, e.g. to carry them in a cookie from one HTTP request of an app to the next.
 */

/** Answers carry the position they reflect in this header (Hrana, backups). */
export const POSITION_HEADER = 'x-litebase-position';
/** A request with this header waits until the node has applied that position. */
export const MIN_POSITION_HEADER = 'x-litebase-min-position';

const POSITION_FORMAT = /^\d{1,20}$/;

export type SessionPositions = Record<string, string>;

export class LitebaseSession {
  private readonly positions = new Map<string, bigint>();

  constructor(saved: SessionPositions = {}) {
    for (const [database, position] of Object.entries(saved)) this.observe(database, position);
  }

  /** The position requests to `database` must wait for, as a decimal string; undefined before any answer. */
  position(database: string): string | undefined {
    return this.positions.get(database)?.toString();
  }

  /** Remember a position an answer reflected; a lower one than known changes nothing. Malformed ones are ignored. */
  observe(database: string, position: string | bigint | null | undefined): void {
    if (position === null || position === undefined) return;
    const text = position.toString();
    if (!POSITION_FORMAT.test(text)) return;
    const value = BigInt(text);
    const known = this.positions.get(database);
    if (known === undefined || value > known) this.positions.set(database, value);
  }

  /** The higher of the session's position and `requested`, for a request's `minPosition`. */
  minPosition(database: string, requested?: string | bigint): string | undefined {
    const own = this.positions.get(database);
    const asked = requested === undefined ? undefined : BigInt(requested);
    if (own === undefined) return asked?.toString();
    return (asked !== undefined && asked > own ? asked : own).toString();
  }

  toJSON(): SessionPositions {
    return Object.fromEntries([...this.positions].map(([database, position]) => [database, position.toString()]));
  }
}
