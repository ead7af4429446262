import { describeBody, errorFromResponse, isRecord, LitebaseClientError } from './errors.js';
import { retryPolicy, type RetryOptions } from './retry.js';
import { LitebaseSession, POSITION_HEADER } from './session.js';
import type { BackupOptions, QueryOptions, TransactionOptions } from './options.js';
import type { Subtle } from './signing.js';
import { decodeQueryResponse, encodeStatements } from './statements.js';
import { LitebaseDatabase } from './database.js';
import { LitebaseTransaction } from './transaction.js';
import { Transport, type Answer, type SendOptions } from './transport.js';
import type {
  AccessKeyInfo,
  BackupResponse,
  ClusterStatus,
  DatabaseInfo,
  QueryResponse,
  QueryResponseJson,
  ReadyResponse,
  Statement,
  TransactionInfo,
  StatementsResponse,
} from './types.js';

/**
 * The TypeScript client of the Litebase HTTP API (docs/API.md), on fetch and Web Crypto alone: Node
 * 18+, browsers, Deno, Bun and edge runtimes.
 *
 * Values round-trip exactly: integers beyond ±2^53 come back as `bigint`, BLOBs as `Uint8Array`,
 * NULL as `null`. Positions are decimal strings: compare them with `BigInt()`.
 *
 * With several node URLs, requests go to the node that answered last and move on to the next
 * when a node cannot be reached or answers 503; 503 answers are retried after their Retry-After
 * (see `retry` and README "The TypeScript client" for what is never sent twice).
 */

export interface LitebaseClientOptions {
  /** Base URL of a node, e.g. `http://127.0.0.1:8080` (a path prefix is kept). */
  url?: string;
  /** Base URLs of several nodes, in order of preference: requests fail over from one to the next. */
  urls?: string[];
  /** Access key, sent as `Authorization: Bearer <key>` (or, with `sign`, used to sign). */
  key?: string;
  /**
   * Sign each request with `key` (HMAC-SHA256 over method, path, query, date and body; see
   * docs/SECURITY.md) instead of sending the key itself: a captured request cannot be altered or
   * sent again. The machine's clock must be within the server's skew window (default 5 min).
   */
  sign?: boolean;
  /** The key id to sign as; by default the id inside `lb_<id>_...`, else `root`. */
  keyId?: string;
  /** Web Crypto for signing; `globalThis.crypto.subtle` by default (Node 18: node:crypto's `webcrypto.subtle`). */
  subtle?: Subtle;
  /** A fetch implementation; the global one by default. */
  fetch?: typeof fetch;
  /** Per-try time limit in milliseconds (default 30 000; 0 turns it off). */
  timeoutMs?: number;
  /** How 503 answers and unreachable nodes are retried; `false` sends every request once. */
  retry?: RetryOptions | false;
}

const DEFAULT_TIMEOUT_MS = 30_000;

function nodeUrls(options: LitebaseClientOptions): string[] {
  const urls = [...(options.urls ?? []), ...(options.url === undefined ? [] : [options.url])];
  if (urls.length === 0) throw new LitebaseClientError('INVALID_OPTIONS', 'give the URL of at least one node (url or urls)');
  return [...new Set(urls.map(checkedUrl))];
}

function checkedUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    throw new LitebaseClientError('INVALID_URL', `not a URL: ${JSON.stringify(url)}`, { cause: error });
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new LitebaseClientError('INVALID_URL', `the URL must be http:// or https://, got ${url}`);
  }
  return url.replace(/\/+$/, '');
}

export function databasePath(name: string): string {
  return `/v1/databases/${encodeURIComponent(name)}`;
}

export class LitebaseClient {
  /** The first node's URL. */
  readonly url: string;
  /** Every node's URL, in order of preference. */
  readonly urls: readonly string[];
  private readonly transport: Transport;

  constructor(options: LitebaseClientOptions) {
    const urls = nodeUrls(options);
    this.urls = urls;
    this.url = urls[0] ?? '';
    const key = options.key === '' ? undefined : options.key;
    if (options.sign && key === undefined) throw new LitebaseClientError('INVALID_OPTIONS', 'signing requests needs a key');
    const fetchImpl = options.fetch ?? ((input: string | URL | Request, init?: RequestInit) => globalThis.fetch(input, init));
    this.transport = new Transport({
      nodes: urls,
      key,
      sign: options.sign && key !== undefined ? { key, keyId: options.keyId, subtle: options.subtle } : undefined,
      fetch: fetchImpl as typeof fetch,
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      retry: retryPolicy(options.retry),
    });
  }

  /** A handle on one database: execute, batch, transactions; with a session, read your writes. */
  database(name: string, options: { session?: LitebaseSession } = {}): LitebaseDatabase {
    return new LitebaseDatabase(this, name, options.session);
  }

  /** A new session (read your writes across nodes); `saved` is a former session's `toJSON()`. */
  session(saved?: Record<string, string>): LitebaseSession {
    return new LitebaseSession(saved);
  }

  // Databases

  async createDatabase(name: string): Promise<DatabaseInfo> {
    return this.createDatabaseRaw(name).then((body) => body.database);
  }

  /** `POST /v1/databases`, the answer as the server sent it. */
  async createDatabaseRaw(name: string): Promise<{ database: DatabaseInfo }> {
    return this.json<{ database: DatabaseInfo }>('POST', '/v1/databases', { body: { name } });
  }

  async listDatabases(): Promise<DatabaseInfo[]> {
    return this.listDatabasesRaw().then((body) => body.databases);
  }

  /** `GET /v1/databases`, the answer as the server sent it. */
  async listDatabasesRaw(): Promise<{ databases: DatabaseInfo[] }> {
    return this.json<{ databases: DatabaseInfo[] }>('GET', '/v1/databases');
  }

  async getDatabase(name: string): Promise<DatabaseInfo> {
    return this.getDatabaseRaw(name).then((body) => body.database);
  }

  /** `GET /v1/databases/:db`, the answer as the server sent it. */
  async getDatabaseRaw(name: string): Promise<{ database: DatabaseInfo }> {
    return this.json<{ database: DatabaseInfo }>('GET', databasePath(name));
  }

  async dropDatabase(name: string): Promise<void> {
    await this.transport.send('DELETE', databasePath(name));
  }

  /**
   * A consistent copy of the database as a SQLite file, streamed (never held in memory). The
   * client's `timeoutMs` covers the whole download: give 0 for large databases.
   */
  async backup(name: string, options: BackupOptions = {}): Promise<BackupResponse> {
    const minPosition = options.session ? options.session.minPosition(name, options.minPosition) : options.minPosition?.toString();
    const query = minPosition === undefined ? '' : `?minPosition=${encodeURIComponent(minPosition)}`;
    const path = `${databasePath(name)}/backup${query}`;
    const { response, url } = await this.transport.open('GET', path, {
      accept: 'application/vnd.sqlite3, application/json',
      idempotent: true,
    });
    if (response.body === null) {
      throw new LitebaseClientError('INVALID_RESPONSE', `GET ${path}: the answer has no body`, { status: response.status });
    }
    const position = response.headers.get(POSITION_HEADER) ?? '';
    if (!/^\d+$/.test(position)) {
      await response.body.cancel().catch(() => undefined);
      throw new LitebaseClientError('INVALID_RESPONSE', `GET ${url}: the answer has no ${POSITION_HEADER} header`, {
        status: response.status,
      });
    }
    options.session?.observe(name, position);
    const length = Number(response.headers.get('content-length') ?? Number.NaN);
    return { position, bytes: Number.isSafeInteger(length) ? length : undefined, body: response.body };
  }

  // Statement metrics

  /**
   * `GET /v1/databases/:db/statements`: the statements the node this client reaches ran on the
   * database, normalized, with counts, errors, latency quantiles and rows; with `scope: 'cluster'`,
   * every live node's, merged.
   */
  async statements(
    database: string,
    options: { limit?: number; order?: StatementsResponse['order']; scope?: StatementsResponse['scope'] } = {},
  ): Promise<StatementsResponse> {
    const query = new URLSearchParams();
    if (options.limit !== undefined) query.set('limit', String(options.limit));
    if (options.order !== undefined) query.set('order', options.order);
    if (options.scope !== undefined) query.set('scope', options.scope);
    const text = query.toString();
    const suffix = text === '' ? '' : `?${text}`;
    return this.json<StatementsResponse>('GET', `${databasePath(database)}/statements${suffix}`);
  }

  /** `DELETE /v1/databases/:db/statements`: start the node's counts for the database again. */
  async resetStatements(database: string): Promise<void> {
    await this.transport.send('DELETE', `${databasePath(database)}/statements`);
  }

  // Access keys

  /** `POST /v1/keys`: the answer holds the secret, shown this one time. */
  async createKey(input: { name: string; databases: string[]; actions: AccessKeyInfo['actions'] }): Promise<AccessKeyInfo> {
    return (await this.json<{ key: AccessKeyInfo }>('POST', '/v1/keys', { body: input })).key;
  }

  async listKeys(): Promise<AccessKeyInfo[]> {
    return (await this.json<{ keys: AccessKeyInfo[] }>('GET', '/v1/keys')).keys;
  }

  async revokeKey(id: string): Promise<void> {
    await this.transport.send('DELETE', `/v1/keys/${encodeURIComponent(id)}`);
  }

  // Queries

  /** Run statements; a string is one statement without params. Values come back decoded. */
  async query(database: string, statements: Statement[] | string, options: QueryOptions = {}): Promise<QueryResponse> {
    return decodeQueryResponse(await this.queryRaw(database, statements, options));
  }

  /** Like `query`, but the answer keeps the wire encoding of values, exactly as the server sent it. */
  async queryRaw(database: string, statements: Statement[] | string, options: QueryOptions = {}): Promise<QueryResponseJson> {
    const body: Record<string, unknown> = { statements: encodeStatements(statements) };
    if (options.mode !== undefined) body.mode = options.mode;
    const minPosition = options.session ? options.session.minPosition(database, options.minPosition) : options.minPosition?.toString();
    if (minPosition !== undefined) body.minPosition = minPosition;
    const answer = await this.json<QueryResponseJson>('POST', `${databasePath(database)}/query`, {
      body,
      ...(options.idempotent ? { idempotent: true } : {}),
    });
    options.session?.observe(database, answer.position);
    return answer;
  }

  /**
   * Open an interactive transaction. It holds the database's write lock until it is committed or
   * rolled back, or until `timeoutMs` passes and the server rolls it back on its own. Its
   * statements all go to the node that opened it.
   */
  async beginTransaction(database: string, options: TransactionOptions = {}): Promise<LitebaseTransaction> {
    const body = options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs };
    const answer = await this.transport.send('POST', `${databasePath(database)}/transactions`, { body });
    const { transaction } = jsonObject<{ transaction: TransactionInfo }>('POST', `${databasePath(database)}/transactions`, answer);
    return new LitebaseTransaction(this, database, transaction, answer.node, options.session);
  }

  // Node

  async health(): Promise<{ status: string }> {
    return this.json<{ status: string }>('GET', '/healthz');
  }

  /** Whether the node is ready to serve; a recovering node is not an error here. */
  async ready(): Promise<ReadyResponse> {
    const response = await this.transport.send('GET', '/readyz', { acceptStatuses: [503] });
    const status = isRecord(response.body) && typeof response.body.status === 'string' ? response.body.status : '';
    if (response.status === 503 && status === '') throw errorFromResponse(response, response.headers.get('retry-after'));
    return { ready: response.status === 200, status };
  }

  /** Prometheus text. */
  async metrics(): Promise<string> {
    return (await this.transport.send('GET', '/metrics')).text;
  }

  async cluster(): Promise<ClusterStatus> {
    return this.json<ClusterStatus>('GET', '/v1/cluster');
  }

  // Plumbing

  /** @internal A JSON request; GETs count as idempotent. Used by LitebaseTransaction. */
  async json<T>(method: string, path: string, options: SendOptions = {}): Promise<T> {
    const idempotent = options.idempotent ?? (method === 'GET' || method === 'HEAD');
    return jsonObject<T>(method, path, await this.transport.send(method, path, { ...options, idempotent }));
  }
}

function jsonObject<T>(method: string, path: string, answer: Answer): T {
  if (!isRecord(answer.body)) {
    throw new LitebaseClientError('INVALID_RESPONSE', `${method} ${path}: expected a JSON object, got ${describeBody(answer)}`, {
      status: answer.status,
    });
  }
  return answer.body as T;
}
