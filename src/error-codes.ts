/**
 * Every error code Litebase gives a user, in one table: the HTTP status a server answers it with,
 * whether the same request can succeed later, and what it means. docs/ERRORS.md lists exactly these
 * codes (test/unit/error-codes.test.ts checks both directions); `LitebaseError` takes its status and
 * Retry-After from here.
 *
 * This module imports nothing: the client (src/client) uses these types without pulling in the server.
 */

/** Where a code arises; docs/ERRORS.md has one section per area, titled as here. */
export const ERROR_AREAS = {
  request: 'Requests',
  auth: 'Authentication and permissions',
  database: 'Databases',
  statement: 'Statements',
  transaction: 'Transactions',
  cluster: 'Cluster',
  log: 'Log and local copies',
  segment: 'Segment files',
  hrana: 'Hrana (libSQL clients)',
  'object-store': 'Object store',
  archive: 'Compaction and archive',
  backup: 'Backups',
  restore: 'Restores',
  config: 'Configuration',
  client: 'Client',
  cli: 'Command line',
  shell: 'Shell',
} as const;

export type ErrorArea = keyof typeof ERROR_AREAS;

export interface ErrorSpec {
  /**
   * The HTTP status a server answers with. null: never in a server's answer (the client, the CLI
   * or the shell raises it); a `LitebaseError` with such a code has status 500.
   */
  readonly status: number | null;
  /** The same request, unchanged, can succeed later (a 503's `Retry-After` says when). */
  readonly retryable: boolean;
  /** The `Retry-After` a server sends by default; absent: none (or, where a site computes one, that). */
  readonly retryAfterSeconds?: number;
  readonly area: ErrorArea;
  /** One line for docs/ERRORS.md. */
  readonly meaning: string;
}

export const ERRORS = {
  // ---- requests: before or around a route -----------------------------------------------------
  INVALID_REQUEST: { status: 400, retryable: false, area: 'request', meaning: "the body, path or query does not match the route's schema" },
  INVALID_JSON: { status: 400, retryable: false, area: 'request', meaning: 'the body is empty or not valid JSON' },
  INVALID_CONTENT_LENGTH: { status: 400, retryable: false, area: 'request', meaning: 'Content-Length does not match the body' },
  INVALID_URL: {
    status: 400,
    retryable: false,
    area: 'request',
    meaning: 'the URL has a malformed %-escape; the client raises it too (status 0) for a URL it cannot parse',
  },
  URL_TOO_LONG: { status: 414, retryable: false, area: 'request', meaning: 'a path parameter is longer than the server accepts' },
  BODY_TOO_LARGE: { status: 413, retryable: false, area: 'request', meaning: 'the body is larger than the body limit' },
  BODY_INCOMPLETE: {
    status: 400,
    retryable: false,
    area: 'request',
    meaning: "the connection closed before a signed request's body was complete",
  },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, retryable: false, area: 'request', meaning: 'the body is not application/json' },
  EXPECTATION_FAILED: { status: 417, retryable: false, area: 'request', meaning: 'an Expect header other than 100-continue' },
  MALFORMED_REQUEST: {
    status: 400,
    retryable: false,
    area: 'request',
    meaning: 'the bytes are not valid HTTP/1.1; the connection is closed',
  },
  HEADERS_TOO_LARGE: {
    status: 431,
    retryable: false,
    area: 'request',
    meaning: 'the request headers are too large; the connection is closed',
  },
  REQUEST_TIMEOUT: {
    status: 408,
    retryable: true,
    area: 'request',
    meaning: 'the request did not arrive in time; the connection is closed',
  },
  ROUTE_NOT_FOUND: { status: 404, retryable: false, area: 'request', meaning: 'no route for this method and path' },
  BAD_REQUEST: {
    status: 400,
    retryable: false,
    area: 'request',
    meaning: "another refusal by the HTTP framework without a code of its own; the status is the framework's (a 4xx)",
  },
  INTERNAL_ERROR: { status: 500, retryable: false, area: 'request', meaning: 'an unexpected failure; the server log has the details' },
  CONSOLE_NOT_BUILT: {
    status: 503,
    retryable: false,
    area: 'request',
    meaning: 'GET /console: the web console was not built (no Retry-After)',
  },

  // ---- authentication and permissions ----------------------------------------------------------
  UNAUTHENTICATED: { status: 401, retryable: false, area: 'auth', meaning: 'no access key: neither Authorization: Bearer nor a signature' },
  INVALID_KEY: { status: 401, retryable: false, area: 'auth', meaning: 'the access key is unknown, wrong or revoked' },
  PERMISSION_DENIED: {
    status: 403,
    retryable: false,
    area: 'auth',
    meaning: "the key's actions do not allow this (e.g. a read-only key sent a write)",
  },
  SIGNATURE_INVALID: {
    status: 401,
    retryable: false,
    area: 'auth',
    meaning: 'the request signature is malformed or does not match the request and key',
  },
  SIGNATURE_EXPIRED: {
    status: 401,
    retryable: false,
    area: 'auth',
    meaning: "the signature's date is further from the server's clock than the allowed skew",
  },
  SIGNATURE_REPLAYED: { status: 401, retryable: false, area: 'auth', meaning: 'this node has already received this signed request' },
  SIGNATURE_CACHE_FULL: {
    status: 503,
    retryable: true,
    area: 'auth',
    meaning: 'the node remembers too many recent signatures to check for replays; Retry-After says when there is room',
  },
  KEY_NOT_FOUND: { status: 404, retryable: false, area: 'auth', meaning: 'no access key with this id' },
  KEYS_UNREADABLE: {
    status: 503,
    retryable: true,
    area: 'auth',
    meaning: 'an access key file cannot be read on this node (no Retry-After)',
  },

  // ---- databases ---------------------------------------------------------------------------------
  DATABASE_NOT_FOUND: {
    status: 404,
    retryable: false,
    area: 'database',
    meaning: 'no database with this name (and, for a restore, no archive of it)',
  },
  DATABASE_EXISTS: { status: 409, retryable: false, area: 'database', meaning: 'a database with this name exists or is being created' },
  INVALID_DATABASE_NAME: { status: 400, retryable: false, area: 'database', meaning: 'the name does not match [a-z0-9][a-z0-9_-]{0,62}' },
  DATABASE_PREPARING: {
    status: 503,
    retryable: true,
    retryAfterSeconds: 1,
    area: 'database',
    meaning: 'the database is being created from a restore',
  },
  DATABASE_RECOVERING: {
    status: 503,
    retryable: true,
    retryAfterSeconds: 1,
    area: 'database',
    meaning: 'the local copy is being rebuilt from the log',
  },
  DATABASE_CLOSED: {
    status: 503,
    retryable: true,
    retryAfterSeconds: 1,
    area: 'database',
    meaning: 'the database is shutting down on this node',
  },
  CATALOG_UNREADABLE: {
    status: 503,
    retryable: true,
    area: 'database',
    meaning: "the database's catalog file cannot be read on this node (no Retry-After)",
  },

  // ---- statements --------------------------------------------------------------------------------
  INVALID_STATEMENT: {
    status: 400,
    retryable: false,
    area: 'statement',
    meaning: 'the statement cannot be prepared or run as given (better-sqlite3 refused it)',
  },
  INVALID_PARAMS: { status: 400, retryable: false, area: 'statement', meaning: 'a param cannot be decoded or does not fit the statement' },
  STATEMENT_FAILED: { status: 500, retryable: false, area: 'statement', meaning: 'the statement failed without a SQLite code' },
  STATEMENT_NOT_ALLOWED: {
    status: 400,
    retryable: false,
    area: 'statement',
    meaning: 'ATTACH, DETACH, VACUUM, load_extension, temporary objects or a PRAGMA that would bypass the log',
  },
  PRAGMA_NOT_ALLOWED: {
    status: 403,
    retryable: false,
    area: 'statement',
    meaning: 'the PRAGMA needs a key with the admin action on this database',
  },
  TRANSACTION_CONTROL_NOT_ALLOWED: {
    status: 400,
    retryable: false,
    area: 'statement',
    meaning: 'BEGIN, COMMIT, SAVEPOINT and the like in a query; use the transaction routes',
  },
  STATEMENT_TIMEOUT: {
    status: 408,
    retryable: false,
    area: 'statement',
    meaning: 'the statement ran longer than the statement time limit and was stopped',
  },
  TOO_MANY_STATEMENTS: { status: 413, retryable: false, area: 'statement', meaning: 'the request holds more statements than the limit' },
  TOO_MANY_ROWS: { status: 422, retryable: false, area: 'statement', meaning: 'the answer would hold more rows than the limit' },
  RESULT_TOO_LARGE: { status: 422, retryable: false, area: 'statement', meaning: 'the answer would be larger than the byte limit' },
  READ_PROCESSES_BUSY: {
    status: 503,
    retryable: true,
    retryAfterSeconds: 1,
    area: 'statement',
    meaning: 'every read process stayed busy for the wait time',
  },
  READ_PROCESS_FAILED: {
    status: 503,
    retryable: true,
    retryAfterSeconds: 1,
    area: 'statement',
    meaning: 'the read process running the statement could not start or ended',
  },
  READ_PROCESS_UNAVAILABLE: {
    status: 503,
    retryable: false,
    area: 'statement',
    meaning: "the read process's entry file is missing (an incomplete build; no Retry-After)",
  },

  // ---- transactions ------------------------------------------------------------------------------
  TRANSACTION_NOT_FOUND: { status: 404, retryable: false, area: 'transaction', meaning: 'no transaction with this id on this node' },
  TRANSACTION_ENDED: {
    status: 409,
    retryable: false,
    area: 'transaction',
    meaning: 'the transaction was committed, rolled back or expired',
  },
  TOO_MANY_TRANSACTIONS: {
    status: 429,
    retryable: true,
    retryAfterSeconds: 1,
    area: 'transaction',
    meaning: 'the database has as many open transactions as allowed',
  },
  WRITE_LOCK_TIMEOUT: {
    status: 503,
    retryable: true,
    retryAfterSeconds: 1,
    area: 'transaction',
    meaning: 'the write lock was not free in time (a long transaction holds it)',
  },

  // ---- cluster -----------------------------------------------------------------------------------
  NEEDS_PRIMARY: {
    status: 503,
    retryable: true,
    retryAfterSeconds: 1,
    area: 'cluster',
    meaning: 'the request writes and this node is not the Primary (normally forwarded, not seen)',
  },
  PRIMARY_UNAVAILABLE: {
    status: 503,
    retryable: true,
    retryAfterSeconds: 1,
    area: 'cluster',
    meaning:
      'no Primary is known, or it could not be reached (through the load balancer: no node could): the forwarded request was never sent',
  },
  NODE_UNREACHABLE: {
    status: null,
    retryable: true,
    area: 'cluster',
    meaning: "another node did not answer this node's request (listed in a cluster view of statement metrics, not an answer of its own)",
  },
  PRIMARY_NO_ANSWER: {
    status: 503,
    retryable: true,
    retryAfterSeconds: 1,
    area: 'cluster',
    meaning:
      'the Primary (through the load balancer: the node) did not answer a request it may have received; a write may or may not have been applied',
  },
  PRIMARY_CHANGED: {
    status: 503,
    retryable: true,
    retryAfterSeconds: 1,
    area: 'cluster',
    meaning: 'the Primary changed during a forwarded request; a write may or may not have been applied',
  },
  NOT_PRIMARY: {
    status: 503,
    retryable: true,
    retryAfterSeconds: 1,
    area: 'cluster',
    meaning: 'this node stopped being the Primary during the operation',
  },
  LEASE_LOST: {
    status: 503,
    retryable: true,
    retryAfterSeconds: 1,
    area: 'cluster',
    meaning: 'this node lost the Primary lease; the write was not applied',
  },
  POSITION_NOT_REACHED: {
    status: 503,
    retryable: true,
    retryAfterSeconds: 1,
    area: 'cluster',
    meaning: 'the node did not reach the requested min position in time',
  },
  CLUSTER_KEEPER_FAILED: { status: 500, retryable: false, area: 'cluster', meaning: 'the lease keeper thread failed or exited at start' },

  // ---- log and local copies ----------------------------------------------------------------------
  LOG_UNAVAILABLE: {
    status: 503,
    retryable: true,
    retryAfterSeconds: 1,
    area: 'log',
    meaning: 'the log cannot be written (storage error); the write was not applied',
  },
  LOG_POSITION_TAKEN: {
    status: 503,
    retryable: true,
    retryAfterSeconds: 1,
    area: 'log',
    meaning: 'another writer wrote this log position; this node steps down',
  },
  LOG_GAP: { status: 500, retryable: false, area: 'log', meaning: 'a segment is missing from the log' },
  LOG_CHAIN_BROKEN: { status: 500, retryable: false, area: 'log', meaning: "a segment does not continue the previous one's checksum" },
  LOG_FOREIGN_SEGMENT: {
    status: 500,
    retryable: false,
    area: 'log',
    meaning: 'a segment in the log belongs to another database or position',
  },
  WAL_READ_FAILED: {
    status: 503,
    retryable: true,
    retryAfterSeconds: 1,
    area: 'log',
    meaning: "the Primary cannot read SQLite's WAL file to capture a write",
  },
  LOCAL_REBUILD_MISMATCH: {
    status: 500,
    retryable: false,
    area: 'log',
    meaning: 'rebuilding the local copy from the whole log gave another checksum than the log',
  },
  LOCAL_REBUILD_FAILED: { status: 500, retryable: false, area: 'log', meaning: 'the local copy could not be rebuilt from the log' },
  LOCAL_DIR_IN_USE: {
    status: null,
    retryable: false,
    area: 'log',
    meaning: 'another running process holds the lock of this local folder',
  },
  CHECKPOINT_INVALID: { status: 500, retryable: false, area: 'log', meaning: 'a checkpoint file is not a valid checkpoint' },
  CHECKPOINT_FOREIGN: { status: 500, retryable: false, area: 'log', meaning: 'a checkpoint belongs to another database' },
  CHECKPOINT_RANGE_MISSING: {
    status: 503,
    retryable: true,
    area: 'log',
    meaning: 'a range file of the checkpoint being read was collected after a newer checkpoint replaced it',
  },
  CHECKPOINT_CHECKSUM_MISMATCH: {
    status: 500,
    retryable: false,
    area: 'log',
    meaning: "a checkpoint's pages do not sum to its recorded checksum",
  },
  CHECKPOINT_SOURCE_SHORT: {
    status: 500,
    retryable: false,
    area: 'log',
    meaning: 'the local file is shorter than the checkpoint being written from it',
  },
  CHECKPOINT_SOURCE_MISMATCH: {
    status: 500,
    retryable: false,
    area: 'log',
    meaning: 'the local file does not hold what the log wrote; no checkpoint is written from it',
  },

  // ---- segment files -----------------------------------------------------------------------------
  SEGMENT_TRUNCATED: { status: 500, retryable: false, area: 'segment', meaning: 'a segment file is shorter than its header says' },
  SEGMENT_BAD_MAGIC: { status: 500, retryable: false, area: 'segment', meaning: 'a file in the log is not a segment' },
  SEGMENT_UNSUPPORTED_VERSION: {
    status: 500,
    retryable: false,
    area: 'segment',
    meaning: 'a segment has a format version this build cannot read',
  },
  SEGMENT_CHECKSUM_MISMATCH: { status: 500, retryable: false, area: 'segment', meaning: "a segment's trailer does not match its bytes" },
  SEGMENT_CORRUPT: {
    status: 500,
    retryable: false,
    area: 'segment',
    meaning: 'a segment cannot be decoded (bad header field, bad LZ4 data, wrong database)',
  },

  // ---- Hrana (docs/HRANA.md): HTTP 400/404 for a whole request; inside a pipeline's 200 answer for one step ----
  HRANA_PROTO_ERROR: {
    status: 400,
    retryable: false,
    area: 'hrana',
    meaning: 'the body, or a request inside the pipeline, does not follow the Hrana protocol',
  },
  HRANA_URL_NEEDS_SLASH: {
    status: 404,
    retryable: false,
    area: 'hrana',
    meaning: "the client's URL lacks the slash after the database name",
  },
  BATON_INVALID: {
    status: 400,
    retryable: false,
    area: 'hrana',
    meaning: 'the baton was used, forged or closed, or belongs to another database, key or node',
  },
  STREAM_EXPIRED: {
    status: 400,
    retryable: false,
    area: 'hrana',
    meaning: 'the stream was idle for 10 s; it was closed and its transaction rolled back',
  },
  STREAM_CLOSED: { status: 400, retryable: false, area: 'hrana', meaning: 'a request after close in the same pipeline' },
  SQL_ID_NOT_FOUND: { status: 400, retryable: false, area: 'hrana', meaning: 'sql_id names no SQL text stored on the stream' },
  ARGS_INVALID: { status: 400, retryable: false, area: 'hrana', meaning: "the arguments do not fit the statement's parameters" },

  // ---- object store ------------------------------------------------------------------------------
  OBJECT_KEY_INVALID: {
    status: 400,
    retryable: false,
    area: 'object-store',
    meaning: 'an object key or list prefix is not valid for the store',
  },
  OBJECT_NOT_FOUND: { status: 404, retryable: false, area: 'object-store', meaning: 'no object with this key' },
  OBJECT_STORE_URL_INVALID: {
    status: 400,
    retryable: false,
    area: 'object-store',
    meaning: 'the object store URL cannot be parsed or its options contradict each other',
  },
  OBJECT_STORE_BUCKET_MISSING: {
    status: 500,
    retryable: false,
    area: 'object-store',
    meaning: 'the bucket (for file://, the folder) does not exist',
  },
  OBJECT_STORE_ACCESS_DENIED: {
    status: 500,
    retryable: false,
    area: 'object-store',
    meaning: 'the credentials are wrong, missing, expired or lack a permission',
  },
  OBJECT_STORE_UNAVAILABLE: {
    status: 503,
    retryable: true,
    retryAfterSeconds: 1,
    area: 'object-store',
    meaning: 'the store failed after retries (network, 5xx, throttling, local I/O)',
  },

  // ---- compaction and archive --------------------------------------------------------------------
  ARCHIVE_CORRUPT: {
    status: 500,
    retryable: false,
    area: 'archive',
    meaning: 'an archived bundle or checkpoint is damaged or not what the archive index says',
  },
  CHECKPOINT_FOLD_MISMATCH: {
    status: 500,
    retryable: false,
    area: 'archive',
    meaning: "a compaction's new ranges do not sum to the log's checksum; the checkpoint is not published",
  },
  ARCHIVE_UPLOAD_MISMATCH: { status: 500, retryable: false, area: 'archive', meaning: 'an uploaded object does not read back as uploaded' },
  COMPACTOR_STOPPED: {
    status: 503,
    retryable: true,
    retryAfterSeconds: 1,
    area: 'archive',
    meaning: 'the compactor is stopping (shutdown or step-down)',
  },
  COMPACTOR_UNAVAILABLE: {
    status: 503,
    retryable: true,
    retryAfterSeconds: 1,
    area: 'archive',
    meaning: 'the database has no compactor on this node (no object store, or not the Primary yet)',
  },
  COMPACTION_FAILED: {
    status: 500,
    retryable: false,
    area: 'archive',
    meaning: "the compactor's record of a failure without a code of its own (a manual compaction answers 500 INTERNAL_ERROR)",
  },

  // ---- backups -----------------------------------------------------------------------------------
  BACKUP_FAILED: {
    status: 503,
    retryable: true,
    retryAfterSeconds: 5,
    area: 'backup',
    meaning: 'the backup could not be written on this node',
  },
  BACKUP_INTERRUPTED: {
    status: 503,
    retryable: true,
    retryAfterSeconds: 1,
    area: 'backup',
    meaning: 'the database was rebuilt or closed, or the request ended, during the backup',
  },
  BACKUP_INCOMPLETE: { status: null, retryable: true, area: 'backup', meaning: '`litebase db backup`: the download ended early' },
  BACKUP_VERIFY_FAILED: {
    status: null,
    retryable: false,
    area: 'backup',
    meaning: "`litebase db backup`: the downloaded file fails SQLite's quick_check",
  },

  // ---- restores ----------------------------------------------------------------------------------
  INVALID_RESTORE_TARGET: {
    status: 400,
    retryable: false,
    area: 'restore',
    meaning: 'give exactly one of timestamp and position (1..2^64-1)',
  },
  INVALID_TIMESTAMP: { status: 400, retryable: false, area: 'restore', meaning: 'the timestamp is not ISO 8601 with a time zone' },
  RESTORE_TARGET_REQUIRED: {
    status: 400,
    retryable: false,
    area: 'restore',
    meaning: 'no free default name for the restored database; give target',
  },
  RESTORE_NOT_FOUND: {
    status: 404,
    retryable: false,
    area: 'restore',
    meaning: 'no restore job with this id for this database on this node',
  },
  RESTORE_NO_HISTORY: {
    status: 404,
    retryable: false,
    area: 'restore',
    meaning: 'the object store holds no restorable history of the database (or of that id)',
  },
  RESTORE_OUT_OF_RANGE: { status: 400, retryable: false, area: 'restore', meaning: 'the time or position is outside the restorable range' },
  RESTORE_GAP: { status: 409, retryable: false, area: 'restore', meaning: 'the history has a gap at the requested point' },
  RESTORE_CHAIN_BROKEN: {
    status: 500,
    retryable: false,
    area: 'restore',
    meaning: 'the pieces of history do not continue each other (checksum, position or page size)',
  },
  RESTORE_INCOMPLETE: {
    status: 500,
    retryable: false,
    area: 'restore',
    meaning: 'the restore did not reach its target: segments are missing',
  },
  RESTORE_SOURCE_MISSING: {
    status: 500,
    retryable: false,
    area: 'restore',
    meaning: 'the plan reads from the log or the object store, which this restore cannot reach',
  },
  RESTORE_SOURCE_VANISHED: {
    status: 503,
    retryable: true,
    retryAfterSeconds: 1,
    area: 'restore',
    meaning: 'a log segment changed or was archived while the restore read it',
  },
  RESTORE_VERIFY_FAILED: {
    status: 500,
    retryable: false,
    area: 'restore',
    meaning: "the restored file does not match the history's checksum, or fails SQLite's quick_check",
  },
  RESTORE_WRITE_FAILED: { status: 500, retryable: false, area: 'restore', meaning: 'writing the restored file failed' },
  RESTORE_FAILED: {
    status: 500,
    retryable: false,
    area: 'restore',
    meaning: "a restore job failed without a code of its own (in the job's error)",
  },

  // ---- configuration -----------------------------------------------------------------------------
  CONFIG_INVALID: {
    status: 500,
    retryable: false,
    area: 'config',
    meaning: 'a setting, config file or TLS file is invalid; the server does not start (CLI exit code 2)',
  },

  // ---- client (src/client; never in a server's answer) -------------------------------------------
  CONNECTION_FAILED: { status: null, retryable: true, area: 'client', meaning: 'the node could not be reached' },
  SIGNING_UNAVAILABLE: {
    status: null,
    retryable: false,
    area: 'client',
    meaning: 'request signing was asked for but the runtime has no Web Crypto',
  },
  TIMEOUT: { status: null, retryable: true, area: 'client', meaning: 'no answer within the timeout' },
  INVALID_RESPONSE: { status: null, retryable: false, area: 'client', meaning: "the answer is not the API's JSON" },
  INVALID_VALUE: { status: null, retryable: false, area: 'client', meaning: 'a param cannot be encoded (e.g. NaN)' },
  INVALID_OPTIONS: {
    status: null,
    retryable: false,
    area: 'client',
    meaning: 'the client options contradict each other (signing without a key)',
  },

  // ---- command line ------------------------------------------------------------------------------
  INVALID_ARGUMENTS: {
    status: null,
    retryable: false,
    area: 'cli',
    meaning: 'the flags are missing, contradict each other or have a bad value (exit code 2)',
  },
  INVALID_PARAM: { status: null, retryable: false, area: 'cli', meaning: 'a --param value cannot be read (exit code 2)' },
  CA_UNREADABLE: { status: null, retryable: false, area: 'cli', meaning: 'the --ca file cannot be read (exit code 2)' },
  OUTPUT_EXISTS: { status: null, retryable: false, area: 'cli', meaning: 'the output file exists; choose another or pass --force' },
  INTERNAL: {
    status: null,
    retryable: false,
    area: 'cli',
    meaning: 'an unexpected failure in the CLI or shell; the message holds the stack',
  },
  INSPECT_FILE_UNREADABLE: {
    status: null,
    retryable: false,
    area: 'cli',
    meaning: '`litebase inspect`: the file cannot be read (exit code 2)',
  },
  INSPECT_UNKNOWN_KIND: {
    status: null,
    retryable: false,
    area: 'cli',
    meaning: '`litebase inspect`: the file is no segment, checkpoint or bundle, and no --kind names one (exit code 2)',
  },

  // ---- shell -------------------------------------------------------------------------------------
  UNKNOWN_COMMAND: { status: null, retryable: false, area: 'shell', meaning: 'no such dot-command' },
  INVALID_COMMAND: {
    status: null,
    retryable: false,
    area: 'shell',
    meaning: "a dot-command's arguments are wrong, or .read files nest too deep",
  },
  FILE_UNREADABLE: { status: null, retryable: false, area: 'shell', meaning: '.read cannot open the file' },
  INCOMPLETE_STATEMENT: { status: null, retryable: false, area: 'shell', meaning: 'the input ended inside a statement (no closing ";")' },
  TRANSACTION_OPEN: { status: null, retryable: false, area: 'shell', meaning: 'BEGIN while a transaction is open' },
  NO_TRANSACTION: { status: null, retryable: false, area: 'shell', meaning: 'COMMIT or ROLLBACK with no transaction open' },
  TRANSACTION_ROLLED_BACK: {
    status: null,
    retryable: false,
    area: 'shell',
    meaning: 'the script ended with a transaction open; it was rolled back',
  },
  CANCELLED: { status: null, retryable: false, area: 'shell', meaning: 'Ctrl-C cancelled the statement; the server may still finish it' },
} as const satisfies Record<string, ErrorSpec>;

/** A code of ours: a key of the table. */
export type ErrorCode = keyof typeof ERRORS;

/** The codes of one area (e.g. the segment codec's, the object store's). */
export type ErrorCodeIn<A extends ErrorArea> = { [C in ErrorCode]: (typeof ERRORS)[C]['area'] extends A ? C : never }[ErrorCode];

/** The codes a server answers with status S. */
export type ErrorCodeWithStatus<S extends number> = { [C in ErrorCode]: (typeof ERRORS)[C]['status'] extends S ? C : never }[ErrorCode];

/**
 * SQLite's own result codes, passed through unchanged from a failed statement (its extended code
 * where there is one, e.g. SQLITE_CONSTRAINT_UNIQUE): 503 for the ones that say "not now"
 * (see `sqliteErrorStatus`), 400 for the rest.
 */
export type SqliteErrorCode = `SQLITE_${string}`;

/** A code in a server's error answer: ours, SQLite's, or (for a 4xx the framework raises) fastify's. */
export type WireErrorCode = ErrorCode | SqliteErrorCode | `FST_ERR_${string}`;

/** The client's code for an answer that is not the API's error shape (a proxy's 502, ...): HTTP_<status>. */
export type HttpStatusErrorCode = `HTTP_${number}`;

/** What the client's errors carry: a server's code, or HTTP_<status> for an answer without one. */
export type ClientErrorCode = WireErrorCode | HttpStatusErrorCode;

/** Node's own codes (ENOENT, EPIPE, ERR_...): not ours; the CLI and the shell print them as they come. */
export type NodeErrorCode = `E${string}`;

/** SQLite result codes that mean "not now" (busy, locked, I/O, full, ...) rather than a bad statement. */
const SQLITE_UNAVAILABLE = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|READONLY|NOMEM)/;

/** The HTTP status of a statement that failed with SQLite's `code` (no Retry-After either way). */
export function sqliteErrorStatus(code: SqliteErrorCode): 400 | 503 {
  return SQLITE_UNAVAILABLE.test(code) ? 503 : 400;
}

export function isSqliteErrorCode(code: string): code is SqliteErrorCode {
  return code.startsWith('SQLITE_');
}

/** True for a code in the table (e.g. one read from the wire). */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERRORS, code);
}
