import type { ClientErrorCode, WireErrorCode } from '../error-codes.js';
import { fromJsonValue, toJsonValue, type JsonSqlValue, type SqlValue } from '../sql/values.js';
import { signatureHeaders } from './signing.js';
import { fetchTrustingCa } from './tls.js';

/**
 * The TypeScript client of the Litebase HTTP API (docs/API.md).
 *
 * Values round-trip exactly: integers beyond ±2^53 come back as `bigint`, BLOBs as `Buffer`
 * (a `Uint8Array`), NULL as `null`. Positions are decimal strings: compare them with `BigInt()`.
 *
 * The client retries nothing. A 503 answer carries `retryAfter` (seconds) on the thrown
 * `LitebaseClientError`; whether a write may be sent again is for the caller to decide, because
 * only the caller knows whether the statement is idempotent.
 */

/** A value a statement can be bound to. Booleans bind as 1 and 0. */
export type SqlParam = SqlValue | boolean;

export interface Statement {
  sql: string;
  /** Positional (`?`) or named (`:name`, `@name`, `$name`; give the name without its prefix). */
  params?: SqlParam[] | Record<string, SqlParam>;
}

export type QueryMode = 'transaction' | 'independent';

export interface QueryOptions {
  /** `transaction` (default): all statements commit together or not at all. */
  mode?: QueryMode;
  /** Wait until the answering node has applied this position (read your writes). */
  minPosition?: string | bigint;
}

export interface StatementResult {
  columns: string[];
  rows: SqlValue[][];
  rowsAffected: number;
  lastInsertRowid: bigint | number | null;
}

export interface QueryResponse {
  results: StatementResult[];
  /** The log position this answer reflects (a write's durable position). */
  position: string;
  node: string;
  role: string;
}

/** The wire form of a statement result, values still JSON-encoded (docs/API.md "Values"). */
export interface StatementResultJson {
  columns: string[];
  rows: JsonSqlValue[][];
  rowsAffected: number;
  lastInsertRowid: JsonSqlValue;
}

/** The wire form of a query answer, exactly as the server sent it. */
export interface QueryResponseJson {
  results: StatementResultJson[];
  position: string;
  node: string;
  role: string;
}

export interface DatabaseInfo {
  name: string;
  id: string;
  createdAt: string;
  /** The database's latest durable position. */
  position: string;
  pageSize?: number;
  checksum?: string;
  [detail: string]: unknown;
}

/** An access key as the server lists it (never with its secret, except once at creation). */
export interface AccessKeyInfo {
  id: string;
  name: string;
  createdAt: string;
  revokedAt: string | null;
  databases: string[];
  actions: Array<'read' | 'write' | 'admin' | 'restore' | 'cluster'>;
  secret?: string;
}

export interface TransactionInfo {
  id: string;
  expiresAt: string;
}

export interface CommitResponse {
  position: string;
  node?: string;
}

export interface ReadyResponse {
  /** false while the node is still recovering its databases (the server answers 503). */
  ready: boolean;
  status: string;
}

/** One node in `GET /v1/cluster`. */
export interface ClusterNodeStatus {
  nodeId: string;
  /** Where the other nodes reach it (`--advertise-address`). */
  address: string;
  role: string;
  term?: string;
  /** ISO 8601. */
  lastHeartbeat: string;
  /** Whether its heartbeat is recent (within the lease time to live, at least 3 s). */
  alive: boolean;
  /** Applied position per database, and how many positions it is behind the Primary (null: unknown). */
  databases: Record<string, { position: string; lag: number | null; error?: { position: string; code: string; message: string; at: string } }>;
  [detail: string]: unknown;
}

/** `GET /v1/cluster`: the term, the Primary, and every node. */
export interface ClusterStatus {
  term: string;
  primary: { nodeId: string; address: string } | null;
  nodes: ClusterNodeStatus[];
  [detail: string]: unknown;
}

export interface BackupOptions {
  /** Wait until the answering node has applied this position (a Replica answers from its own copy). */
  minPosition?: string | bigint;
}

/** `GET /v1/databases/:db/backup`: a SQLite file, streamed. */
export interface BackupResponse {
  /** The log position the file holds exactly (a decimal string). */
  position: string;
  /** The file's size in bytes, when the server sent it. */
  bytes: number | undefined;
  /** The file's bytes; read it to the end or cancel it. */
  body: ReadableStream<Uint8Array>;
}

export interface LitebaseClientOptions {
  /** Base URL of any node, e.g. `http://127.0.0.1:8080` (a path prefix is kept). */
  url: string;
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
  /** PEM CA certificate(s) to trust for https:// URLs instead of the system CAs. Ignored with `fetch`. */
  ca?: string | Buffer;
  /** A fetch implementation; the global one by default. */
  fetch?: typeof fetch;
  /** Per-request time limit in milliseconds (default 30 000; 0 turns it off). */
  timeoutMs?: number;
}

/**
 * An error answer from the server (`{"error":{"code","message",...}}`), or a failure on the way
 * there. Client-side failures have `status` 0 and one of these codes:
 * `CONNECTION_FAILED` (the node could not be reached), `TIMEOUT` (no answer within `timeoutMs`),
 * `INVALID_RESPONSE` (the answer was not the API's JSON), `INVALID_VALUE` (a param cannot be
 * encoded, e.g. NaN), `INVALID_URL`.
 */
export class LitebaseClientError extends Error {
  readonly code: ClientErrorCode;
  /** The HTTP status, or 0 when no answer came from the server. */
  readonly status: number;
  /** Everything in the error body besides code and message, e.g. `statement` (its index). */
  readonly details: Record<string, unknown>;
  /** Seconds to wait before trying again, from `Retry-After` (sent with 503). */
  readonly retryAfter: number | undefined;

  constructor(
    code: ClientErrorCode,
    message: string,
    options: { status?: number; details?: Record<string, unknown>; retryAfter?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LitebaseClientError';
    this.code = code;
    this.status = options.status ?? 0;
    this.details = options.details ?? {};
    this.retryAfter = options.retryAfter;
  }
}

const DEFAULT_TIMEOUT_MS = 30_000;

interface RequestOptions {
  body?: unknown;
  /** Statuses whose JSON body is a normal answer rather than an error (e.g. 503 from /readyz). */
  acceptStatuses?: number[];
  /** The Accept header; JSON by default. */
  accept?: string;
}

interface RawResponse {
  status: number;
  body: unknown;
  text: string;
  contentType: string;
}

export class LitebaseClient {
  readonly url: string;
  private readonly key: string | undefined;
  private readonly sign: { key: string; keyId: string | undefined } | undefined;
  private readonly fetchImpl: typeof fetch;
  /** For answers read as a stream (backups): the CA fetch otherwise reads an answer whole first. */
  private readonly streamingFetch: typeof fetch;
  private readonly timeoutMs: number;

  constructor(options: LitebaseClientOptions) {
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch (error) {
      throw new LitebaseClientError('INVALID_URL', `not a URL: ${JSON.stringify(options.url)}`, { cause: error });
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new LitebaseClientError('INVALID_URL', `the URL must be http:// or https://, got ${options.url}`);
    }
    this.url = options.url.replace(/\/+$/, '');
    this.key = options.key === '' ? undefined : options.key;
    if (options.sign && this.key === undefined) throw new LitebaseClientError('INVALID_OPTIONS', 'signing requests needs a key');
    this.sign = options.sign && this.key !== undefined ? { key: this.key, keyId: options.keyId } : undefined;
    this.fetchImpl = options.fetch ?? (options.ca !== undefined ? fetchTrustingCa(options.ca) : globalThis.fetch);
    this.streamingFetch = options.fetch ?? (options.ca !== undefined ? fetchTrustingCa(options.ca, { stream: true }) : globalThis.fetch);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
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
    await this.request('DELETE', databasePath(name));
  }

  /**
   * A consistent copy of the database as a SQLite file, streamed (never held in memory). The
   * client's `timeoutMs` covers the whole download: give 0 for large databases.
   */
  async backup(name: string, options: BackupOptions = {}): Promise<BackupResponse> {
    const query = options.minPosition === undefined ? '' : `?minPosition=${encodeURIComponent(options.minPosition.toString())}`;
    const path = `${databasePath(name)}/backup${query}`;
    const response = await this.open('GET', path, { accept: 'application/vnd.sqlite3, application/json' }, this.streamingFetch);
    if (!response.ok || response.body === null) {
      await this.read('GET', this.url + path, response, {});
      throw new LitebaseClientError('INVALID_RESPONSE', `GET ${path}: the answer has no body`, { status: response.status });
    }
    const position = response.headers.get('x-litebase-position') ?? '';
    if (!/^\d+$/.test(position)) {
      await response.body.cancel().catch(() => undefined);
      throw new LitebaseClientError('INVALID_RESPONSE', `GET ${path}: the answer has no x-litebase-position header`, { status: response.status });
    }
    const length = Number(response.headers.get('content-length') ?? Number.NaN);
    return { position, bytes: Number.isSafeInteger(length) ? length : undefined, body: response.body };
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
    await this.request('DELETE', `/v1/keys/${encodeURIComponent(id)}`);
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
    if (options.minPosition !== undefined) body.minPosition = options.minPosition.toString();
    return this.json<QueryResponseJson>('POST', `${databasePath(database)}/query`, { body });
  }

  /**
   * Open an interactive transaction. It holds the database's write lock until it is committed or
   * rolled back, or until `timeoutMs` passes and the server rolls it back on its own.
   */
  async beginTransaction(database: string, options: { timeoutMs?: number } = {}): Promise<LitebaseTransaction> {
    const body = options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs };
    const answer = await this.json<{ transaction: TransactionInfo }>('POST', `${databasePath(database)}/transactions`, { body });
    return new LitebaseTransaction(this, database, answer.transaction);
  }

  // Node

  async health(): Promise<{ status: string }> {
    return this.json<{ status: string }>('GET', '/healthz');
  }

  /** Whether the node is ready to serve; a recovering node is not an error here. */
  async ready(): Promise<ReadyResponse> {
    const response = await this.request('GET', '/readyz', { acceptStatuses: [503] });
    const status = isRecord(response.body) && typeof response.body.status === 'string' ? response.body.status : '';
    if (response.status === 503 && status === '') throw errorFromResponse(response, undefined);
    return { ready: response.status === 200, status };
  }

  /** Prometheus text. */
  async metrics(): Promise<string> {
    return (await this.request('GET', '/metrics')).text;
  }

  async cluster(): Promise<ClusterStatus> {
    return this.json<ClusterStatus>('GET', '/v1/cluster');
  }

  // Plumbing

  /** @internal Used by LitebaseTransaction. */
  async json<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.request(method, path, options);
    if (!isRecord(response.body)) {
      throw new LitebaseClientError('INVALID_RESPONSE', `${method} ${path}: expected a JSON object, got ${describeBody(response)}`, {
        status: response.status,
      });
    }
    return response.body as T;
  }

  private async request(method: string, path: string, options: RequestOptions = {}): Promise<RawResponse> {
    return this.read(method, this.url + path, await this.open(method, path, options), options);
  }

  /** Send a request (signed, or with the bearer key) and answer the response, its body unread. */
  private async open(method: string, path: string, options: RequestOptions, fetchImpl = this.fetchImpl): Promise<Response> {
    const headers: Record<string, string> = { accept: options.accept ?? 'application/json' };
    if (this.key !== undefined && this.sign === undefined) headers.authorization = `Bearer ${this.key}`;
    let payload: string | undefined;
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(options.body);
    }
    const url = this.url + path;
    if (this.sign !== undefined) {
      // Signed over the URL as fetch sends it (normalized by the URL parser) and the exact body.
      Object.assign(headers, signatureHeaders({ key: this.sign.key, keyId: this.sign.keyId, method, url, body: payload }));
    }
    const signal = this.timeoutMs > 0 ? AbortSignal.timeout(this.timeoutMs) : undefined;
    try {
      return await fetchImpl(url, {
        method,
        headers,
        ...(payload === undefined ? {} : { body: payload }),
        ...(signal === undefined ? {} : { signal }),
      });
    } catch (error) {
      throw transportError(error, method, url, this.timeoutMs);
    }
  }

  /** Read an answer whole; an error answer is thrown as a LitebaseClientError. */
  private async read(method: string, url: string, response: Response, options: RequestOptions): Promise<RawResponse> {
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw transportError(error, method, url, this.timeoutMs);
    }
    const contentType = response.headers.get('content-type') ?? '';
    let body: unknown;
    if (text !== '' && /\bjson\b/i.test(contentType)) {
      try {
        body = JSON.parse(text);
      } catch (error) {
        throw new LitebaseClientError('INVALID_RESPONSE', `${method} ${url}: the answer is not valid JSON`, {
          status: response.status,
          cause: error,
        });
      }
    }
    const raw: RawResponse = { status: response.status, body, text, contentType };
    if (response.ok || options.acceptStatuses?.includes(response.status)) return raw;
    throw errorFromResponse(raw, response.headers.get('retry-after') ?? undefined);
  }
}

/** An interactive transaction: statements run inside it until commit or rollback. */
export class LitebaseTransaction {
  readonly id: string;
  /** When the server rolls the transaction back on its own (ISO 8601). */
  readonly expiresAt: string;

  constructor(
    private readonly client: LitebaseClient,
    readonly database: string,
    info: TransactionInfo,
  ) {
    this.id = info.id;
    this.expiresAt = info.expiresAt;
  }

  async query(statements: Statement[] | string): Promise<QueryResponse> {
    return decodeQueryResponse(await this.queryRaw(statements));
  }

  async queryRaw(statements: Statement[] | string): Promise<QueryResponseJson> {
    return this.client.json<QueryResponseJson>('POST', `${this.path}/query`, { body: { statements: encodeStatements(statements) } });
  }

  /** Make the transaction durable; answers with its log position. */
  async commit(): Promise<CommitResponse> {
    return this.client.json<CommitResponse>('POST', `${this.path}/commit`);
  }

  async rollback(): Promise<void> {
    await this.client.json<Record<string, unknown>>('POST', `${this.path}/rollback`);
  }

  private get path(): string {
    return `${databasePath(this.database)}/transactions/${encodeURIComponent(this.id)}`;
  }
}

/** Turn a wire answer into JS values: bigint beyond ±2^53, Buffer for BLOB. */
export function decodeQueryResponse(json: QueryResponseJson): QueryResponse {
  if (!Array.isArray(json.results)) {
    throw new LitebaseClientError('INVALID_RESPONSE', 'a query answer must hold a "results" array');
  }
  return {
    results: json.results.map((result) => ({
      columns: result.columns,
      rows: result.rows.map((row) => row.map(fromJsonValue)),
      rowsAffected: result.rowsAffected,
      lastInsertRowid: decodeRowid(result.lastInsertRowid),
    })),
    position: json.position,
    node: json.node,
    role: json.role,
  };
}

function decodeRowid(value: JsonSqlValue | undefined): bigint | number | null {
  if (value === undefined || value === null) return null;
  const decoded = fromJsonValue(value);
  return typeof decoded === 'number' || typeof decoded === 'bigint' ? decoded : null;
}

function databasePath(name: string): string {
  return `/v1/databases/${encodeURIComponent(name)}`;
}

function encodeStatements(statements: Statement[] | string): Array<{ sql: string; params?: unknown }> {
  const list = typeof statements === 'string' ? [{ sql: statements }] : statements;
  return list.map((statement, index) => {
    if (statement.params === undefined) return { sql: statement.sql };
    const params = Array.isArray(statement.params)
      ? statement.params.map((value, position) => encodeParam(value, index, String(position + 1)))
      : Object.fromEntries(Object.entries(statement.params).map(([name, value]) => [name, encodeParam(value, index, name)]));
    return { sql: statement.sql, params };
  });
}

function encodeParam(value: SqlParam, statement: number, name: string): JsonSqlValue {
  // JSON.stringify would turn NaN and Infinity into null without a word.
  if (typeof value === 'number' && !Number.isFinite(value)) {
    throw new LitebaseClientError('INVALID_VALUE', `statement ${statement}, param ${name}: ${value} cannot be stored`, {
      details: { statement },
    });
  }
  return toJsonValue(value);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describeBody(response: RawResponse): string {
  const snippet = response.text.slice(0, 200).replace(/\s+/g, ' ').trim();
  return `HTTP ${response.status}${response.contentType ? ` (${response.contentType})` : ''}${snippet ? `: ${snippet}` : ''}`;
}

function parseRetryAfter(header: string | undefined): number | undefined {
  if (header === undefined) return undefined;
  if (/^\d+$/.test(header.trim())) return Number(header.trim());
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

function errorFromResponse(response: RawResponse, retryAfterHeader: string | undefined): LitebaseClientError {
  const retryAfter = parseRetryAfter(retryAfterHeader);
  const error = isRecord(response.body) ? response.body.error : undefined;
  if (isRecord(error) && typeof error.code === 'string') {
    const { code, message, ...details } = error;
    // A server's code (src/error-codes.ts); one newer than this client is passed on as it is.
    return new LitebaseClientError(code as WireErrorCode, typeof message === 'string' ? message : code, {
      status: response.status,
      details,
      ...(retryAfter === undefined ? {} : { retryAfter }),
    });
  }
  // Not the API's error shape: a proxy, a load balancer, or not a Litebase server at all.
  return new LitebaseClientError(`HTTP_${response.status}`, `unexpected answer: ${describeBody(response)}`, {
    status: response.status,
    ...(retryAfter === undefined ? {} : { retryAfter }),
  });
}

function transportError(error: unknown, method: string, url: string, timeoutMs: number): LitebaseClientError {
  if (error instanceof LitebaseClientError) return error;
  const name = error instanceof Error ? error.name : '';
  if (name === 'TimeoutError' || name === 'AbortError') {
    return new LitebaseClientError('TIMEOUT', `${method} ${url}: no answer within ${timeoutMs} ms`, { cause: error });
  }
  // fetch reports "fetch failed" and keeps the reason (ECONNREFUSED, ENOTFOUND, ...) in `cause`.
  const cause = error instanceof Error ? error.cause : undefined;
  const causeCode = typeof cause === 'object' && cause !== null && 'code' in cause ? cause.code : undefined;
  const reason =
    typeof causeCode === 'string'
      ? causeCode
      : cause instanceof Error
        ? cause.message
        : error instanceof Error
          ? error.message
          : String(error);
  return new LitebaseClientError('CONNECTION_FAILED', `cannot reach ${url}: ${reason}`, { cause: error });
}
