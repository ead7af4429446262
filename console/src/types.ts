/**
 * Shapes of the HTTP API answers the console reads (README "HTTP API", docs/CONSOLE.md). Written
 * out here because the console is built for the browser, apart from the server's own modules.
 */
export type Action = 'read' | 'write' | 'admin' | 'restore' | 'cluster';
export const ACTIONS: readonly Action[] = ['read', 'write', 'admin', 'restore', 'cluster'];

/** GET /v1/keys/self (src/server/routes/key-self.ts). */
export interface KeySelf {
  key: { id: string; name: string; root: boolean; databases: string[]; actions: Action[] };
  global: Action[];
  perDatabase: Record<string, Action[]>;
}

export interface DatabaseInfo {
  name: string;
  id: string;
  createdAt: string;
  pageSize: number;
  position: string;
  checksum: string;
}

export interface ClusterNodeInfo {
  nodeId: string;
  address: string;
  role: string;
  term: string;
  lastHeartbeat: string;
  alive: boolean;
  databases: Record<string, { position: string; lag: number | null; error?: { code: string; message: string } }>;
}

export interface ClusterInfo {
  term: string;
  primary: { nodeId: string; address: string } | null;
  nodes: ClusterNodeInfo[];
}

export type SqlValue = string | number | null | { base64: string } | boolean;

export interface StatementResult {
  columns: string[];
  rows: SqlValue[][];
  rowsAffected: number;
  lastInsertRowid?: string | number | null;
}

export interface QueryAnswer {
  results: StatementResult[];
  position: string;
  node: string;
  role: 'primary' | 'replica';
}

export interface RestorePoints {
  database: string;
  databaseId: string;
  source: 'catalog' | 'archive';
  earliest: { position: string; time: string } | null;
  latest: { position: string; time: string } | null;
  checkpoints: Array<{ position: string; time: string; bytes: number; archived: boolean; shared: boolean }>;
  archive: { bundles: number; bytes: number; archivedThrough: string; store: string };
  retentionMs: number;
}

export interface RestoreJob {
  id: string;
  database: string;
  target: string;
  status: 'running' | 'succeeded' | 'failed';
  request: { position?: string; timestamp?: string };
  progress: {
    phase: string;
    bytes: number;
    totalBytes: number;
    segments: number;
    totalSegments: number;
    percent: number;
    position: string;
  };
  startedAt: string;
  finishedAt?: string;
  result?: {
    position: string;
    time: string | null;
    pages: number;
    pageSize: number;
    bytes: number;
    durationMs: number;
    database: { name: string; id: string; position: string };
  };
  error?: { code: string; message: string };
}

export interface KeyInfo {
  id: string;
  name: string;
  createdAt: string;
  revokedAt: string | null;
  databases: string[];
  actions: Action[];
}

/** One normalized statement in GET /v1/databases/:db/statements (times in milliseconds). */
export interface StatementStats {
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

/** GET /v1/databases/:db/statements (src/server/routes/statements.ts): the answering node's counts. */
export interface StatementsAnswer {
  database: string;
  node: string;
  role: 'primary' | 'replica';
  enabled: boolean;
  order: 'total' | 'count' | 'p99' | 'mean' | 'errors';
  /** node: the answering node's counts; cluster: every live node's, merged. */
  scope: 'node' | 'cluster';
  nodes?: Array<{ node: string; ok: boolean; role?: string; error?: { code: string; message: string } }>;
  since: string | null;
  tracked: number;
  maxTracked: number;
  evicted: number;
  statements: StatementStats[];
}
