import type { Engine } from '../../node/node-databases.js';
import { PrimaryDatabase } from '../../engine/primary-database.js';
import { NeedsPrimaryError } from '../../engine/replica-database.js';
import { readOnlyKey, type StatementAccess, type StatementInput, type StatementResult } from '../../engine/executor.js';
import { LitebaseError } from '../../errors.js';
import { cursorEntries, evaluateCondition, type StepOutcome } from './batch.js';
import type {
  CursorEntry,
  HranaBatch,
  HranaBatchResult,
  HranaDescribeResult,
  HranaError,
  HranaStmt,
  HranaStmtResult,
  StreamRequest,
  StreamResponse,
  StreamResult,
} from './protocol.js';
import { analyzeStatement, isExplain, parameterSlots, splitStatements, type TransactionControl } from './sql-text.js';
import type { HranaStream } from './streams.js';
import { bindArguments, EMPTY_RESULT, HranaRequestError, toHranaError, toStmtResult } from './values.js';

/**
 * Thrown (never to a client) on a Replica when a request needs the Primary: a write, or a write
 * transaction. Nothing the Replica ran had an effect (it only reads), so the route forwards the
 * whole request to the Primary.
 */
export class NeedsPrimary extends Error {
  constructor() {
    super('the request needs the Primary');
    this.name = 'NeedsPrimary';
  }
}

const CLOSED: StreamResponse = { type: 'close' };

/** Most SQL texts one stream may store (store_sql). */
const MAX_STORED_SQL = 1000;

/**
 * Runs a stream's requests on this node's engine for the database. Statements outside a
 * transaction run as the /v1 query route runs them (reads on the read connection, each write its
 * own transaction). BEGIN opens an engine interactive transaction on the Primary (it waits for the
 * write lock without blocking the event loop); a read-only BEGIN (libSQL's BEGIN READONLY, or any
 * BEGIN with a key that may only read) runs its statements as reads, each on the newest snapshot.
 */
export class StreamSession {
  /** The newest position an answer of this request reflects. */
  position: bigint;
  /** A deferred read transaction was begun by this request (so the whole request can move to the Primary). */
  private deferredBegunHere = false;
  /** The request holds a COMMIT or ROLLBACK (a libSQL batch does): a transaction it begins also ends in it. */
  private requestEndsTransaction = false;

  constructor(
    private readonly engine: Engine,
    private readonly stream: HranaStream,
    private readonly access: StatementAccess,
    /** The lifetime cap of an interactive transaction; the stream's idle timer ends it sooner. */
    private readonly transactionTimeoutMs: number,
  ) {
    this.position = engine.position;
  }

  get isAutocommit(): boolean {
    return this.stream.transaction === undefined;
  }

  async runPipeline(requests: readonly StreamRequest[]): Promise<StreamResult[]> {
    this.requestEndsTransaction = requests.some((request) => this.endsTransaction(request));
    const results: StreamResult[] = [];
    for (const request of requests) {
      try {
        // Many requests answer without waiting (close, store_sql, ...): awaited only when they did
        // not, since every await and every async function between here and the engine costs a
        // turn of the microtask queue and a promise.
        const response = this.runRequest(request);
        results.push({ type: 'ok', response: response instanceof Promise ? await response : response });
      } catch (error) {
        results.push({ type: 'error', error: this.toError(error) });
      }
    }
    return results;
  }

  /** A v3 cursor: the batch's result as cursor entries. */
  async runCursor(batch: HranaBatch): Promise<CursorEntry[]> {
    this.requestEndsTransaction = this.endsTransaction({ type: 'batch', batch });
    return cursorEntries(await this.runBatch(batch));
  }

  /** A request's response; a promise only when it had to wait (for the engine). */
  private runRequest(request: StreamRequest): StreamResponse | Promise<StreamResponse> {
    if (this.stream.closed) throw new HranaRequestError('the stream is closed', 'STREAM_CLOSED');
    switch (request.type) {
      case 'close': {
        const closed = this.close();
        return closed === undefined ? CLOSED : closed.then(() => CLOSED);
      }
      case 'execute':
        return this.execute(request.stmt).then((result) => ({ type: 'execute', result }));
      case 'batch':
        return this.runBatch(request.batch).then((result) => ({ type: 'batch', result }));
      case 'sequence':
        return this.runSequence(this.sqlOf(request));
      case 'describe':
        return { type: 'describe', result: this.describe(this.sqlOf(request)) };
      case 'store_sql':
        if (this.stream.sqls.has(request.sql_id))
          throw new HranaRequestError(`SQL text ${request.sql_id} is already stored on this stream`);
        if (this.stream.sqls.size >= MAX_STORED_SQL) throw new HranaRequestError(`a stream may store at most ${MAX_STORED_SQL} SQL texts`);
        this.stream.sqls.set(request.sql_id, request.sql);
        return { type: 'store_sql' };
      case 'close_sql':
        this.stream.sqls.delete(request.sql_id);
        return { type: 'close_sql' };
      case 'get_autocommit':
        return { type: 'get_autocommit', is_autocommit: this.isAutocommit };
      default:
        throw new HranaRequestError(`unknown request type ${JSON.stringify((request as { type?: unknown }).type)}`);
    }
  }

  /** Close the stream; an open write transaction is rolled back (the promise: until it is). */
  close(): Promise<void> | undefined {
    this.stream.closed = true;
    const transaction = this.stream.transaction;
    this.stream.transaction = undefined;
    if (transaction?.kind === 'write' && this.engine instanceof PrimaryDatabase && this.engine.hasTransaction(transaction.id)) {
      return this.engine.rollbackTransaction(transaction.id);
    }
    return undefined;
  }

  private async runSequence(sql: string): Promise<StreamResponse> {
    for (const statement of splitStatements(sql)) await this.execute({ sql: statement, want_rows: false });
    return { type: 'sequence' };
  }

  private async runBatch(batch: HranaBatch): Promise<HranaBatchResult> {
    const outcomes: StepOutcome[] = [];
    const result: HranaBatchResult = { step_results: [], step_errors: [] };
    for (const step of batch.steps) {
      if (step.condition && !evaluateCondition(step.condition, outcomes, this.isAutocommit)) {
        outcomes.push('skipped');
        result.step_results.push(null);
        result.step_errors.push(null);
        continue;
      }
      try {
        result.step_results.push(await this.execute(step.stmt));
        result.step_errors.push(null);
        outcomes.push('ok');
      } catch (error) {
        result.step_results.push(null);
        result.step_errors.push(this.toError(error));
        outcomes.push('error');
      }
    }
    return result;
  }

  /** True when the request holds a COMMIT or ROLLBACK statement (looked at before anything runs). */
  private endsTransaction(request: StreamRequest): boolean {
    if (request.type === 'execute') return this.ends(request.stmt);
    if (request.type === 'batch') return request.batch.steps.some((step) => this.ends(step.stmt));
    return false;
  }

  private ends(source: { sql?: string | null; sql_id?: number | null }): boolean {
    const sql =
      typeof source.sql === 'string' ? source.sql : typeof source.sql_id === 'number' ? this.stream.sqls.get(source.sql_id) : undefined;
    const kind = sql === undefined ? undefined : analyzeStatement(sql).control?.kind;
    return kind === 'commit' || kind === 'rollback';
  }

  private sqlOf(source: { sql?: string | null; sql_id?: number | null }): string {
    if (typeof source.sql === 'string') return source.sql;
    if (typeof source.sql_id === 'number') {
      const sql = this.stream.sqls.get(source.sql_id);
      if (sql === undefined) throw new HranaRequestError(`no SQL text ${source.sql_id} is stored on this stream`, 'SQL_ID_NOT_FOUND');
      return sql;
    }
    throw new HranaRequestError('give "sql" or "sql_id"');
  }

  /** Not async itself (the promise is run's): one async function fewer between a request and the engine. */
  private execute(stmt: HranaStmt): Promise<HranaStmtResult> {
    try {
      const sql = this.sqlOf(stmt);
      const text = analyzeStatement(sql);
      if (text.control) return this.control(text.control).then(() => EMPTY_RESULT);
      if (text.foreignKeysSetting) return Promise.resolve(EMPTY_RESULT);
      const bound = bindArguments(sql, stmt.args, stmt.named_args, text.slots);
      return this.run({ sql, params: bound.params, named: bound.named }, stmt.want_rows !== false);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private async run(input: StatementInput, wantRows: boolean): Promise<HranaStmtResult> {
    const transaction = this.stream.transaction;
    if (transaction?.kind === 'write') {
      const primary = this.primary();
      try {
        const outcome = await primary.transactionQuery(transaction.id, [input], this.access);
        this.note(outcome.position);
        return toStmtResult(outcome.results[0] as StatementResult, wantRows);
      } finally {
        // SQLite ends the transaction itself after some failures; the stream is then in autocommit.
        if (!primary.hasTransaction(transaction.id)) this.stream.transaction = undefined;
      }
    }
    const readOnly = transaction?.kind === 'read';
    const access: StatementAccess = readOnly ? { ...this.access, write: false } : this.access;
    try {
      const outcome =
        this.engine instanceof PrimaryDatabase
          ? await this.engine.query([input], 'transaction', undefined, access)
          : await this.engine.query([input], undefined, access);
      this.note(outcome.position);
      const [result] = outcome.results;
      if (!result || 'error' in result) throw new LitebaseError('STATEMENT_FAILED', 'the statement gave no result', { status: 500 });
      return toStmtResult(result, wantRows);
    } catch (error) {
      if (error instanceof NeedsPrimaryError && transaction?.kind === 'read' && transaction.deferred === true) {
        // A Replica's deferred transaction writes: begun in this request, the whole request goes to
        // the Primary and runs there from its BEGIN; begun earlier, its reads cannot move along.
        if (this.deferredBegunHere) throw new NeedsPrimary();
        throw new LitebaseError(
          'SQLITE_READONLY',
          'this deferred transaction began on a Replica in an earlier request and cannot write; begin it with BEGIN IMMEDIATE, or send BEGIN and the write in one request',
          { status: 400 },
        );
      }
      const writes =
        error instanceof NeedsPrimaryError ||
        (error instanceof LitebaseError && error.code === 'PERMISSION_DENIED' && error.details.action === 'write');
      if (writes && readOnly && this.access.write)
        throw new LitebaseError('SQLITE_READONLY', 'attempt to write a readonly database (the transaction began READONLY)', {
          status: 400,
        });
      if (error instanceof NeedsPrimaryError) {
        if (!this.access.write) throw readOnlyKey(this.stream.database);
        throw new NeedsPrimary();
      }
      throw error;
    }
  }

  private async control(control: TransactionControl): Promise<void> {
    const transaction = this.stream.transaction;
    if (control.kind === 'begin') {
      if (transaction) throw new LitebaseError('SQLITE_ERROR', 'cannot start a transaction within a transaction', { status: 400 });
      const mayWrite = this.access.write && control.mode !== 'readonly';
      if (!mayWrite) {
        if (control.mode === 'immediate' || control.mode === 'exclusive') throw readOnlyKey(this.stream.database);
        this.stream.transaction = { kind: 'read' };
        return;
      }
      if (control.mode === 'deferred' && this.requestEndsTransaction && !(this.engine instanceof PrimaryDatabase)) {
        // On a Replica a deferred transaction that ends in this request (libSQL's default batch
        // mode) reads here until it writes: a batch of reads is answered where it arrived.
        this.stream.transaction = { kind: 'read', deferred: true };
        this.deferredBegunHere = true;
        return;
      }
      const { id } = await this.primary().beginTransaction(this.transactionTimeoutMs);
      this.stream.transaction = { kind: 'write', id };
      return;
    }
    if (control.kind === 'savepoint' || control.kind === 'release' || control.kind === 'rollback_to') {
      if (!transaction) {
        throw new LitebaseError('TRANSACTION_CONTROL_NOT_ALLOWED', 'savepoints work only inside a transaction begun with BEGIN', {
          status: 400,
        });
      }
      // A read transaction has nothing to undo: its savepoints are marks without effect.
      if (transaction.kind === 'write') this.primary().transactionSavepoint(transaction.id, control.kind, control.name);
      return;
    }
    if (!transaction) {
      const verb = control.kind === 'commit' ? 'commit' : 'rollback';
      throw new LitebaseError('SQLITE_ERROR', `cannot ${verb} - no transaction is active`, { status: 400 });
    }
    this.stream.transaction = undefined;
    if (transaction.kind === 'read') return;
    const primary = this.primary();
    if (control.kind === 'commit') this.note(await primary.commitTransaction(transaction.id));
    else await primary.rollbackTransaction(transaction.id);
  }

  private describe(sql: string): HranaDescribeResult {
    const description = this.engine.describe(sql, this.access.admin);
    return {
      params: parameterSlots(sql).map((slot) => ({ name: slot.name })),
      cols: description.columns,
      is_explain: isExplain(sql),
      is_readonly: description.readonly,
    };
  }

  private primary(): PrimaryDatabase {
    if (this.engine instanceof PrimaryDatabase) return this.engine;
    throw new NeedsPrimary();
  }

  private note(position: bigint): void {
    if (position > this.position) this.position = position;
  }

  /**
   * An error inside a stream request: a Hrana error in the HTTP 200 answer. What makes the whole
   * request fail instead (the node cannot serve it now: 503, 429, 5xx; or it must go to the
   * Primary) is thrown on.
   */
  private toError(error: unknown): HranaError {
    if (error instanceof NeedsPrimary) throw error;
    if (error instanceof HranaRequestError) return { message: error.message, code: error.code };
    if (error instanceof LitebaseError && error.status < 500 && error.status !== 429) return toHranaError(error.code, error.message);
    throw error;
  }
}
