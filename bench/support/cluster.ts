import { rmSync } from 'node:fs';
import path from 'node:path';
import { track } from './cleanup.js';
import { databasePosition, JsonClient, primaryAddress } from './http-client.js';
import { freePort, makeSharedTempDir, makeTempDir, ServeProcess } from './server.js';

/**
 * Several `litebase serve` processes on one shared data dir (the folder stands in for the shared
 * file system), each with its own local dir and port: a cluster on one machine, as in the README's
 * "A three-node cluster on one machine". Every process and the folder are registered with
 * cleanup.ts, so they go away on every way out.
 *
 * With `sharedViews` (--shared-dir) the shared data dir is a new folder under them instead, e.g.
 * on CephFS, and each node sees it through one of them (the same folder through different mounts:
 * one client per node); the local dirs stay under the temp root, on the local disk.
 */

export interface StartOptions {
  /** How long a start (which, for a joining node, includes replaying the log) may take. */
  readyTimeoutMs?: number;
  /** More environment for this node. */
  env?: Record<string, string>;
  /** Node.js flags before the script (e.g. --cpu-prof, to profile one node). */
  nodeArgs?: string[];
}

export class BenchCluster {
  /** Local: the nodes' local dirs and scratch files. */
  readonly root: string;
  /** The shared data dir as node i sees it is views[i modulo their count] (one view without --shared-dir). */
  readonly views: string[];
  /** Whether the shared data dir is on --shared-dir rather than under the temp root. */
  readonly onSharedDir: boolean;
  readonly nodes: ClusterNode[] = [];
  /** Which view each node id was given at its first start (a restart keeps it). */
  private readonly viewOf = new Map<string, string>();
  private readonly removeFolders: () => void;
  private readonly untrack: () => void;

  constructor(
    readonly key: string,
    /** Environment given to every node on top of the filtered parent environment. */
    private readonly env: Record<string, string>,
    sharedViews?: readonly string[],
    /** Names the temp folders (which benchmark left them, should one survive a crash). */
    prefix = 'litebase-bench-replication-',
  ) {
    const root = makeTempDir(prefix);
    this.root = root;
    const shared = sharedViews && sharedViews.length > 0 ? makeSharedTempDir(sharedViews, prefix) : undefined;
    this.views = shared ? shared.paths : [path.join(root, 'shared')];
    this.onSharedDir = shared !== undefined;
    this.removeFolders = () => {
      shared?.remove();
      rmSync(root, { recursive: true, force: true });
    };
    // Registered first, so released last: after the nodes that use it.
    this.untrack = track({ release: async () => this.removeFolders(), releaseNow: this.removeFolders });
  }

  /** The shared data dir as `nodeId` sees it (the first view for a node not started yet). */
  sharedDirOf(nodeId?: string): string {
    return (nodeId === undefined ? undefined : this.viewOf.get(nodeId)) ?? this.views[0]!;
  }

  /** The log folder of `database`, as `nodeId` sees it (default: through the first view). */
  logDir(database: string, nodeId?: string): string {
    return path.join(this.sharedDirOf(nodeId), 'databases', database, 'log');
  }

  /** Start a node; resolves once GET /readyz answers 200 (a joining node replays the log first). */
  async start(nodeId: string, extraArgs: string[] = [], more: StartOptions = {}): Promise<ClusterNode> {
    const readyTimeoutMs = more.readyTimeoutMs ?? 120_000;
    const port = await freePort();
    const localDir = path.join(this.root, `local-${nodeId}`);
    if (!this.viewOf.has(nodeId)) this.viewOf.set(nodeId, this.views[this.viewOf.size % this.views.length]!);
    const args = [
      '--data-dir',
      this.sharedDirOf(nodeId),
      '--local-dir',
      localDir,
      '--node-id',
      nodeId,
      '--port',
      String(port),
      '--host',
      '127.0.0.1',
      '--advertise-address',
      `http://127.0.0.1:${port}`,
      '--root-key',
      this.key,
      '--log-level',
      'warn',
      '--lease-ttl-ms',
      '5000',
      ...extraArgs,
    ];
    const spawnedAt = performance.now();
    const child = ServeProcess.spawn(args, { ...this.env, ...more.env }, [...(more.nodeArgs ?? []), ...profileArgs(nodeId)]);
    const node = new ClusterNode(nodeId, this.key, port, localDir, extraArgs, child, spawnedAt);
    this.nodes.push(node);
    try {
      await node.waitReady(readyTimeoutMs);
    } catch (error) {
      await node.stop();
      throw error;
    }
    return node;
  }

  /** The node the cluster view names as Primary (asked of `asker`), once there is one. */
  async primary(asker: ClusterNode, timeoutMs = 30_000): Promise<ClusterNode> {
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer';
    while (Date.now() < deadline) {
      const view = await asker.client.request('GET', '/v1/cluster').catch((error: unknown) => {
        last = error instanceof Error ? error.message : String(error);
        return undefined;
      });
      const address = primaryAddress(view?.body);
      const found = this.nodes.find((node) => node.running && node.url === address);
      if (found) return found;
      if (view) last = `primary ${address ?? 'none'}`;
      await sleep(100);
    }
    throw new Error(`no Primary among the nodes after ${timeoutMs} ms (${last})`);
  }

  /** Stop every node; the folders stay (for reading the log afterwards). */
  async stopNodes(): Promise<void> {
    for (const node of [...this.nodes].reverse()) await node.stop();
  }

  async stopAll(): Promise<void> {
    await this.stopNodes();
    this.removeFolders();
    this.untrack();
  }
}

export class ClusterNode {
  readonly url: string;
  /** Sequential setup and checks: one keep-alive connection. */
  readonly client: JsonClient;
  /** performance.now() when GET /readyz first answered 200. */
  readyAt = 0;
  /** Lines printed once a stop was asked for ("SIGTERM: shutting down") are not trouble either. */
  private linesAtStop: number | undefined;
  private paused = false;
  private readonly untrack: () => void;

  constructor(
    readonly id: string,
    readonly key: string,
    readonly port: number,
    readonly localDir: string,
    readonly args: string[],
    private readonly child: ServeProcess,
    /** performance.now() right before the process was spawned. */
    readonly spawnedAt: number,
  ) {
    this.url = `http://127.0.0.1:${port}`;
    this.client = new JsonClient(this.url, key);
    this.untrack = track({
      release: () => this.stop(),
      releaseNow: () => {
        if (!this.running) return;
        child.kill('SIGKILL');
      },
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.running;
  }

  /** Spawn to ready, in ms. */
  get startMs(): number {
    return this.readyAt - this.spawnedAt;
  }

  /** Lines printed after the node was ready (at --log-level warn: warnings and errors). */
  logSummary(samples = 5): { lines: number; samples: string[] } {
    const printed = this.linesAtStop ?? this.child.lineCount;
    const lines = this.child.linesSinceReady(printed);
    const tail = this.child.tail(Math.min(samples, lines), this.child.lineCount - printed);
    return { lines, samples: tail.map((line) => `${this.id}: ${line.slice(0, 400)}`) };
  }

  assertRunning(): void {
    this.child.assertRunning(`node ${this.id}`, 20);
  }

  /** Every line the node prints from now on (e.g. its info-level log, parsed by the caller). */
  onLine(listener: (line: string) => void): void {
    this.child.onLine(listener);
  }

  /** SIGSTOP: the process stays, does nothing (a replica that falls behind). */
  pause(): void {
    if (this.running && this.child.kill('SIGSTOP')) this.paused = true;
  }

  resume(): void {
    if (this.running && this.paused) this.child.kill('SIGCONT');
    this.paused = false;
  }

  async waitReady(timeoutMs: number): Promise<void> {
    // Polled every 10 ms: the time to ready of a joining node is a measurement.
    await this.child.waitReady(
      `node ${this.id}`,
      timeoutMs,
      10,
      async () => (await this.client.request('GET', '/readyz', undefined, 2_000)).status,
    );
    this.readyAt = performance.now();
  }

  /** SIGTERM (after SIGCONT if paused), SIGKILL after a grace period. Idempotent. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.running) {
      this.linesAtStop ??= this.child.lineCount;
      this.resume();
    }
    await this.child.stop(graceMs);
    this.client.close();
    this.untrack();
  }
}

/** `database.position` of GET /v1/databases/:db on `node`; undefined when it does not answer 200. */
export async function positionOf(node: ClusterNode, database: string): Promise<bigint | undefined> {
  const answer = await node.client.request('GET', `/v1/databases/${database}`, undefined, 5_000).catch(() => undefined);
  return answer?.status === 200 ? databasePosition(answer.body) : undefined;
}

/** Poll GET /v1/databases/:db every `everyMs` until the node reports at least `target`; when it did (performance.now()). */
export async function waitForPosition(
  node: ClusterNode,
  database: string,
  target: bigint,
  timeoutMs: number,
  everyMs = 5,
): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    node.assertRunning();
    const position = await positionOf(node, database);
    if (position !== undefined && position >= target) return performance.now();
    if (performance.now() > deadline) {
      throw new Error(`node ${node.id} did not reach position ${target} within ${timeoutMs} ms (at ${position ?? 'unknown'})`);
    }
    await sleep(everyMs);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * With LITEBASE_BENCH_PROFILE_DIR set, every node writes a V8 CPU profile there when it stops
 * (a folder per node process, a profile per thread): what to look at when a figure is off.
 */
function profileArgs(nodeId: string): string[] {
  const dir = process.env.LITEBASE_BENCH_PROFILE_DIR;
  // A folder per node process: each of its threads writes a profile of its own there.
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${path.join(dir, `${nodeId}-${Date.now()}`)}`] : [];
}
