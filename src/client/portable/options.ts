import type { LitebaseSession } from './session.js';
import type { QueryMode } from './types.js';

/** Options of the client's calls (kept apart from the client so the database and transaction handles need not import it). */

export interface QueryOptions {
  /** `transaction` (default): all statements commit together or not at all. */
  mode?: QueryMode;
  /** Wait until the answering node has applied this position (read your writes). */
  minPosition?: string | bigint;
  /** Read your writes across nodes: wait for the session's position, and remember this answer's. */
  session?: LitebaseSession;
  /**
   * Running the statements twice does no harm (reads, upserts): then a try whose outcome is
   * unknown (a timeout, a cut connection, PRIMARY_CHANGED) is retried too.
   */
  idempotent?: boolean;
}

export interface BackupOptions {
  /** Wait until the answering node has applied this position (a Replica answers from its own copy). */
  minPosition?: string | bigint;
  session?: LitebaseSession;
}

export interface TransactionOptions {
  /** The server rolls the transaction back after this long (its default is 5 s, its maximum 60 s). */
  timeoutMs?: number;
  /** The commit's position is remembered in this session. */
  session?: LitebaseSession;
}
