import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fetchTrustingCa } from '../../src/client/tls.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = path.join(REPO_ROOT, 'bin', 'litebase.js');
export const TEST_ROOT_KEY = 'test-root-key-0123456789abcdef';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export function tempDir(prefix = 'litebase-test-'): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

export interface ServerOptions {
  dataDir?: string;
  localDir?: string;
  port?: number;
  nodeId?: string;
  rootKey?: string;
  extraArgs?: string[];
  env?: Record<string, string>;
  /**
   * Serve HTTPS with these PEM files (test/support/tls.ts); this helper's requests trust `ca`,
   * the node trusts `caFile` (--tls-ca) for other nodes, or the system CAs without it.
   */
  tls?: { certFile: string; keyFile: string; caFile?: string; ca: Buffer };
  /** How long start() waits for /readyz (default 20 s). */
  readyTimeoutMs?: number;
}

/** A real `litebase serve` process on 127.0.0.1 with its own temp dirs. */
export class TestServer {
  readonly url: string;
  readonly key: string;
  /** The fetch this helper's own requests use. */
  readonly fetch: typeof globalThis.fetch;
  output = '';
  private exitPromise: Promise<number | null>;

  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
    readonly dataDir: string,
    readonly localDir: string,
    key: string,
    /** Set when the server speaks HTTPS: a fetch trusting the test CA. */
    tlsFetch?: typeof globalThis.fetch,
  ) {
    this.url = `${tlsFetch ? 'https' : 'http'}://127.0.0.1:${port}`;
    this.fetch = tlsFetch ?? globalThis.fetch;
    this.key = key;
    child.stdout?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.exitPromise = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  static async start(options: ServerOptions = {}): Promise<TestServer> {
    const dataDir = options.dataDir ?? tempDir();
    const localDir = options.localDir ?? path.join(dataDir, 'local-' + (options.nodeId ?? 'n1'));
    const port = options.port ?? (await freePort());
    const key = options.rootKey ?? TEST_ROOT_KEY;
    const args = [
      CLI,
      'serve',
      '--data-dir',
      dataDir,
      '--local-dir',
      localDir,
      '--port',
      String(port),
      '--host',
      '127.0.0.1',
      '--node-id',
      options.nodeId ?? 'n1',
      '--root-key',
      key,
      ...(options.tls ? ['--tls-cert', options.tls.certFile, '--tls-key', options.tls.keyFile] : []),
      ...(options.tls?.caFile ? ['--tls-ca', options.tls.caFile] : []),
      ...(options.extraArgs ?? []),
    ];
    const child = spawn(process.execPath, args, {
      env: { ...process.env, LITEBASE_LOG_LEVEL: 'warn', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const server = new TestServer(child, port, dataDir, localDir, key, options.tls ? fetchTrustingCa(options.tls.ca) : undefined);
    try {
      await server.waitReady(options.readyTimeoutMs);
    } catch (error) {
      // A server that never got ready is not left running behind the failed test.
      await server.stop('SIGKILL');
      throw error;
    }
    return server;
  }

  async waitReady(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.child.exitCode !== null) throw new Error(`server exited early (${this.child.exitCode}):\n${this.output}`);
      try {
        const response = await this.fetch(`${this.url}/readyz`, { headers: { authorization: `Bearer ${this.key}` } });
        if (response.ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`server not ready after ${timeoutMs} ms:\n${this.output}`);
  }

  /** JSON request with the root key; returns status and parsed body. */
  async request(
    method: string,
    urlPath: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: any; headers: Headers }> {
    const response = await this.fetch(this.url + urlPath, {
      method,
      headers: {
        authorization: `Bearer ${this.key}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON (metrics, backup)
    }
    return { status: response.status, body: parsed, headers: response.headers };
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exitPromise;
  }

  async kill9(): Promise<void> {
    await this.stop('SIGKILL');
  }

  cleanup(): void {
    // Retries: a process the server started (a read process) may still be writing a file into the
    // folder for a moment after the server was killed (ENOTEMPTY in one CI run).
    rmSync(this.dataDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  }
}

/**
 * A node of a small test cluster on `dataDir`: a short lease (failover in about a second), a fast
 * poll, and time enough for a read that waits for a position. Kept in `servers` for the caller's
 * clean-up.
 */
export async function startClusterNode(dataDir: string, nodeId: string, servers: TestServer[]): Promise<TestServer> {
  const server = await TestServer.start({
    dataDir,
    nodeId,
    env: { LITEBASE_LEASE_TTL_MS: '1000', LITEBASE_REPLICA_POLL_MS: '200', LITEBASE_WAIT_TIMEOUT_MS: '8000' },
  });
  servers.push(server);
  return server;
}
