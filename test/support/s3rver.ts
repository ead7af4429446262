import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const S3RVER_BIN = path.join(REPO_ROOT, 'node_modules', 's3rver', 'bin', 's3rver.js');

/** s3rver's built-in account. It rejects unknown access key ids but does not check V4 signatures. */
export const S3RVER_ACCESS_KEY_ID = 'S3RVER';
export const S3RVER_SECRET_ACCESS_KEY = 'S3RVER';

export interface S3rverOptions {
  /** Buckets created at start-up. Default ['litebase-test']. */
  buckets?: string[];
  /** Milliseconds to wait for the server to answer. Default 20 000. */
  startTimeoutMs?: number;
}

/**
 * s3rver (a fake S3 on the local disk) in its own process on 127.0.0.1 and a port the OS picks.
 * Its own process because ListObjectsV2 encrypts continuation tokens with DES, which Node 20's
 * OpenSSL 3 only has with `--openssl-legacy-provider`: that flag belongs to s3rver, not to the
 * test process.
 */
export class S3rver {
  private output = '';
  private readonly exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcess,
    readonly directory: string,
    readonly buckets: readonly string[],
  ) {
    child.stdout?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  endpoint = '';

  /** What `openObjectStore` needs to talk to this server. */
  get storeOptions(): { endpoint: string; region: string; forcePathStyle: boolean; accessKeyId: string; secretAccessKey: string } {
    return {
      endpoint: this.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      accessKeyId: S3RVER_ACCESS_KEY_ID,
      secretAccessKey: S3RVER_SECRET_ACCESS_KEY,
    };
  }

  static async start(options: S3rverOptions = {}): Promise<S3rver> {
    const buckets = options.buckets ?? ['litebase-test'];
    const directory = mkdtempSync(path.join(tmpdir(), 'litebase-s3rver-'));
    const args = [S3RVER_BIN, '--directory', directory, '--address', '127.0.0.1', '--port', '0', '--silent'];
    // s3rver's CLI takes config files after each bucket name: end every list with the next flag.
    for (const bucket of buckets) args.push('--configure-bucket', bucket);
    const child = spawn(process.execPath, args, {
      cwd: REPO_ROOT,
      env: { ...process.env, NODE_OPTIONS: '--openssl-legacy-provider' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const server = new S3rver(child, directory, buckets);
    try {
      const port = await server.waitForPort(options.startTimeoutMs ?? 20_000);
      server.endpoint = `http://127.0.0.1:${port}`;
      await server.waitUntilAnswering(options.startTimeoutMs ?? 20_000);
    } catch (error) {
      await server.stop();
      throw error;
    }
    return server;
  }

  /** Kills the server and removes its folder. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
      await this.exited;
      clearTimeout(timer);
    }
    rmSync(this.directory, { recursive: true, force: true });
  }

  /** The CLI prints 'S3rver listening on 127.0.0.1:<port>' once it listens. */
  private waitForPort(timeoutMs: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`s3rver did not start within ${timeoutMs} ms:\n${this.output}`)), timeoutMs);
      const onData = (): void => {
        const match = /S3rver listening on [\d.]+:(\d+)/.exec(this.output);
        if (match?.[1] !== undefined) finish(undefined, Number(match[1]));
      };
      const onExit = (): void => finish(new Error(`s3rver exited before listening:\n${this.output}`));
      const finish = (error: Error | undefined, port?: number): void => {
        clearTimeout(timer);
        this.child.stdout?.off('data', onData);
        this.child.off('exit', onExit);
        if (error !== undefined || port === undefined) reject(error ?? new Error('no port'));
        else resolve(port);
      };
      this.child.stdout?.on('data', onData);
      this.child.once('exit', onExit);
      onData();
    });
  }

  /** GET / (ListBuckets, anonymous) until it answers 200. */
  private async waitUntilAnswering(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const status = await new Promise<number>((resolve) => {
        const req = request(`${this.endpoint}/`, { method: 'GET', timeout: 1_000 }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', () => resolve(0));
        req.on('timeout', () => req.destroy());
        req.end();
      });
      if (status === 200) return;
      if (Date.now() > deadline) throw new Error(`s3rver at ${this.endpoint} did not answer within ${timeoutMs} ms:\n${this.output}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
