import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { track } from './cleanup.js';
import { repoRoot } from './server.js';

/**
 * Process helpers of the restore benchmark: a long-running child (litebase serve, litestream
 * replicate) that is stopped with SIGTERM and waited for, and a command run to its exit with its wall
 * time and timestamped output (for the restores). Every child is registered with cleanup.ts.
 */

export interface OutputLine {
  /** Milliseconds since the process was spawned. */
  at_ms: number;
  stream: 'stdout' | 'stderr';
  line: string;
}

const MAX_LINES = 400;

/** Environment without any inherited LITEBASE_* variable, plus `extra`. */
export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('LITEBASE_')) env[name] = value;
  }
  return { ...env, ...extra };
}

export class ChildRun {
  readonly lines: OutputLine[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private exitInfo: string | undefined;
  private readonly startedAt = performance.now();
  private readonly untrack: () => void;
  private readonly partial = { stdout: '', stderr: '' };

  constructor(
    readonly label: string,
    readonly child: ChildProcess,
  ) {
    child.stdout?.on('data', (chunk: Buffer) => this.collect('stdout', chunk));
    child.stderr?.on('data', (chunk: Buffer) => this.collect('stderr', chunk));
    this.exited = new Promise((resolve) => {
      child.once('error', (error) => {
        this.exitInfo = `spawn error: ${error.message}`;
        resolve({ code: null, signal: null });
      });
      child.once('exit', (code, signal) => {
        this.exitInfo = signal ? `signal ${signal}` : `code ${String(code)}`;
        resolve({ code, signal });
      });
    });
    this.untrack = track({
      release: () => this.stop(),
      releaseNow: () => {
        if (this.running) child.kill('SIGKILL');
      },
    });
  }

  static start(label: string, command: string, args: string[], env: NodeJS.ProcessEnv, cwd = repoRoot()): ChildRun {
    return new ChildRun(label, spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  get running(): boolean {
    return this.exitInfo === undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  get exitDescription(): string {
    return this.exitInfo ?? 'running';
  }

  tail(count = 20): string[] {
    return count > 0 ? this.lines.slice(-count).map((line) => line.line) : [];
  }

  assertRunning(): void {
    if (!this.running) throw new Error(`${this.label} exited (${this.exitDescription}):\n${this.tail(30).join('\n')}`);
  }

  private collect(stream: 'stdout' | 'stderr', chunk: Buffer): void {
    const at = performance.now() - this.startedAt;
    const text = this.partial[stream] + chunk.toString('utf8');
    // Progress printers may rewrite one line with \r: treat it as a line break.
    const parts = text.split(/\r?\n|\r/);
    this.partial[stream] = parts.pop() ?? '';
    for (const line of parts) {
      if (line.trim() === '') continue;
      this.lines.push({ at_ms: Math.round(at), stream, line });
      if (this.lines.length > MAX_LINES) this.lines.splice(1, 1); // keep the first line and the tail
    }
  }

  /** SIGTERM, then SIGKILL after the grace period. Idempotent. */
  async stop(graceMs = 30_000): Promise<void> {
    if (this.running) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (this.running) this.child.kill('SIGKILL');
      }, graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    // Flush a last partial line.
    for (const stream of ['stdout', 'stderr'] as const) {
      if (this.partial[stream].trim() !== '')
        this.lines.push({ at_ms: Math.round(performance.now() - this.startedAt), stream, line: this.partial[stream] });
      this.partial[stream] = '';
    }
    this.untrack();
  }
}

export interface TimedRun {
  seconds: number;
  code: number | null;
  lines: OutputLine[];
  stdout: string;
}

/** Run a command to its end; the wall time is from spawn to exit. Throws on a non-zero exit. */
export async function timedRun(
  label: string,
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 15 * 60_000,
): Promise<TimedRun> {
  const started = performance.now();
  const run = ChildRun.start(label, command, args, env);
  const timer = setTimeout(() => run.child.kill('SIGKILL'), timeoutMs);
  const { code } = await run.exited;
  const seconds = (performance.now() - started) / 1000;
  clearTimeout(timer);
  await run.stop();
  const stdout = run.lines
    .filter((line) => line.stream === 'stdout')
    .map((line) => line.line)
    .join('\n');
  if (code !== 0) throw new Error(`${label} failed (${run.exitDescription}):\n${run.tail(30).join('\n')}`);
  return { seconds, code, lines: run.lines, stdout };
}

/** Total bytes of the regular files under `dir`, and how many files. */
export function folderBytes(dir: string, filter: (relative: string) => boolean = () => true): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  const walk = (current: string): void => {
    if (!existsSync(current)) return;
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      const full = path.join(current, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile() && filter(path.relative(dir, full))) {
        bytes += statSync(full).size;
        files++;
      }
    }
  };
  walk(dir);
  return { bytes, files };
}

/** The Litestream 0.3.13 binary shipped by the npm package @flydotio/litestream-linux-x64. */
export function litestreamBinary(): string {
  const binary = path.join(repoRoot(), 'node_modules', '@flydotio', 'litestream-linux-x64', 'litestream');
  if (!existsSync(binary)) throw new Error(`Litestream not found at ${binary} (npm package @flydotio/litestream-linux-x64)`);
  return binary;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Flush what the write phases left dirty (`sync`) and give the disk a second of quiet: a restore
 * timed while the kernel writes back hundreds of MiB of the archive it reads measures the writer,
 * not the restore. Done before each timed restore, Litebase's and Litestream's alike.
 */
export async function settleDisk(): Promise<void> {
  spawnSync('sync');
  await sleep(1000);
}
