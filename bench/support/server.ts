import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { track } from './cleanup.js';

/**
 * The repository root, found by walking up to bin/litebase.js rather than by a fixed number of
 * "..": this file runs compiled from dist/bench/support but the layout should not matter.
 */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'bin', 'litebase.js')) && existsSync(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot find the repository root (bin/litebase.js) above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

/** Where benchmark temp directories go: LITEBASE_BENCH_TMPDIR lets a user pick the disk under test. */
export function benchTmpRoot(): string {
  return process.env.LITEBASE_BENCH_TMPDIR ?? tmpdir();
}

export function makeTempDir(prefix: string): string {
  return mkdtempSync(path.join(benchTmpRoot(), prefix));
}

/**
 * `--shared-dir DIR[,DIR...]`: where the servers' data dirs (the shared folder: log, cluster state,
 * catalog) go instead of the temp root, e.g. a CephFS mount, while their local dirs stay under the
 * temp root on the local disk. Several DIRs are the same folder seen through different mounts (one
 * ceph-fuse client per node, as separate machines would have): node i uses DIR number i modulo
 * their count. The answer is the list, or what is wrong with the value.
 */
export function parseSharedDirs(value: string | undefined): string[] | string {
  if (value === undefined || value.trim() === '') return '--shared-dir needs a folder (or a comma-separated list of them)';
  const dirs = value.split(',').map((dir) => path.resolve(dir.trim()));
  for (const dir of dirs) {
    try {
      if (!statSync(dir).isDirectory()) return `--shared-dir: ${dir} is not a folder`;
    } catch (error) {
      return `--shared-dir: ${dir}: ${error instanceof Error ? error.message : String(error)}`;
    }
  }
  return dirs;
}

/**
 * A new folder under the first of `views` (the --shared-dir list), and its path through each of
 * them: `paths[i]` is the same folder seen through view i. Fails when a view does not see it (the
 * DIRs were not the same folder).
 */
export function makeSharedTempDir(views: readonly string[], prefix: string): { paths: string[]; remove: () => void } {
  const first = mkdtempSync(path.join(views[0]!, prefix));
  const name = path.basename(first);
  const paths = views.map((view) => path.join(view, name));
  const remove = (): void => rmSync(first, { recursive: true, force: true });
  const missing = paths.find((view) => !existsSync(view));
  if (missing !== undefined) {
    remove();
    throw new Error(`--shared-dir: ${first} is not visible as ${missing}: the DIRs must be the same folder through different mounts`);
  }
  return { paths, remove };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no free port'))));
    });
  });
}

export interface ServerOptions {
  /** Shown in errors and in the report ("litebase", "no-group-commit"). */
  label: string;
  groupCommit: boolean;
  rootKey: string;
  readyTimeoutMs?: number;
  /**
   * Put the data dir in a new folder under this one (--shared-dir, e.g. a CephFS mount) instead
   * of the temp root; the local dir stays under the temp root, on the local disk.
   */
  sharedDir?: string;
}

export interface JsonResponse {
  status: number;
  body: unknown;
  text: string;
}

/** What a server printed: at --log-level warn, every line is a warning or an error worth a look. */
export interface ServerLogSummary {
  lines: number;
  samples: string[];
}

/**
 * The line `litebase serve` prints once it listens (src/cli/serve.ts). It may come after /readyz
 * first answers 200, so a count of lines taken at readiness can miss it: it is not trouble.
 */
const STARTUP_BANNER = / listening on https?:\/\//;

/** Keep only this much of a process's output: enough to explain a failure, bounded under a log storm. */
const MAX_KEPT_LINES = 200;

/**
 * A `litebase serve` child process, run from the repository root: the last lines it printed (at
 * --log-level warn every line is worth a look), how it exited, and stopping it. BenchServer and
 * the cluster's nodes (cluster.ts) are each one of these plus what they know of their setup.
 */
export class ServeProcess {
  readonly exited: Promise<void>;
  private readonly kept: string[] = [];
  private partial = '';
  private printed = 0;
  /** Lines printed up to and including the start-up banner ("... listening on http..."), once seen. */
  private bannerAt = 0;
  /** Lines printed when `waitReady` saw the process ready. */
  private readyAt = 0;
  private exitInfo: string | undefined;
  private readonly listeners: ((line: string) => void)[] = [];

  private constructor(private readonly child: ChildProcess) {
    child.stdout?.on('data', (chunk: Buffer) => this.collect(chunk));
    child.stderr?.on('data', (chunk: Buffer) => this.collect(chunk));
    this.exited = new Promise((resolve) => {
      // A spawn failure emits 'error' and maybe never 'exit'; without this handler it would crash us.
      child.once('error', (error) => {
        this.exitInfo = `spawn error: ${error.message}`;
        resolve();
      });
      child.once('exit', (code, signal) => {
        this.exitInfo = signal ? `signal ${signal}` : `code ${String(code)}`;
        resolve();
      });
    });
  }

  /**
   * `node [nodeArgs] bin/litebase.js serve [serveArgs]`. Inherited LITEBASE_* variables (a config
   * file, a data dir, a group-commit setting) would make the run measure something other than what
   * the report says, so they are dropped; `env` is added on top.
   */
  static spawn(serveArgs: string[], env: Record<string, string>, nodeArgs: string[] = []): ServeProcess {
    const environment: NodeJS.ProcessEnv = {};
    for (const [name, value] of Object.entries(process.env)) {
      if (!name.startsWith('LITEBASE_')) environment[name] = value;
    }
    Object.assign(environment, env);
    const args = [...nodeArgs, path.join(repoRoot(), 'bin', 'litebase.js'), 'serve', ...serveArgs];
    return new ServeProcess(spawn(process.execPath, args, { cwd: repoRoot(), env: environment, stdio: ['ignore', 'pipe', 'pipe'] }));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitInfo === undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * Lines printed after the process became ready (`waitReady`), up to line `upTo` (default: all so
   * far), the start-up banner never among them: what may be trouble, not the start's own output.
   */
  linesSinceReady(upTo = this.printed): number {
    return upTo - Math.max(this.readyAt, this.bannerAt);
  }

  /** Total lines printed so far (the kept tail is at most MAX_KEPT_LINES). */
  get lineCount(): number {
    return this.printed;
  }

  /** The last `count` kept lines, leaving out the `skipLast` most recent ones. */
  tail(count: number, skipLast = 0): string[] {
    // slice(-0) would return everything.
    return count > 0 ? this.kept.slice(0, this.kept.length - skipLast).slice(-count) : [];
  }

  /** Throw if the process died, e.g. during a load run, with its last words. */
  assertRunning(name: string, lines = 30): void {
    if (!this.running) throw new Error(`${name} exited (${this.exitInfo ?? 'unknown'}):\n${this.tail(lines).join('\n')}`);
  }

  /** Polls `readyz` (an HTTP status) every `everyMs` until it answers 200; fails if the process exits first. */
  async waitReady(name: string, timeoutMs: number, everyMs: number, readyz: () => Promise<number>): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer yet';
    while (Date.now() < deadline) {
      if (!this.running) {
        await this.exited;
        throw new Error(`${name} exited before it was ready (${this.exitInfo ?? 'unknown'}):\n${this.tail(30).join('\n')}`);
      }
      try {
        const status = await readyz();
        if (status === 200) {
          this.readyAt = this.printed;
          return;
        }
        last = `GET /readyz answered ${status}`;
      } catch (error) {
        last = error instanceof Error ? error.message : String(error);
      }
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
    throw new Error(`${name} not ready after ${timeoutMs} ms (${last}):\n${this.tail(30).join('\n')}`);
  }

  /** Call `listener` with every line printed from now on (the kept tail is bounded; this sees them all). */
  onLine(listener: (line: string) => void): void {
    this.listeners.push(listener);
  }

  /** Sends `signal`; false if the process could not be signalled. */
  kill(signal: NodeJS.Signals): boolean {
    return this.child.kill(signal);
  }

  /** SIGTERM, then SIGKILL after a grace period. Idempotent. */
  async stop(graceMs: number): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => {
      if (this.running) this.child.kill('SIGKILL');
    }, graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  private collect(chunk: Buffer): void {
    const text = this.partial + chunk.toString('utf8');
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim() === '') continue;
      this.printed++;
      if (this.bannerAt === 0 && STARTUP_BANNER.test(line)) this.bannerAt = this.printed;
      for (const listener of this.listeners) listener(line);
      this.kept.push(line);
      if (this.kept.length > MAX_KEPT_LINES) this.kept.shift();
    }
  }
}

/** One `litebase serve` child process on 127.0.0.1 with its own temp data directory. */
export class BenchServer {
  readonly url: string;
  private readonly untrack: () => void;

  private constructor(
    readonly label: string,
    readonly key: string,
    readonly port: number,
    /** The data dir; `localDir` is inside it unless the data dir is on a --shared-dir. */
    readonly dir: string,
    readonly localDir: string,
    private readonly child: ServeProcess,
  ) {
    this.url = `http://127.0.0.1:${port}`;
    this.untrack = track({
      release: () => this.stop(),
      releaseNow: () => {
        if (this.running) child.kill('SIGKILL');
        this.removeDirs();
      },
    });
  }

  static async start(options: ServerOptions): Promise<BenchServer> {
    const prefix = `litebase-bench-${options.label}-`;
    const dir = options.sharedDir === undefined ? makeTempDir(prefix) : mkdtempSync(path.join(options.sharedDir, prefix));
    const localDir = options.sharedDir === undefined ? path.join(dir, 'local') : makeTempDir(`${prefix}local-`);
    const port = await freePort();
    const args = [
      '--data-dir',
      dir,
      '--local-dir',
      localDir,
      '--port',
      String(port),
      '--host',
      '127.0.0.1',
      '--node-id',
      'bench',
      '--root-key',
      options.rootKey,
      '--log-level',
      'warn',
      ...(options.groupCommit ? [] : ['--no-group-commit']),
    ];
    // Group commit is also set through the environment, for both runs, so neither relies on a
    // default (flags win over the environment in the config loader; both say the same here).
    const env = { LITEBASE_GROUP_COMMIT: options.groupCommit ? 'on' : 'off', LITEBASE_LOG_LEVEL: 'warn' };
    const server = new BenchServer(options.label, options.rootKey, port, dir, localDir, ServeProcess.spawn(args, env));
    try {
      await server.waitReady(options.readyTimeoutMs ?? 60_000);
    } catch (error) {
      await server.stop();
      throw error;
    }
    return server;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.running;
  }

  /** Total lines printed so far (the kept tail is at most MAX_KEPT_LINES). */
  get outputLineCount(): number {
    return this.child.lineCount;
  }

  outputTail(lines = 20): string[] {
    return this.child.tail(lines);
  }

  /** Taken before the server stops, so shutdown messages do not count as trouble under load. */
  logSummary(samples = 10): ServerLogSummary {
    const lines = this.child.linesSinceReady();
    return { lines, samples: this.outputTail(Math.min(samples, lines)).map((line) => line.slice(0, 500)) };
  }

  /** Throw if the server died, e.g. during a load run, with its last words. */
  assertRunning(): void {
    this.child.assertRunning(`${this.label} server`);
  }

  private async waitReady(timeoutMs: number): Promise<void> {
    await this.child.waitReady(`${this.label} server`, timeoutMs, 100, async () => {
      const response = await fetch(`${this.url}/readyz`, {
        headers: { authorization: `Bearer ${this.key}` },
        signal: AbortSignal.timeout(2_000),
      });
      await response.arrayBuffer();
      return response.status;
    });
  }

  /** One JSON request with the root key, for setup and checks (not for load). */
  async request(method: 'GET' | 'POST' | 'DELETE', urlPath: string, body?: unknown): Promise<JsonResponse> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.key}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(this.url + urlPath, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(60_000),
    });
    const text = await response.text();
    let parsed: unknown = undefined;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      // /metrics is text, not JSON.
    }
    return { status: response.status, body: parsed, text };
  }

  /** Like request(), but any status other than `expected` is an error that names the step. */
  async expect(step: string, expected: number, method: 'GET' | 'POST' | 'DELETE', urlPath: string, body?: unknown): Promise<unknown> {
    const response = await this.request(method, urlPath, body);
    if (response.status !== expected) {
      throw new Error(`${step}: ${method} ${urlPath} answered ${response.status}, expected ${expected}: ${response.text.slice(0, 500)}`);
    }
    return response.body;
  }

  /** SIGTERM, then SIGKILL after a grace period; then remove the temp directories. Idempotent. */
  async stop(graceMs = 10_000): Promise<void> {
    await this.child.stop(graceMs);
    this.removeDirs();
    this.untrack();
  }

  private removeDirs(): void {
    rmSync(this.dir, { recursive: true, force: true });
    rmSync(this.localDir, { recursive: true, force: true });
  }
}
