/**
 * `@litebase/client`: the Litebase client for any JavaScript runtime with fetch (Node 18+,
 * browsers, Deno, Bun, edge runtimes). It imports nothing from Node: the package's build
 * (packages/client/tsconfig.json) compiles these files without Node's types, so a Node-only API
 * here fails to build.
 */
export { LitebaseClient, type LitebaseClientOptions } from './client.js';
export type { BackupOptions, QueryOptions, TransactionOptions } from './options.js';
export { LitebaseDatabase, type BatchOptions, type ExecuteOptions } from './database.js';
export { LitebaseTransaction } from './transaction.js';
export { LitebaseSession, MIN_POSITION_HEADER, POSITION_HEADER, type SessionPositions } from './session.js';
export { litebaseFetch, databaseOfUrl, type LitebaseFetch, type LitebaseFetchOptions } from './libsql.js';
export { LitebaseClientError } from './errors.js';
export { OUTCOME_UNKNOWN_CODES, type RetryOptions } from './retry.js';
export { decodeQueryResponse, rowsAsObjects } from './statements.js';
export { signatureHeaders, keyIdOf, SIGNATURE_HEADERS, type SignInput, type Subtle } from './signing.js';
export { bytesToBase64, base64ToBytes, type JsonSqlValue, type SqlValue } from './values.js';
export type {
  AccessKeyInfo,
  BackupResponse,
  ClusterNodeStatus,
  ClusterStatus,
  CommitResponse,
  DatabaseInfo,
  Params,
  QueryMode,
  QueryResponse,
  QueryResponseJson,
  ReadyResponse,
  SqlParam,
  StatementStatsInfo,
  StatementsResponse,
  Statement,
  StatementResult,
  StatementResultJson,
  TransactionInfo,
} from './types.js';
