export {
  LitebaseClient,
  LitebaseClientError,
  LitebaseTransaction,
  decodeQueryResponse,
  type BackupOptions,
  type BackupResponse,
  type ClusterNodeStatus,
  type ClusterStatus,
  type CommitResponse,
  type DatabaseInfo,
  type LitebaseClientOptions,
  type QueryMode,
  type QueryOptions,
  type QueryResponse,
  type QueryResponseJson,
  type ReadyResponse,
  type SqlParam,
  type Statement,
  type StatementResult,
  type StatementResultJson,
  type TransactionInfo,
} from './client.js';
export type { JsonSqlValue, SqlValue } from '../sql/values.js';
export { signatureHeaders, SIGNATURE_HEADERS, type SignInput } from './signing.js';
export { fetchTrustingCa } from './tls.js';
