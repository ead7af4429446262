import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import {
  LitebaseClientError,
  type LitebaseClient,
  type LitebaseTransaction,
  type QueryResponse,
  type Statement,
} from '../../client/client.js';
import type { NodeErrorCode } from '../../error-codes.js';
import type { SqlValue } from '../../sql/values.js';
import type { RequestCanceller } from './cancellable-client.js';
import { DOT_HELP, isDotCommand, parseDotCommand, type DotCommand } from './dot-commands.js';
import { formatResult, type OutputMode } from './result-format.js';
import { ShellError } from './shell-error.js';
import { splitStatements, transactionControl } from './statement-splitter.js';

/** Where the session prints: results and notes to `out`, nothing else (errors are thrown). */
export interface ShellOutput {
  out(text: string): void;
}

export interface ShellSessionOptions {
  client: LitebaseClient;
  canceller: RequestCanceller;
  database: string;
  output: ShellOutput;
  /** A person at a terminal: notes such as "transaction open until ..." are printed. */
  interactive: boolean;
  /** Asked of the server at BEGIN (it caps it at its own maximum). */
  transactionTimeoutMs: number;
}

/** What a line of input asks of the shell after it ran. */
export type LineOutcome = 'continue' | 'quit';

/** `.read` files reading `.read` files: a loop of them stops here. */
const MAX_READ_DEPTH = 16;
/** Codes by which the server says a transaction it was asked about is over. */
const TRANSACTION_GONE = new Set<LitebaseClientError['code']>(['TRANSACTION_ENDED', 'TRANSACTION_NOT_FOUND']);

/**
 * One shell on one database: the statement being typed, the open interactive transaction, the
 * output mode and the timer. Lines go in; complete statements go to the server one request each,
 * through the transaction while one is open. Failures are thrown as ShellErrors (the REPL prints
 * them and goes on; a script stops at the first).
 */
export class ShellSession {
  mode: OutputMode = 'table';
  timer = false;
  private buffer = '';
  private transaction: LitebaseTransaction | null = null;
  private running = false;
  private readDepth = 0;

  constructor(private readonly options: ShellSessionOptions) {}

  /** Whether a statement has begun and waits for its `;`. */
  get pending(): boolean {
    return this.buffer !== '';
  }

  get inTransaction(): boolean {
    return this.transaction !== null;
  }

  /** Whether a request is on its way (Ctrl-C then cancels it rather than the input). */
  get busy(): boolean {
    return this.running;
  }

  /** Forget the statement typed so far (Ctrl-C at the prompt). */
  clearInput(): void {
    this.buffer = '';
  }

  /** Stop waiting for the running request; it fails with CANCELLED. */
  cancel(): void {
    this.options.canceller.cancel();
  }

  /** One line of input: a dot-command, or SQL to add to the statement being typed. */
  async runLine(line: string): Promise<LineOutcome> {
    if (!this.pending && isDotCommand(line)) return this.runDotCommand(parseDotCommand(line));
    const { statements, rest, pending } = splitStatements(`${this.buffer}${line}\n`);
    this.buffer = pending ? rest : '';
    try {
      for (const sql of statements) await this.runStatement(sql);
    } catch (error) {
      // The rest of the input went with the failed statement; the next line starts afresh.
      this.buffer = '';
      throw error;
    }
    return 'continue';
  }

  /**
   * Lines from a script (stdin or a `.read` file): stops at the first error, which is thrown with
   * where it happened. Input that ends inside a statement is an error too.
   */
  async runLines(lines: AsyncIterable<string> | Iterable<string>, source: string): Promise<LineOutcome> {
    let number = 0;
    try {
      for await (const line of lines) {
        number += 1;
        if ((await this.runLine(line)) === 'quit') return 'quit';
      }
      if (this.pending) {
        const start = this.buffer.trim().split('\n')[0] ?? '';
        throw new ShellError(
          'INCOMPLETE_STATEMENT',
          `the input ended inside a statement (no ";" after ${JSON.stringify(start.slice(0, 60))})`,
        );
      }
    } catch (error) {
      this.buffer = '';
      const shellError = toShellError(error);
      throw new ShellError(shellError.code, `${shellError.message} (${source} line ${number})`);
    }
    return 'continue';
  }

  /**
   * The end of the session: an open transaction is rolled back (as the server would do at its
   * timeout). Answers whether there was one to roll back.
   */
  async close(): Promise<boolean> {
    const transaction = this.transaction;
    if (transaction === null) return false;
    this.transaction = null;
    await transaction.rollback().catch(() => undefined);
    return true;
  }

  private async runStatement(sql: string): Promise<void> {
    const started = performance.now();
    await this.request(async () => {
      switch (transactionControl(sql)) {
        case 'begin':
          return this.begin();
        case 'commit':
          return this.end('commit');
        case 'rollback':
          return this.end('rollback');
        case null:
          return this.print(await this.query(sql), this.transaction === null);
      }
    });
    if (this.timer) this.options.output.out(`Run time: ${((performance.now() - started) / 1000).toFixed(3)} s`);
  }

  private async begin(): Promise<void> {
    if (this.transaction !== null) throw new ShellError('TRANSACTION_OPEN', 'a transaction is already open: COMMIT or ROLLBACK it first');
    this.transaction = await this.options.client.beginTransaction(this.options.database, { timeoutMs: this.options.transactionTimeoutMs });
    const seconds = Math.max(0, Math.round((Date.parse(this.transaction.expiresAt) - Date.now()) / 1000));
    this.note(`transaction open; the server rolls it back if it is still open in ${seconds} s (${this.transaction.expiresAt})`);
  }

  private async end(how: 'commit' | 'rollback'): Promise<void> {
    const transaction = this.transaction;
    if (transaction === null) throw new ShellError('NO_TRANSACTION', `no transaction is open: there is nothing to ${how.toUpperCase()}`);
    // Whatever the answer, the transaction is over for the shell: a failed COMMIT is rolled back
    // by the server, and one that never arrived ends at the server's timeout.
    this.transaction = null;
    if (how === 'commit') {
      const answer = await transaction.commit();
      this.note(`committed, position ${answer.position}`);
    } else {
      await transaction.rollback();
      this.note('rolled back');
    }
  }

  private async query(sql: string, params?: SqlValue[]): Promise<QueryResponse> {
    const statement: Statement = params === undefined ? { sql } : { sql, params };
    if (this.transaction === null) return this.options.client.query(this.options.database, [statement]);
    try {
      return await this.transaction.query([statement]);
    } catch (error) {
      if (error instanceof LitebaseClientError && TRANSACTION_GONE.has(error.code)) {
        this.transaction = null;
        throw new ShellError(error.code, `${error.message}; the shell has left the transaction`);
      }
      throw error;
    }
  }

  private print(answer: QueryResponse, committed: boolean): void {
    for (const result of answer.results) {
      const text = formatResult(result, this.mode, committed ? { position: answer.position } : {});
      if (text !== '') this.options.output.out(text);
    }
  }

  /** Run one request that Ctrl-C may cancel; its failure comes back as a ShellError. */
  private async request(work: () => Promise<void>): Promise<void> {
    const signal = this.options.canceller.signal;
    this.running = true;
    try {
      await work();
    } catch (error) {
      if (signal.aborted) {
        const after = this.transaction === null ? '' : ' inside the transaction, which stays open';
        throw new ShellError('CANCELLED', `statement cancelled; the server may still finish it${after}`);
      }
      throw toShellError(error);
    } finally {
      this.running = false;
    }
  }

  private note(text: string): void {
    if (this.options.interactive) this.options.output.out(text);
  }

  private async runDotCommand(command: DotCommand): Promise<LineOutcome> {
    const out = (text: string) => this.options.output.out(text);
    switch (command.name) {
      case 'help':
        out(DOT_HELP);
        break;
      case 'quit':
        return 'quit';
      case 'mode':
        if (command.mode === undefined) out(`current output mode: ${this.mode}`);
        else this.mode = command.mode;
        break;
      case 'timer':
        this.timer = command.on;
        break;
      case 'tables': {
        const names = await this.schemaRows(
          `SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'` +
            `${command.pattern === undefined ? '' : ' AND name LIKE ?'} ORDER BY name`,
          command.pattern,
        );
        if (names.length > 0) out(names.join('\n'));
        break;
      }
      case 'schema': {
        const statements = await this.schemaRows(
          `SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'` +
            `${command.pattern === undefined ? '' : ' AND tbl_name LIKE ?'}` +
            ` ORDER BY tbl_name, CASE type WHEN 'table' THEN 0 WHEN 'view' THEN 0 WHEN 'index' THEN 1 ELSE 2 END, name`,
          command.pattern,
        );
        if (statements.length > 0) out(statements.map((sql) => `${sql};`).join('\n'));
        break;
      }
      case 'read':
        return this.read(command.file);
    }
    return 'continue';
  }

  /** The first column of a query on the schema (through the open transaction, so it sees its changes). */
  private async schemaRows(sql: string, pattern: string | undefined): Promise<string[]> {
    let rows: SqlValue[][] = [];
    await this.request(async () => {
      const answer = await this.query(sql, pattern === undefined ? undefined : [pattern]);
      rows = answer.results[0]?.rows ?? [];
    });
    return rows.map((row) => String(row[0]));
  }

  private async read(file: string): Promise<LineOutcome> {
    if (this.readDepth >= MAX_READ_DEPTH) throw new ShellError('INVALID_COMMAND', `.read: files nested more than ${MAX_READ_DEPTH} deep`);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      throw new ShellError('FILE_UNREADABLE', `cannot read ${file}: ${(error as Error).message}`);
    }
    this.readDepth += 1;
    try {
      return await this.runLines(text.replace(/\r?\n$/, '').split(/\r?\n/), file);
    } finally {
      this.readDepth -= 1;
    }
  }
}

/** Any failure as `CODE: message`, the way the other commands print theirs. */
export function toShellError(error: unknown): ShellError {
  if (error instanceof ShellError) return error;
  if (error instanceof LitebaseClientError) {
    const retry = error.retryAfter === undefined ? '' : ` (retry after ${error.retryAfter} s)`;
    return new ShellError(error.code, `${error.message}${retry}`);
  }
  // A CliUsageError's code, or Node's own (ENOENT, EPIPE, ...), printed as it comes.
  if (error instanceof Error && 'code' in error && typeof error.code === 'string')
    return new ShellError(error.code as NodeErrorCode, error.message);
  return new ShellError('INTERNAL', error instanceof Error ? (error.stack ?? error.message) : String(error));
}
