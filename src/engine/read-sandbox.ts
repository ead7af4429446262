import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type BetterSqlite3 from 'better-sqlite3';
import type { LimitsSettings } from './settings.js';
import { LitebaseError } from '../errors.js';
import {
  runReadOnly,
  RUNS_ELSEWHERE,
  type StatementCache,
  type StatementInput,
  type StatementResult,
  type StatementRun,
} from './executor.js';
import type { SandboxReply, SandboxRequest } from './read-sandbox-child.js';
import { statementTimeout } from './result-limits.js';

/**
 * Read processes: looping read statements run in child processes that can be killed.
 *
 * better-sqlite3 cannot interrupt SQLite (no sqlite3_interrupt, no progress handler), so a
 * statement that computes inside one step (an aggregate over an endless recursive CTE) would hold
 * the node's event loop forever; a worker thread cannot be stopped inside native code either. A
 * child process can: at the statement time limit the node kills it (SIGKILL), answers
 * `408 STATEMENT_TIMEOUT` and starts another on the next looping read.
 *
 * Only statements whose program has a loop go there (executor.ts decides with EXPLAIN, once per
 * cached statement): a point read stays on the node's own read connection, since the round trip to
 * a child (about 100 us) would cost as much as the read itself. Each child opens the database's
 * local file read-only and runs the whole request there (several statements in one snapshot).
 *
 * The engine keeps one `SandboxFile` per local file: it carries the file's generation (a new one
 * each time the file is rebuilt and reopened, so a child reopens it too), its data version (a
 * replica's applier writes the file directly; a child drops its cached pages when it changed),
 * and a gate that lets the applier wait until no child reads the file.
 */

/** Past the statement time limit, how long the node lets a child answer before killing it. */
const KILL_GRACE_MS = 50;

let nextGeneration = 1;

/** The child's entry: beside this file in the build; from the build when the sources run (vitest). */
function childEntry(): string {
  const beside = fileURLToPath(new URL('./read-sandbox-child.js', import.meta.url));
  if (existsSync(beside)) return beside;
  const built = fileURLToPath(new URL('../../dist/src/engine/read-sandbox-child.js', import.meta.url));
  if (existsSync(built)) return built;
  throw new LitebaseError('READ_PROCESS_UNAVAILABLE', `read process entry not found (${beside}); build with tsc`);
}

interface Pending {
  id: number;
  index: number;
  /** performance.now() when the statement at `index` started (for the run time of one that is killed). */
  startedAt: number;
  statements: readonly StatementInput[];
  firstIndex: number;
  timer: NodeJS.Timeout;
  resolve: (results: StatementResult[]) => void;
  reject: (error: Error) => void;
  run: StatementRun;
}

/** A statement whose read process was killed (or died) counts as one failed run, of the time it had. */
function recordKilled(pending: Pending, code: LitebaseError['code']): void {
  const statement = pending.statements[pending.index - pending.firstIndex];
  if (!pending.run.samples || !statement) return;
  const ended = performance.now();
  pending.run.samples.push({
    sql: statement.sql,
    ms: ended - pending.startedAt,
    at: performance.timeOrigin + ended,
    rowsRead: 0,
    rowsWritten: 0,
    error: code,
  });
}

class ReadProcess {
  readonly child: ChildProcess;
  pending: Pending | undefined;
  exited = false;
  /** Resolved once the process has started (about 100 ms): start-up is not counted as run time. */
  readonly ready: Promise<void>;
  private started!: (error?: Error) => void;

  constructor(private readonly onExit: (process: ReadProcess) => void) {
    this.ready = new Promise<void>((resolve, reject) => {
      this.started = (error) => (error ? reject(error) : resolve());
    });
    this.ready.catch(() => undefined);
    this.child = fork(childEntry(), [], { serialization: 'json', execArgv: [], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    // Idle children do not keep the node alive; a running statement's timer does.
    this.child.unref();
    this.child.channel?.unref();
    this.child.on('message', (reply: SandboxReply) => this.onReply(reply));
    this.child.on('exit', () => {
      this.exited = true;
      this.started(new LitebaseError('READ_PROCESS_FAILED', 'the read process could not start'));
      const pending = this.pending;
      this.pending = undefined;
      if (pending) {
        clearTimeout(pending.timer);
        recordKilled(pending, 'READ_PROCESS_FAILED');
        pending.reject(
          new LitebaseError('READ_PROCESS_FAILED', 'the read process ended while running the statement', {
            details: { statement: pending.index },
          }),
        );
      }
      this.onExit(this);
    });
    this.child.on('error', () => undefined);
  }

  /** Keeps the node alive while this process works for it (idle ones do not). */
  hold(held: boolean): void {
    if (held) {
      this.child.ref();
      this.child.channel?.ref();
    } else {
      this.child.unref();
      this.child.channel?.unref();
    }
  }

  send(request: SandboxRequest): void {
    if (!this.exited) this.child.send(request);
  }

  private onReply(reply: SandboxReply): void {
    if (reply.type === 'ready') {
      this.started();
      return;
    }
    const pending = this.pending;
    if (!pending || pending.id !== reply.id) return;
    if (reply.type === 'progress') {
      pending.index = reply.index;
      pending.startedAt = performance.now();
      pending.timer.refresh();
      return;
    }
    this.pending = undefined;
    clearTimeout(pending.timer);
    // One sample per statement run, in order from the request's first (read-sandbox-child.ts).
    reply.samples?.forEach((sample, offset) => {
      const statement = pending.statements[offset];
      if (statement) pending.run.samples?.push({ ...sample, sql: statement.sql });
    });
    if (reply.type === 'done') {
      pending.run.budget.rows = reply.rows;
      pending.run.budget.bytes = reply.bytes;
      pending.resolve(reply.results);
    } else {
      const { code, message, status, details, retryAfterSeconds } = reply.error;
      pending.reject(
        new LitebaseError(code, message, { status, details, ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }) }),
      );
    }
  }

  kill(): void {
    this.exited = true;
    this.child.kill('SIGKILL');
  }
}

/** The node's read processes: at most `size`, started when first needed. */
export class ReadSandbox {
  private readonly processes = new Set<ReadProcess>();
  private readonly idle: ReadProcess[] = [];
  private readonly waiting: Array<{ take: (process: ReadProcess) => void; timer: NodeJS.Timeout }> = [];
  private nextId = 1;

  constructor(private readonly size: number) {}

  /** Run a request's read statements in a read process; killed past the statement time limit. */
  async run(
    file: SandboxFile,
    statements: readonly StatementInput[],
    run: StatementRun,
    firstIndex: number,
    waitTimeoutMs: number,
  ): Promise<StatementResult[]> {
    const process = await this.acquire(waitTimeoutMs);
    const limits = run.budget.limits;
    const timeoutMs = limits.statementTimeoutMs;
    process.hold(true);
    try {
      await process.ready;
      return await new Promise<StatementResult[]>((resolve, reject) => {
        const id = this.nextId++;
        const pending: Pending = {
          id,
          index: firstIndex,
          startedAt: performance.now(),
          statements,
          firstIndex,
          run,
          resolve,
          reject,
          timer: setTimeout(() => {
            process.pending = undefined;
            process.kill();
            recordKilled(pending, 'STATEMENT_TIMEOUT');
            reject(statementTimeout(limits, pending.index));
          }, timeoutMs + KILL_GRACE_MS),
        };
        process.pending = pending;
        process.send({
          type: 'run',
          id,
          file: file.path,
          generation: file.generation,
          dataVersion: file.dataVersion,
          statements: statements.map(({ sql, params, named }) => ({
            sql,
            ...(params === undefined ? {} : { params }),
            ...(named === undefined ? {} : { named }),
          })),
          firstIndex,
          admin: run.admin,
          exact: run.exact === true,
          limits: {
            maxResultRows: limits.maxResultRows,
            maxResultBytes: limits.maxResultBytes,
            statementTimeoutMs: limits.statementTimeoutMs,
          },
          rows: run.budget.rows,
          bytes: run.budget.bytes,
          record: run.samples !== undefined,
        });
      });
    } finally {
      process.hold(false);
      this.release(process);
    }
  }

  /** Ask every read process to close its connection to `path` (the file is about to be replaced). */
  forget(path: string): void {
    for (const process of this.processes) process.send({ type: 'forget', file: path });
  }

  close(): void {
    for (const process of this.processes) process.kill();
  }

  private acquire(waitTimeoutMs: number): Promise<ReadProcess> {
    const idle = this.idle.pop();
    if (idle) return Promise.resolve(idle);
    if (this.processes.size < this.size) return Promise.resolve(this.spawn());
    return new Promise((resolve, reject) => {
      const waiter = {
        take: resolve,
        timer: setTimeout(() => {
          this.waiting.splice(this.waiting.indexOf(waiter), 1);
          reject(
            new LitebaseError('READ_PROCESSES_BUSY', `all ${this.size} read processes stayed busy for ${waitTimeoutMs} ms; retry later`),
          );
        }, waitTimeoutMs),
      };
      this.waiting.push(waiter);
    });
  }

  private spawn(): ReadProcess {
    const process = new ReadProcess((ended) => this.forgetProcess(ended));
    this.processes.add(process);
    return process;
  }

  private release(process: ReadProcess): void {
    if (process.exited || process.pending) {
      // Killed: its place goes to a new process, started for the next waiter if there is one.
      this.processes.delete(process);
      // Started now, so that the next looping read does not wait for it.
      const replacement = this.spawn();
      const waiter = this.waiting.shift();
      if (waiter) {
        clearTimeout(waiter.timer);
        waiter.take(replacement);
      } else {
        this.idle.push(replacement);
      }
      return;
    }
    const waiter = this.waiting.shift();
    if (waiter) {
      clearTimeout(waiter.timer);
      waiter.take(process);
    } else {
      this.idle.push(process);
    }
  }

  private forgetProcess(process: ReadProcess): void {
    this.processes.delete(process);
    const at = this.idle.indexOf(process);
    if (at >= 0) this.idle.splice(at, 1);
  }
}

let shared: ReadSandbox | undefined;

/** The node's read processes (one pool per node process, sized by the first caller's config). */
function sandbox(size: number): ReadSandbox {
  shared ??= new ReadSandbox(size);
  return shared;
}

/** Stop the node's read processes. */
export function closeReadSandbox(): void {
  shared?.close();
  shared = undefined;
}

/**
 * One local database file as the read processes see it. The engine calls `reopened()` when it
 * opens new connections to the file, `changed()` when its log applier wrote into it, and wraps
 * anything that rewrites or replaces the file in `exclusive()`; work that reads the file for a
 * while on its own connection runs in `reading()`.
 */
export class SandboxFile {
  generation = nextGeneration++;
  dataVersion = 0;
  private active = 0;
  private exclusiveWaiting = 0;
  private idleWaiters: Array<() => void> = [];
  private readWaiters: Array<() => void> = [];

  constructor(
    readonly path: string,
    private readonly limits: Pick<LimitsSettings, 'readProcesses' | 'waitTimeoutMs'>,
  ) {}

  get enabled(): boolean {
    return this.limits.readProcesses > 0;
  }

  reopened(): void {
    this.generation = nextGeneration++;
  }

  changed(): void {
    this.dataVersion += 1;
  }

  /**
   * Run `body` while no read process reads the file (those reading are waited for, new ones wait).
   * A synchronous body runs before any read can start again.
   */
  async exclusive<T>(body: () => T | Promise<T>): Promise<T> {
    this.exclusiveWaiting += 1;
    try {
      while (this.active > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      return await body();
    } finally {
      this.exclusiveWaiting -= 1;
      if (this.exclusiveWaiting === 0) for (const wake of this.readWaiters.splice(0)) wake();
    }
  }

  /** The file is about to be rebuilt: read processes close it, and reopen the new one. */
  forget(): void {
    this.reopened();
    shared?.forget(this.path);
  }

  /** Run a request's read statements: in-process unless one of them loops (see the top of this file). */
  async runRead(
    cache: StatementCache,
    reader: BetterSqlite3.Database,
    statements: readonly StatementInput[],
    run: StatementRun,
    firstIndex = 0,
  ): Promise<StatementResult[]> {
    if (!this.enabled) return runReadOnly(cache, reader, statements, run, firstIndex);
    const { rows, bytes } = run.budget;
    const sampled = run.samples?.length;
    run.elsewhere = true;
    try {
      return runReadOnly(cache, reader, statements, run, firstIndex);
    } catch (error) {
      if (error !== RUNS_ELSEWHERE) throw error;
    } finally {
      run.elsewhere = false;
    }
    // What ran before the looping statement is run again there, in one snapshot with it (and
    // counted there, once).
    run.budget.rows = rows;
    run.budget.bytes = bytes;
    if (run.samples && sampled !== undefined) run.samples.length = sampled;
    return this.reading(() => sandbox(this.limits.readProcesses).run(this, statements, run, firstIndex, this.limits.waitTimeoutMs));
  }

  /**
   * Run `body` as a reader of the file, like a read process: `exclusive()` waits until it ends,
   * and it waits for a pending `exclusive()` to begin. For reads outside a read process that span
   * many turns of the event loop (a backup copying the file).
   */
  async reading<T>(body: () => Promise<T>): Promise<T> {
    while (this.exclusiveWaiting > 0) await new Promise<void>((resolve) => this.readWaiters.push(resolve));
    this.active += 1;
    try {
      return await body();
    } finally {
      this.active -= 1;
      if (this.active === 0) for (const wake of this.idleWaiters.splice(0)) wake();
    }
  }
}
