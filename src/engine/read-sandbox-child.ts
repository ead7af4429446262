import Database from 'better-sqlite3';
import { LitebaseError } from '../errors.js';
import { runStatement, StatementCache, toStatementError, type StatementInput, type StatementResult } from './executor.js';
import { ResultBudget, type ResultLimits } from './result-limits.js';
import type { StatementSample } from './statement-stats.js';
import type { OrphanGuardData } from './orphan-guard-thread.js';
import { startModuleWorker } from '../threads/worker-pool.js';

/**
 * A read process (read-sandbox.ts): started by the node with `child_process.fork`, it runs looping
 * read statements on its own read-only connections, with the same row, byte and between-rows time
 * limits as in the node, and is killed by the node when a statement outlives the time limit.
 */

/** Node to read process. */
export type SandboxRequest =
  | {
      type: 'run';
      id: number;
      file: string;
      generation: number;
      dataVersion: number;
      statements: StatementInput[];
      firstIndex: number;
      admin: boolean;
      /** Exact values and decltypes (executor.ts, StatementRun.exact). */
      exact: boolean;
      limits: ResultLimits;
      rows: number;
      bytes: number;
      /** Measure each statement's run (statement metrics) and send the samples back, in order, without their SQL. */
      record?: boolean;
    }
  | { type: 'forget'; file: string };

/** A statement's run as a read process sends it: the node knows the SQL (the request's statements, in order from firstIndex). */
export type SentSample = Omit<StatementSample, 'sql'>;

/** Read process to node. */
export type SandboxReply =
  | { type: 'ready' }
  | { type: 'progress'; id: number; index: number }
  | { type: 'done'; id: number; results: StatementResult[]; rows: number; bytes: number; samples?: SentSample[] }
  | {
      type: 'error';
      id: number;
      samples?: SentSample[];
      error: {
        code: LitebaseError['code'];
        message: string;
        status: number;
        details: Record<string, unknown>;
        retryAfterSeconds: number | undefined;
      };
    };

interface OpenFile {
  db: Database.Database;
  statements: StatementCache;
  generation: number;
  dataVersion: number;
  schemaVersion: number;
}

function main(): void {
  const send = process.send?.bind(process);
  if (!send) throw new Error('read-sandbox-child.js runs as a forked read process only');
  const deadlineBuffer = new SharedArrayBuffer(8);
  const deadline = new Float64Array(deadlineBuffer);
  // Kills this process when the node is gone or a statement is far past its time (orphan-guard-thread.ts).
  const guard: OrphanGuardData = { buffer: deadlineBuffer, parent: process.ppid };
  startModuleWorker(import.meta.url, './orphan-guard-thread.js', { workerData: guard, name: 'orphan-guard' }).unref();
  const files = new Map<string, OpenFile>();

  const open = (file: string, generation: number, dataVersion: number): OpenFile => {
    let entry = files.get(file);
    if (entry && entry.generation !== generation) {
      entry.db.close();
      files.delete(file);
      entry = undefined;
    }
    if (!entry) {
      const db = new Database(file, { readonly: true, fileMustExist: true });
      db.pragma('query_only = ON');
      entry = { db, statements: new StatementCache(db), generation, dataVersion, schemaVersion: schemaVersionOf(db) };
      files.set(file, entry);
    } else if (entry.dataVersion !== dataVersion) {
      // A replica's file is written by its log applier, not through SQLite: drop the cached pages,
      // as the node's own reader does (replica-database.ts, refreshReader).
      entry.db.pragma('shrink_memory');
      entry.dataVersion = dataVersion;
    }
    // On a Primary too the schema changes under the cached statements (through the WAL, which
    // SQLite follows, but their cached column names would not): checked on every request.
    const schemaVersion = schemaVersionOf(entry.db);
    if (schemaVersion !== entry.schemaVersion) {
      entry.statements.clear();
      entry.schemaVersion = schemaVersion;
    }
    return entry;
  };

  process.on('message', (request: SandboxRequest) => {
    if (request.type === 'forget') {
      files.get(request.file)?.db.close();
      files.delete(request.file);
      return;
    }
    const { id, statements, firstIndex, limits } = request;
    const budget = new ResultBudget(limits);
    budget.rows = request.rows;
    budget.bytes = request.bytes;
    const samples: StatementSample[] | undefined = request.record === true ? [] : undefined;
    const run = { admin: request.admin, budget, exact: request.exact, ...(samples ? { samples } : {}) };
    deadline[0] = Date.now() + limits.statementTimeoutMs * statements.length + 5000;
    let reply: SandboxReply;
    let db: Database.Database | undefined;
    try {
      const entry = open(request.file, request.generation, request.dataVersion);
      db = entry.db;
      const results: StatementResult[] = [];
      if (statements.length > 1) db.exec('BEGIN');
      statements.forEach((statement, offset) => {
        if (offset > 0) send({ type: 'progress', id, index: firstIndex + offset } satisfies SandboxReply);
        results.push(runStatement(entry.statements, entry.db, statement, firstIndex + offset, run));
      });
      reply = { type: 'done', id, results, rows: budget.rows, bytes: budget.bytes, ...(samples ? { samples: withoutSql(samples) } : {}) };
    } catch (caught) {
      const error = caught instanceof LitebaseError ? caught : toStatementError(caught, firstIndex);
      reply = {
        type: 'error',
        id,
        ...(samples ? { samples: withoutSql(samples) } : {}),
        error: {
          code: error.code,
          message: error.message,
          status: error.status,
          details: error.details,
          retryAfterSeconds: error.retryAfterSeconds,
        },
      };
    } finally {
      // Never keep a read snapshot between requests.
      if (db?.inTransaction) db.exec('ROLLBACK');
      deadline[0] = 0;
    }
    send(reply);
  });
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready' } satisfies SandboxReply);
}

function withoutSql(samples: StatementSample[]): SentSample[] {
  return samples.map(({ sql: _sql, ...rest }) => rest);
}

function schemaVersionOf(db: Database.Database): number {
  return db.pragma('schema_version', { simple: true }) as number;
}

main();
