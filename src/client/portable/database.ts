import type { QueryOptions, TransactionOptions } from './options.js';
import type { LitebaseSession } from './session.js';
import type { LitebaseTransaction } from './transaction.js';
import type { Params, QueryMode, QueryResponse, Statement, StatementResult } from './types.js';

export interface ExecuteOptions {
  /** Running it twice does no harm: retried even when a try's outcome is unknown. */
  idempotent?: boolean;
}

export interface BatchOptions extends ExecuteOptions {
  /** `transaction` (default): all statements commit together or not at all; `independent`: one by one. */
  mode?: QueryMode;
}

/** What a database handle needs of the client. */
export interface DatabaseChannel {
  query(database: string, statements: Statement[] | string, options?: QueryOptions): Promise<QueryResponse>;
  beginTransaction(database: string, options?: TransactionOptions): Promise<LitebaseTransaction>;
}

/**
 * One database of a client. With a session, every answer's position is remembered and every
 * request waits for it, on whichever node answers (read your writes).
 */
export class LitebaseDatabase {
  constructor(
    private readonly client: DatabaseChannel,
    readonly name: string,
    readonly session?: LitebaseSession,
  ) {}

  /** One statement; its result. */
  async execute(sql: string, params?: Params, options: ExecuteOptions = {}): Promise<StatementResult> {
    const [result] = (await this.query([params === undefined ? { sql } : { sql, params }], options)).results;
    return result as StatementResult;
  }

  /** Several statements in one request; their results, in order. */
  async batch(statements: Statement[], options: BatchOptions = {}): Promise<StatementResult[]> {
    return (await this.query(statements, options)).results;
  }

  /** The whole answer, with the position and the node. */
  async query(statements: Statement[] | string, options: Omit<QueryOptions, 'session'> = {}): Promise<QueryResponse> {
    return this.client.query(this.name, statements, { ...options, ...(this.session ? { session: this.session } : {}) });
  }

  /** Open an interactive transaction; commit or roll it back yourself. */
  async begin(options: Omit<TransactionOptions, 'session'> = {}): Promise<LitebaseTransaction> {
    return this.client.beginTransaction(this.name, { ...options, ...(this.session ? { session: this.session } : {}) });
  }

  /**
   * Run `work` in an interactive transaction: committed when it resolves, rolled back when it
   * throws (and the error thrown on). `work` is not run again on failure.
   */
  async transaction<T>(
    work: (transaction: LitebaseTransaction) => Promise<T>,
    options: Omit<TransactionOptions, 'session'> = {},
  ): Promise<T> {
    const transaction = await this.begin(options);
    let result: T;
    try {
      result = await work(transaction);
    } catch (error) {
      // The server rolls it back at its timeout anyway; an error here must not hide the first.
      await transaction.rollback().catch(() => undefined);
      throw error;
    }
    await transaction.commit();
    return result;
  }
}
