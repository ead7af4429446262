import type { LitebaseSession } from './session.js';
import { decodeQueryResponse, encodeStatements } from './statements.js';
import type { SendOptions } from './transport.js';
import type { CommitResponse, Params, QueryResponse, QueryResponseJson, Statement, StatementResult, TransactionInfo } from './types.js';

/** What a transaction needs of the client: JSON requests. */
export interface JsonChannel {
  json<T>(method: string, path: string, options?: SendOptions): Promise<T>;
}

/**
 * An interactive transaction: statements run inside it until commit or rollback. It lives on the
 * Primary; every call goes to the node that opened it (which forwards to the Primary) and is
 * sent once: a transaction's statements are never retried.
 */
export class LitebaseTransaction {
  readonly id: string;
  /** When the server rolls the transaction back on its own (ISO 8601). */
  readonly expiresAt: string;

  constructor(
    private readonly client: JsonChannel,
    readonly database: string,
    info: TransactionInfo,
    /** The node that opened it. */
    readonly node?: string,
    private readonly session?: LitebaseSession,
  ) {
    this.id = info.id;
    this.expiresAt = info.expiresAt;
  }

  async query(statements: Statement[] | string): Promise<QueryResponse> {
    return decodeQueryResponse(await this.queryRaw(statements));
  }

  async queryRaw(statements: Statement[] | string): Promise<QueryResponseJson> {
    return this.client.json<QueryResponseJson>('POST', `${this.path}/query`, {
      body: { statements: encodeStatements(statements) },
      ...this.pinned,
    });
  }

  /** One statement; its result. */
  async execute(sql: string, params?: Params): Promise<StatementResult> {
    const [result] = (await this.query([params === undefined ? { sql } : { sql, params }])).results;
    return result as StatementResult;
  }

  /** Several statements in order; their results. */
  async batch(statements: Statement[]): Promise<StatementResult[]> {
    return (await this.query(statements)).results;
  }

  /** Make the transaction durable; answers with its log position. */
  async commit(): Promise<CommitResponse> {
    const answer = await this.client.json<CommitResponse>('POST', `${this.path}/commit`, this.pinned);
    this.session?.observe(this.database, answer.position);
    return answer;
  }

  async rollback(): Promise<void> {
    await this.client.json<Record<string, unknown>>('POST', `${this.path}/rollback`, this.pinned);
  }

  private get pinned(): { node?: string } {
    return this.node === undefined ? {} : { node: this.node };
  }

  private get path(): string {
    return `/v1/databases/${encodeURIComponent(this.database)}/transactions/${encodeURIComponent(this.id)}`;
  }
}
