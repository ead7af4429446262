import type { JsonSqlValue, SqlValue } from './values.js';

/** The shapes of the HTTP API's requests and answers (docs/API.md). */

/** A value a statement can be bound to. Booleans bind as 1 and 0. */
export type SqlParam = SqlValue | boolean;

/** Positional (`?`) or named (`:name`, `@name`, `$name`; give the name without its prefix) params. */
export type Params = SqlParam[] | Record<string, SqlParam>;

export interface Statement {
  sql: string;
  params?: Params;
}

export type QueryMode = 'transaction' | 'independent';

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

/** The wire form of a statement result, values still JSON-encoded (docs/API.md). */
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
  databases: Record<
    string,
    { position: string; lag: number | null; error?: { position: string; code: string; message: string; at: string } }
  >;
  [detail: string]: unknown;
}

/** `GET /v1/cluster`: the term, the Primary, and every node. */
export interface ClusterStatus {
  term: string;
  primary: { nodeId: string; address: string } | null;
  nodes: ClusterNodeStatus[];
  [detail: string]: unknown;
}

/** One normalized statement in `GET /v1/databases/:db/statements` (times in milliseconds). */
export interface StatementStatsInfo {
  id: string;
  sql: string;
  count: number;
  errors: number;
  lastError: { code: string; at: string } | null;
  totalMs: number;
  meanMs: number;
  minMs: number;
  maxMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  rowsRead: number;
  rowsWritten: number;
  firstSeen: string;
  lastSeen: string;
}

/** `GET /v1/databases/:db/statements`: what the answering node ran on the database. */
export interface StatementsResponse {
  database: string;
  node: string;
  role: string;
  enabled: boolean;
  order: 'total' | 'count' | 'p99' | 'mean' | 'errors';
  /** `node`: the answering node's counts; `cluster`: every live node's, merged (`nodes` says which answered). */
  scope: 'node' | 'cluster';
  nodes?: Array<
    | { node: string; role: string; ok: true; since: string | null; tracked: number; evicted: number }
    | { node: string; ok: false; error: { code: string; message: string } }
  >;
  since: string | null;
  tracked: number;
  maxTracked: number;
  evicted: number;
  statements: StatementStatsInfo[];
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
