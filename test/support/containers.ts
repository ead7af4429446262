import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { StartedNetwork, StartedTestContainer } from 'testcontainers';
import { LitebaseClient } from '../../src/client/client.js';
import { freePort, REPO_ROOT } from './server.js';
import { waitFor } from './wait.js';

/**
 * Litebase clusters in Docker containers, for test/containers: the images infra/build-images.sh
 * makes, one Docker network, s3rver in a container as the object store, and as the shared file
 * system a folder of this checkout bind-mounted into every node, so that a test can read and
 * delete the files the nodes write. Tests stop every container they start.
 */

// testcontainers would otherwise start its reaper (Ryuk) from a registry image; none is reachable
// here, and the tests stop what they start. Read when testcontainers is loaded, hence the late import.
process.env.TESTCONTAINERS_RYUK_DISABLED ??= 'true';
const { GenericContainer, Network, Wait, getContainerRuntimeClient } = await import('testcontainers');

export const NODE_IMAGE = process.env.LITEBASE_NODE_IMAGE ?? 'litebase-node:local';
export const S3RVER_IMAGE = process.env.LITEBASE_S3RVER_IMAGE ?? 'litebase-s3rver:local';
export const LB_IMAGE = process.env.LITEBASE_LB_IMAGE ?? 'litebase-haproxy:local';
export const ROOT_KEY = 'container-test-root-key-0123456789';
const BUCKET = 'litebase';
const LITEBASE_PORT = 8080;
const S3RVER_PORT = 4568;
/** Where a node sees the shared folder. */
export const SHARED_DIR_IN_CONTAINER = '/data/shared';

export type DockerReadiness = { ready: true } | { ready: false; reason: string };

/**
 * Whether the container tests can run: the Docker engine answers `docker info` (the engine
 * DOCKER_HOST names, when set), and infra/build-images.sh brings the images up to date with this
 * checkout (a few seconds when nothing changed).
 */
export async function prepareDocker(): Promise<DockerReadiness> {
  const info = await run('docker', ['info', '--format', '{{.ServerVersion}}'], 20_000);
  if (info.code !== 0) return { ready: false, reason: `no Docker engine answers (docker info: ${lastLine(info.output)})` };
  const build = await run('bash', [path.join(REPO_ROOT, 'infra', 'build-images.sh')], 600_000);
  if (build.code !== 0) return { ready: false, reason: `infra/build-images.sh failed: ${lastLine(build.output)}` };
  return { ready: true };
}

/** A fresh folder under .tmp/containers; the containers run as this process's user, so it can delete what they write. */
export function hostFolder(name: string): string {
  const folder = path.join(REPO_ROOT, '.tmp', 'containers', `${name}-${randomUUID().slice(0, 8)}`);
  mkdirSync(folder, { recursive: true });
  return folder;
}

/** One network and one s3rver for a test file; clusters come and go on them. */
export class ContainerEnvironment {
  private constructor(
    readonly network: StartedNetwork,
    readonly s3: StartedTestContainer,
  ) {}

  static async start(): Promise<ContainerEnvironment> {
    const network = await new Network().start();
    try {
      const s3 = await new GenericContainer(S3RVER_IMAGE)
        .withNetwork(network)
        .withNetworkAliases('s3')
        .withCommand(['--silent', '--configure-bucket', BUCKET])
        .withExposedPorts(S3RVER_PORT)
        .withWaitStrategy(Wait.forHttp('/', S3RVER_PORT).forStatusCode(200))
        .withStartupTimeout(60_000)
        .start();
      return new ContainerEnvironment(network, s3);
    } catch (error) {
      await network.stop().catch(() => undefined);
      throw error;
    }
  }

  /** The object store as the test process reaches it (the nodes use http://s3:4568). */
  get s3Endpoint(): string {
    return `http://${this.s3.getHost()}:${this.s3.getMappedPort(S3RVER_PORT)}`;
  }

  async stop(): Promise<void> {
    await this.s3.stop({ timeout: 0 }).catch(() => undefined);
    await this.network.stop().catch(() => undefined);
  }
}

export interface ClusterOptions {
  /** Node ids are `<name>-n1`, `-n2`, `-n3`; they are also the nodes' host names on the network. */
  name: string;
  /** Key prefix in the bucket: `s3://litebase/<prefix>`. Default: the cluster's name. */
  objectStorePrefix?: string;
  leaseTtlMs?: number;
}

/** One `litebase serve` container. */
export class ContainerNode {
  /** Everything the node printed, for the report of a failed test. */
  output = '';
  private hostPort: number;

  /**
   * `hostNetworkPort`: the container shares the host's network (HostNetworkCluster) and the node
   * listens on this port of the host itself; otherwise Docker publishes its port 8080.
   */
  constructor(
    readonly id: string,
    readonly container: StartedTestContainer,
    private readonly hostNetworkPort?: number,
  ) {
    this.hostPort = hostNetworkPort ?? container.getMappedPort(LITEBASE_PORT);
  }

  /** As the test process reaches it. */
  get url(): string {
    return this.hostNetworkPort === undefined ? `http://${this.container.getHost()}:${this.hostPort}` : `http://127.0.0.1:${this.hostPort}`;
  }

  /** Docker publishes the port anew, on another host port, when a container restarts or rejoins its network. */
  async refreshPort(): Promise<void> {
    const client = await getContainerRuntimeClient();
    await waitFor(
      async () => {
        const inspected = await client.container.inspect(client.container.getById(this.container.getId()));
        const port = Number(inspected.NetworkSettings.Ports?.[`${LITEBASE_PORT}/tcp`]?.[0]?.HostPort);
        if (port > 0) this.hostPort = port;
        return port > 0;
      },
      10_000,
      `the published port of ${this.id}`,
      100,
    );
  }

  /** Restarts the container at once (no graceful stop) and waits until it is ready again. */
  async restart(): Promise<void> {
    await this.container.restart({ timeout: 0 });
    await this.refreshPort();
  }

  /** How the other nodes reach it, on the cluster network (or the host's). */
  get advertiseAddress(): string {
    return this.hostNetworkPort === undefined ? `http://${this.id}:${LITEBASE_PORT}` : this.url;
  }

  client(timeoutMs = 10_000): LitebaseClient {
    return new LitebaseClient({ url: this.url, key: ROOT_KEY, timeoutMs });
  }

  /** A JSON request with the root key; answers status 0 when the node could not be reached. */
  async request(method: string, urlPath: string, body?: unknown, timeoutMs = 10_000): Promise<{ status: number; body: any }> {
    try {
      const response = await fetch(this.url + urlPath, {
        method,
        headers: { authorization: `Bearer ${ROOT_KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : undefined };
    } catch (error) {
      return { status: 0, body: { error: { code: 'UNREACHABLE', message: firstLine(error) } } };
    }
  }

  /** Runs `node -e <script>` inside the container, where the node answers on 127.0.0.1. */
  async runScript(script: string): Promise<string> {
    const result = await this.container.exec(['node', '--input-type=module', '-e', script]);
    if (result.exitCode !== 0) throw new Error(`script in ${this.id} exited ${result.exitCode}: ${result.stderr || result.output}`);
    return result.stdout;
  }

  /** Runs a litebase command inside the container (same environment as the server). */
  async litebase(args: string[]): Promise<{ exitCode: number; stdout: string; stderr: string }> {
    const result = await this.container.exec(['node', '/app/bin/litebase.js', ...args]);
    return { exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr };
  }
}

/** What every cluster of node containers answers: who is Primary, killing a node, the nodes' output. */
export abstract class ContainerNodes {
  constructor(readonly nodes: ContainerNode[]) {}

  /** The first of `candidates` that says it is the Primary (undefined while they elect one). */
  async primary(candidates: ContainerNode[] = this.nodes): Promise<ContainerNode | undefined> {
    for (const node of candidates) {
      const { status, body } = await node.request('GET', '/v1/cluster', undefined, 3000);
      if (status !== 200) continue;
      if (body.nodes.find((entry: { nodeId: string }) => entry.nodeId === node.id)?.role === 'primary') return node;
    }
    return undefined;
  }

  async waitForPrimary(timeoutMs = 15_000, candidates: ContainerNode[] = this.nodes): Promise<ContainerNode> {
    let found: ContainerNode | undefined;
    await waitFor(async () => (found = await this.primary(candidates)) !== undefined, timeoutMs, 'a Primary', 100);
    return found!;
  }

  /** Kills a node's container at once (no graceful stop: the lease is not handed over) and removes it. */
  async kill(node: ContainerNode): Promise<void> {
    const client = await getContainerRuntimeClient();
    await client.container.getById(node.container.getId()).kill();
    await node.container.stop({ timeout: 0 }).catch(() => undefined);
  }

  /** Last lines of every node's output, for a failed test. */
  report(lines = 15): string {
    return this.nodes.map((node) => `--- ${node.id}\n${node.output.trim().split('\n').slice(-lines).join('\n')}`).join('\n');
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.container.stop({ timeout: 0 }).catch(() => undefined)));
  }
}

/** Three Litebase nodes on the environment's network, sharing one host folder. */
export class ContainerCluster extends ContainerNodes {
  private constructor(
    readonly environment: ContainerEnvironment,
    readonly sharedDir: string,
    nodes: ContainerNode[],
  ) {
    super(nodes);
  }

  static async start(environment: ContainerEnvironment, options: ClusterOptions): Promise<ContainerCluster> {
    const sharedDir = hostFolder(`${options.name}-shared`);
    const env: Record<string, string> = {
      LITEBASE_ROOT_KEY: ROOT_KEY,
      // Written as the test process's user (below), which may not be the image's.
      LITEBASE_LOCAL_DIR: '/tmp/litebase-local',
      LITEBASE_LEASE_TTL_MS: String(options.leaseTtlMs ?? 2000),
      LITEBASE_REPLICA_POLL_MS: '250',
      LITEBASE_WAIT_TIMEOUT_MS: '8000',
      LITEBASE_OBJECT_STORE: `s3://${BUCKET}/${options.objectStorePrefix ?? options.name}`,
      LITEBASE_S3_ENDPOINT: `http://s3:${S3RVER_PORT}`,
      LITEBASE_S3_REGION: 'us-east-1',
      LITEBASE_S3_FORCE_PATH_STYLE: 'true',
      LITEBASE_S3_ACCESS_KEY_ID: 'S3RVER',
      LITEBASE_S3_SECRET_ACCESS_KEY: 'S3RVER',
      // Archive only when a test asks (POST .../compact), so what is in the store is what it expects.
      LITEBASE_ARCHIVE_INTERVAL_MS: '0',
      LITEBASE_LOG_LEVEL: 'warn',
    };
    const user = `${process.getuid!()}:${process.getgid!()}`;
    const startNode = async (id: string): Promise<ContainerNode> => {
      const log = new ContainerLog();
      const container = await new GenericContainer(NODE_IMAGE)
        .withNetwork(environment.network)
        .withNetworkAliases(id)
        .withHostname(id)
        .withUser(user)
        .withEnvironment({ ...env, LITEBASE_NODE_ID: id, LITEBASE_ADVERTISE_ADDRESS: `http://${id}:${LITEBASE_PORT}` })
        .withBindMounts([{ source: sharedDir, target: SHARED_DIR_IN_CONTAINER }])
        .withExposedPorts(LITEBASE_PORT)
        .withLogConsumer(log.consumer)
        .withWaitStrategy(readyzWait())
        .withStartupTimeout(60_000)
        .start();
      return log.attach(new ContainerNode(id, container));
    };
    const ids = [1, 2, 3].map((index) => `${options.name}-n${index}`);
    const started = await Promise.allSettled(ids.map(startNode));
    const nodes = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    const cluster = new ContainerCluster(environment, sharedDir, nodes);
    const failed = started.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed) {
      await cluster.stop();
      throw failed.reason;
    }
    return cluster;
  }

  /** Cuts a node off the cluster network (it keeps its bind-mounted shared folder). */
  async disconnect(node: ContainerNode): Promise<void> {
    const client = await getContainerRuntimeClient();
    await client.network.getById(this.environment.network.getId()).disconnect({ Container: node.container.getId(), Force: true });
  }

  /** Puts it back, under its host name. */
  async reconnect(node: ContainerNode): Promise<void> {
    const client = await getContainerRuntimeClient();
    await client.network
      .getById(this.environment.network.getId())
      .connect({ Container: node.container.getId(), EndpointConfig: { Aliases: [node.id] } });
    await node.refreshPort();
  }

  removeFolder(): void {
    rmSync(this.sharedDir, { recursive: true, force: true });
  }
}

export interface HostNetworkClusterOptions {
  /** Node ids are `<name>-n1`, `-n2`, ... */
  name: string;
  /**
   * One host folder per node, bind-mounted as that node's shared folder: the same folder seen
   * through a different mount each (on CephFS, one `ceph-fuse` client per node, as separate
   * machines would have). Their number is the number of nodes.
   */
  sharedDirs: string[];
  /** Environment of every node over the defaults (lease, polling, the object store and its keys, ...). */
  env: Record<string, string>;
}

/**
 * Litebase nodes in containers on the host's own network, each with its own host folder as its
 * shared folder: for services that listen only on the host's loopback (the RGW of infra/ceph) and
 * file systems mounted on the host (the ceph-fuse mounts). A node listens on a free port of the
 * host on 127.0.0.1 and advertises that address; its local folder stays inside its container.
 */
export class HostNetworkCluster extends ContainerNodes {
  private constructor(nodes: ContainerNode[]) {
    super(nodes);
  }

  static async start(options: HostNetworkClusterOptions): Promise<HostNetworkCluster> {
    const user = `${process.getuid!()}:${process.getgid!()}`;
    const startNode = async (sharedDir: string, index: number): Promise<ContainerNode> => {
      const id = `${options.name}-n${index + 1}`;
      const port = await freePort();
      const log = new ContainerLog();
      const container = await new GenericContainer(NODE_IMAGE)
        .withNetworkMode('host')
        .withUser(user)
        .withEnvironment({
          LITEBASE_ROOT_KEY: ROOT_KEY,
          // Inside the container, writable by the test process's user (which may not be the image's).
          LITEBASE_LOCAL_DIR: '/tmp/litebase-local',
          LITEBASE_LOG_LEVEL: 'warn',
          ...options.env,
          LITEBASE_HOST: '127.0.0.1',
          LITEBASE_PORT: String(port),
          LITEBASE_NODE_ID: id,
          LITEBASE_ADVERTISE_ADDRESS: `http://127.0.0.1:${port}`,
        })
        .withBindMounts([{ source: sharedDir, target: SHARED_DIR_IN_CONTAINER }])
        .withLogConsumer(log.consumer)
        // Nothing is published on the host's network, so this returns once the container runs:
        // the node's /readyz is polled from here below.
        .withWaitStrategy(Wait.forListeningPorts())
        .start()
        .catch((error: unknown) => {
          throw new Error(`${id} did not start: ${firstLine(error)}\n${log.text}`, { cause: error });
        });
      return log.attach(new ContainerNode(id, container, port));
    };
    const started = await Promise.allSettled(options.sharedDirs.map(startNode));
    const cluster = new HostNetworkCluster(started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : [])));
    try {
      const failed = started.find((result): result is PromiseRejectedResult => result.status === 'rejected');
      if (failed) throw failed.reason;
      for (const node of cluster.nodes)
        await waitFor(async () => (await node.request('GET', '/readyz', undefined, 2000)).status === 200, 60_000, `${node.id} ready`, 200);
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }
}

/**
 * `docker run --rm` of the node image with `args` (a litebase command, e.g. an offline restore),
 * as this process's user, on the host's network, with these folders bind-mounted.
 */
export async function runNodeImage(
  args: string[],
  options: { env: Record<string, string>; binds: Array<{ source: string; target: string }> },
): Promise<{ code: number; output: string }> {
  const flags = ['--rm', '--network', 'host', '--user', `${process.getuid!()}:${process.getgid!()}`];
  for (const [name, value] of Object.entries(options.env)) flags.push('--env', `${name}=${value}`);
  for (const bind of options.binds) flags.push('--volume', `${bind.source}:${bind.target}`);
  return run('docker', ['run', ...flags, NODE_IMAGE, ...args], 180_000);
}

/**
 * HAProxy in front of a cluster's three nodes: the image infra/build-images.sh makes from
 * infra/haproxy, configured as infra/compose.yaml configures it but for the cluster's node names.
 */
export class ContainerLoadBalancer {
  /** Everything HAProxy printed (its log: failures and retries, servers going down and up). */
  output = '';

  private constructor(readonly container: StartedTestContainer) {}

  static async start(cluster: ContainerCluster): Promise<ContainerLoadBalancer> {
    const log = new ContainerLog();
    const [node1, node2, node3] = cluster.nodes.map((node) => `${node.id}:${LITEBASE_PORT}`);
    const container = await new GenericContainer(LB_IMAGE)
      .withNetwork(cluster.environment.network)
      .withEnvironment({
        LITEBASE_LB_CHECK_KEY: ROOT_KEY,
        LITEBASE_LB_NODE1: node1!,
        LITEBASE_LB_NODE2: node2!,
        LITEBASE_LB_NODE3: node3!,
      })
      .withExposedPorts(LITEBASE_PORT)
      .withLogConsumer(log.consumer)
      // Through HAProxy to a node whose own /readyz said 200.
      .withWaitStrategy(readyzWait())
      .withStartupTimeout(60_000)
      .start();
    return log.attach(new ContainerLoadBalancer(container));
  }

  /** As the test process reaches it. */
  get url(): string {
    return `http://${this.container.getHost()}:${this.container.getMappedPort(LITEBASE_PORT)}`;
  }

  client(timeoutMs = 10_000): LitebaseClient {
    return new LitebaseClient({ url: this.url, key: ROOT_KEY, timeoutMs });
  }

  async stop(): Promise<void> {
    await this.container.stop({ timeout: 0 }).catch(() => undefined);
  }
}

/**
 * A container's output, kept from its first line: what it prints before its wrapper object exists
 * (while it starts) is kept here and handed to the wrapper, which collects the rest.
 */
class ContainerLog {
  text = '';
  private owner: { output: string } | undefined;

  readonly consumer = (stream: NodeJS.ReadableStream): void => {
    stream.on('data', (chunk: Buffer | string) => {
      if (this.owner) this.owner.output += chunk.toString();
      else this.text += chunk.toString();
    });
  };

  attach<Owner extends { output: string }>(owner: Owner): Owner {
    owner.output = this.text;
    this.owner = owner;
    return owner;
  }
}

/** Ready once the node's /readyz (or, through the balancer, some node's) answers 200 to the root key. */
function readyzWait() {
  return Wait.forHttp('/readyz', LITEBASE_PORT)
    .withHeaders({ authorization: `Bearer ${ROOT_KEY}` })
    .forStatusCode(200);
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
}

function lastLine(output: string): string {
  return output.trim().split('\n').at(-1) ?? '';
}

/**
 * infra/compose.yaml as a user runs it, with `docker compose` (the plugin) or `docker-compose`
 * (Debian's package, which .ci/run installs), under a project name of its own.
 */
export class ComposeProject {
  private constructor(
    private readonly command: string[],
    readonly name: string,
    private readonly env: Record<string, string>,
  ) {}

  /** The compose command this machine has, or why there is none. */
  static async find(name: string, env: Record<string, string>): Promise<ComposeProject | string> {
    if ((await run('docker', ['compose', 'version'], 20_000)).code === 0) return new ComposeProject(['docker', 'compose'], name, env);
    const legacy = await run('docker-compose', ['version'], 20_000);
    if (legacy.code === 0) return new ComposeProject(['docker-compose'], name, env);
    return `neither docker compose nor docker-compose is installed (${lastLine(legacy.output)})`;
  }

  async run(...args: string[]): Promise<string> {
    const [command, ...rest] = this.command as [string, ...string[]];
    const result = await run(
      command,
      [...rest, '-p', this.name, '-f', path.join(REPO_ROOT, 'infra', 'compose.yaml'), ...args],
      180_000,
      this.env,
    );
    if (result.code !== 0)
      throw new Error(`${this.command.join(' ')} ${args.join(' ')}: ${result.output.trim().split('\n').slice(-5).join(' | ')}`);
    return result.output;
  }
}

/** Runs a command; a missing command or a timeout is a failure with the reason as its output. */
function run(command: string, args: string[], timeoutMs: number, env?: Record<string, string>): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const options = {
      cwd: REPO_ROOT,
      timeout: timeoutMs,
      maxBuffer: 16 * 1024 * 1024,
      ...(env ? { env: { ...process.env, ...env } } : {}),
    };
    execFile(command, args, options, (error, stdout, stderr) => {
      if (!error) return resolve({ code: 0, output: `${stdout}${stderr}` });
      const reason = error.code === 'ENOENT' ? `${command} is not installed` : error.killed ? `no answer within ${timeoutMs / 1000} s` : '';
      resolve({ code: typeof error.code === 'number' ? error.code : 1, output: `${stdout}${stderr}${reason}` });
    });
  });
}
