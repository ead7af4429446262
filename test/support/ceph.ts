import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { LogDirectory } from '../../src/log/log-directory.js';
import { logHeaders } from './log-files.js';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'vitest';
import { decodeSegment } from '../../src/format/segment-codec.js';
import { openObjectStore } from '../../src/storage/open-object-store.js';
import { REPO_ROOT, TestServer, tempDir, type ServerOptions } from './server.js';
import { sleep, waitFor } from './wait.js';

/**
 * The one-host Ceph cluster of infra/ceph (docs/DEPLOY-CEPHFS.md) as the tests in test/ceph see it:
 * CephFS through one ceph-fuse mount per node (separate clients, as separate machines would be) and
 * RGW as the object store. `infra/ceph/start.sh` writes what the tests need to an env file
 * (default /tmp/litebase-ceph/env); LITEBASE_CEPH_* variables in the environment win over it.
 */

declare module 'vitest' {
  export interface ProvidedContext {
    /** Why the ceph project's global setup could not start a cluster ('' when it did or had no need). */
    cephStartFailure: string;
  }
}

const run = promisify(execFile);
const CTL = path.join(REPO_ROOT, 'infra', 'ceph', 'ctl.sh');
export const CEPH_START = path.join(REPO_ROOT, 'infra', 'ceph', 'start.sh');
export const CEPH_STOP = path.join(REPO_ROOT, 'infra', 'ceph', 'stop.sh');
export const DEFAULT_CEPH_ENV_FILE = '/tmp/litebase-ceph/env';

export interface CephSettings {
  /** The run folder of infra/ceph (CEPH_DIR). */
  dir: string;
  conf: string;
  /** One ceph-fuse mount of the same CephFS root per node. */
  mounts: string[];
  s3: { endpoint: string; region: string; accessKeyId: string; secretAccessKey: string; bucket: string };
}

export type CephReadiness = { ready: true; cluster: CephCluster } | { ready: false; reason: string };

/** CI must run the Ceph tests: there a missing cluster is a failure, not a skip. */
export const cephRequired = ['', 'false', '0', undefined].includes(process.env.CI) === false;

/** Every Ceph binary the cluster needs is on the PATH. */
export function cephInstalled(): boolean {
  const dirs = (process.env.PATH ?? '').split(':');
  return ['ceph-mon', 'ceph-osd', 'ceph-mds', 'radosgw', 'ceph-fuse'].every((bin) => dirs.some((dir) => existsSync(path.join(dir, bin))));
}

/** The cluster's settings from the environment, else from the env file start.sh wrote. */
export function readCephSettings(env: NodeJS.ProcessEnv = process.env): CephSettings | undefined {
  const file = env.LITEBASE_CEPH_ENV ?? DEFAULT_CEPH_ENV_FILE;
  const fromFile: Record<string, string> = {};
  if (existsSync(file)) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const match = /^export (LITEBASE_CEPH_[A-Z0-9_]+)="?([^"]*)"?$/.exec(line.trim());
      if (match) fromFile[match[1]!] = match[2]!;
    }
  }
  const get = (name: string): string | undefined => env[`LITEBASE_CEPH_${name}`] ?? fromFile[`LITEBASE_CEPH_${name}`];
  const [dir, conf, mounts, endpoint, accessKeyId, secretAccessKey, bucket] = [
    'DIR',
    'CONF',
    'MOUNTS',
    'S3_ENDPOINT',
    'S3_ACCESS_KEY_ID',
    'S3_SECRET_ACCESS_KEY',
    'S3_BUCKET',
  ].map(get);
  if (!dir || !conf || !mounts || !endpoint || !accessKeyId || !secretAccessKey || !bucket) return undefined;
  return {
    dir,
    conf,
    mounts: mounts.split(/\s+/).filter((mount) => mount !== ''),
    s3: { endpoint, region: get('S3_REGION') ?? 'us-east-1', accessKeyId, secretAccessKey, bucket },
  };
}

/** Why the cluster cannot be used, or undefined when every mount and RGW answer. */
async function whyUnusable(settings: CephSettings): Promise<string | undefined> {
  if (settings.mounts.length < 3) return `the tests need 3 ceph-fuse mounts, ${settings.mounts.length} are configured`;
  for (const mount of settings.mounts) {
    if (!isCephMount(mount)) return `${mount} is not a ceph-fuse mount`;
    try {
      statSync(mount);
    } catch (error) {
      return `${mount} does not answer: ${(error as Error).message}`;
    }
  }
  const answer = await fetch(settings.s3.endpoint, { signal: AbortSignal.timeout(5000) }).catch((error: unknown) => error as Error);
  if (answer instanceof Error) return `RGW at ${settings.s3.endpoint} does not answer: ${answer.message}`;
  return undefined;
}

export function isCephMount(mountpoint: string): boolean {
  return readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .some((line) => {
      const [, target, type] = line.split(' ');
      return target === mountpoint && type === 'fuse.ceph-fuse';
    });
}

/**
 * The running cluster, or the reason there is none: Ceph not installed, or installed but not
 * started (the ceph project's global setup starts it when it can; test/support/ceph-global-setup.ts).
 */
export async function prepareCeph(startFailure?: string): Promise<CephReadiness> {
  if (!cephInstalled()) return { ready: false, reason: 'Ceph is not installed (bash infra/ceph/start.sh installs it as root)' };
  const settings = readCephSettings();
  if (!settings) return { ready: false, reason: startFailure ?? 'no Ceph cluster is running (start one with bash infra/ceph/start.sh)' };
  const why = await whyUnusable(settings);
  if (why) return { ready: false, reason: `the Ceph cluster in ${settings.dir} is not usable: ${why}` };
  return { ready: true, cluster: new CephCluster(settings) };
}

/** Daemons ctl.sh starts and stops one at a time. */
export type CephDaemon = 'mon' | 'osd' | 'mds' | 'rgw' | 'mgr';

export class CephCluster {
  constructor(readonly settings: CephSettings) {}

  get mounts(): string[] {
    return this.settings.mounts;
  }

  /**
   * A new folder for one test, as each mount sees it: `paths[i]` is the same folder through mount
   * `i`. Made through the first mount; the others see it at once (close-to-open consistency).
   */
  folder(label: string): { relative: string; paths: string[] } {
    const relative = path.join('litebase-tests', `${label}-${process.pid}-${randomBytes(4).toString('hex')}`);
    mkdirSync(path.join(this.mounts[0]!, relative), { recursive: true });
    return { relative, paths: this.mounts.map((mount) => path.join(mount, relative)) };
  }

  /** Removes a test folder through whichever mount still answers. */
  removeFolder(relative: string): void {
    for (const mount of this.mounts) {
      try {
        rmSync(path.join(mount, relative), { recursive: true, force: true });
        return;
      } catch {
        // this mount is down; try the next
      }
    }
  }

  private readonly stores: string[] = [];

  /** Deletes everything under the prefixes objectStore() handed out (the OSD keeps data in memory). */
  async removeObjectStores(): Promise<void> {
    for (const url of this.stores.splice(0)) {
      const store = openObjectStore(url, this.objectStore('unused').options);
      try {
        const keys: string[] = [];
        for await (const info of store.list('')) keys.push(info.key);
        if (keys.length > 0) await store.delete(keys);
      } finally {
        await store.close();
      }
    }
  }

  /** `s3://bucket/prefix` under a fresh prefix, and what a server or the CLI needs to reach it. */
  objectStore(label: string): {
    url: string;
    env: Record<string, string>;
    options: { endpoint: string; region: string; forcePathStyle: boolean; accessKeyId: string; secretAccessKey: string };
  } {
    const { s3 } = this.settings;
    const url = `s3://${s3.bucket}/${label}-${process.pid}-${randomBytes(4).toString('hex')}`;
    if (label !== 'unused') this.stores.push(url);
    const env = {
      LITEBASE_S3_ENDPOINT: s3.endpoint,
      LITEBASE_S3_REGION: s3.region,
      LITEBASE_S3_FORCE_PATH_STYLE: 'true',
      LITEBASE_S3_ACCESS_KEY_ID: s3.accessKeyId,
      LITEBASE_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    };
    return {
      url,
      env,
      options: {
        endpoint: s3.endpoint,
        region: s3.region,
        forcePathStyle: true,
        accessKeyId: s3.accessKeyId,
        secretAccessKey: s3.secretAccessKey,
      },
    };
  }

  /** `infra/ceph/ctl.sh ARGS` against this cluster; its output, or an error carrying it. */
  async ctl(...args: string[]): Promise<string> {
    try {
      const { stdout, stderr } = await run('bash', [CTL, ...args], {
        env: { ...process.env, CEPH_DIR: this.settings.dir },
        timeout: 120_000,
      });
      return stdout + stderr;
    } catch (error) {
      const failed = error as Error & { stdout?: string; stderr?: string };
      throw new Error(`ctl.sh ${args.join(' ')} failed: ${failed.message}\n${failed.stdout ?? ''}${failed.stderr ?? ''}`, { cause: error });
    }
  }

  /** The `ceph` CLI against this cluster (JSON out when asked with -f json). */
  async ceph(...args: string[]): Promise<string> {
    const { stdout } = await run('ceph', ['--conf', this.settings.conf, ...args], { timeout: 60_000 });
    return stdout;
  }

  /** SIGKILL the ceph-fuse client of mount `index`: the mount answers ENOTCONN from then on. */
  async killMount(index: number): Promise<void> {
    await this.ctl('kill-mount', this.mounts[index]!);
  }

  /** Mount `index` again (a new client), clearing a dead mount first. */
  async remount(index: number): Promise<void> {
    await this.ctl('mount', this.mounts[index]!);
  }

  async stop(daemon: CephDaemon): Promise<void> {
    await this.ctl('stop', daemon);
  }

  async start(daemon: CephDaemon): Promise<void> {
    await this.ctl('start', daemon);
  }

  /**
   * Puts the cluster back as start.sh left it after a fault test: every daemon but the manager
   * running, every mount answering, no pool quota.
   */
  async heal(): Promise<void> {
    for (const daemon of ['mon', 'osd', 'mds', 'rgw'] as const) await this.start(daemon);
    await this.ceph('osd', 'pool', 'set-quota', 'cephfs_data', 'max_bytes', '0');
    await this.stop('mgr');
    for (const [index, mount] of this.mounts.entries()) {
      let answers = isCephMount(mount);
      try {
        statSync(mount);
      } catch {
        answers = false;
      }
      if (!answers) await this.remount(index);
    }
  }

  /** Waits until the MDS is active again (after a restart). */
  async waitForActiveMds(timeoutMs = 60_000): Promise<void> {
    await waitFor(async () => (await this.ceph('mds', 'stat')).includes('up:active'), timeoutMs, 'an active MDS', 250);
  }
}

/** One Litebase node on the Ceph cluster (startCephNode). */
export interface CephNodeOptions {
  nodeId: string;
  /** The node's view of the shared folder (through its own mount). */
  dataDir: string;
  env?: Record<string, string>;
  extraArgs?: string[];
  localDir?: string;
  port?: number;
}

/**
 * Longer than the 1 s of the tests on a local folder: a lease renewal is a few metadata round
 * trips to the MDS, and on a busy two-core machine with the whole Ceph cluster on it, 2 s leases
 * were lost now and then with nothing wrong.
 */
export const CEPH_LEASE_TTL_MS = 4000;

export const CEPH_NODE_ENV: Record<string, string> = {
  LITEBASE_LEASE_TTL_MS: String(CEPH_LEASE_TTL_MS),
  LITEBASE_REPLICA_WATCH: 'false',
  LITEBASE_REPLICA_POLL_MS: '200',
  LITEBASE_WAIT_TIMEOUT_MS: '15000',
};

/**
 * A Litebase node whose shared folder is seen through its own mount (its own ceph-fuse client) and
 * whose local folder is on the local disk; lease and poll as startClusterNode in server.ts but
 * longer, watching off (inotify does not see other clients' changes on CephFS: poll and nudges
 * only). Kept in `servers` for the caller's clean-up.
 */
export async function startCephNode(options: CephNodeOptions, servers: TestServer[]): Promise<TestServer> {
  const serverOptions: ServerOptions = {
    dataDir: options.dataDir,
    localDir: options.localDir ?? tempDir(`litebase-ceph-local-${options.nodeId}-`),
    nodeId: options.nodeId,
    env: { ...CEPH_NODE_ENV, ...options.env },
    ...(options.extraArgs ? { extraArgs: options.extraArgs } : {}),
    ...(options.port ? { port: options.port } : {}),
    // Starting on CephFS under load (the daemons share the two cores) can take a while.
    readyTimeoutMs: 60_000,
  };
  const server = await TestServer.start(serverOptions);
  servers.push(server);
  return server;
}

// ---- a Litebase cluster on the mounts ----------------------------------------------------------

export const isRunning = (node: TestServer): boolean => node.child.exitCode === null && node.child.signalCode === null;

/** GET /v1/cluster as the node sees it; undefined when it does not answer in time. */
export async function clusterView(node: TestServer): Promise<any> {
  const response = await node
    .fetch(`${node.url}/v1/cluster`, { headers: { authorization: `Bearer ${node.key}` }, signal: AbortSignal.timeout(3000) })
    .catch(() => undefined);
  return response?.ok ? response.json() : undefined;
}

/** The node that says of itself that it is the Primary, among those that run. */
export async function primaryOf(nodes: TestServer[]): Promise<TestServer | undefined> {
  for (const node of nodes.filter(isRunning)) {
    const view = await clusterView(node);
    const self = view?.nodes?.find((entry: { address: string }) => entry.address === node.url);
    if (self?.role === 'primary' && view?.primary?.nodeId === self.nodeId) return node;
  }
  return undefined;
}

export async function waitForPrimary(nodes: TestServer[], timeoutMs = 30_000): Promise<TestServer> {
  let primary: TestServer | undefined;
  await waitFor(async () => (primary = await primaryOf(nodes)) !== undefined, timeoutMs, 'a Primary');
  return primary!;
}

/** One INSERT of `value` into t(v), with a time limit (a node whose mount died may hang). */
export async function insertValue(node: TestServer, value: string, timeoutMs = 5000): Promise<{ status: number; body: any } | undefined> {
  const response = await node
    .fetch(`${node.url}/v1/databases/app/query`, {
      method: 'POST',
      headers: { authorization: `Bearer ${node.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ statements: [{ sql: 'INSERT INTO t(v) VALUES (?)', params: [value] }] }),
      signal: AbortSignal.timeout(timeoutMs),
    })
    .catch(() => undefined);
  if (!response) return undefined;
  return { status: response.status, body: await response.json().catch(() => undefined) };
}

/** insertValue until it is answered 200 (a 503 asks to retry: a lease renewal may be late), or `timeoutMs` passed. */
export async function insertUntilAcknowledged(
  node: TestServer,
  value: string,
  timeoutMs = 30_000,
): Promise<{ status: number; body: any } | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answer = await insertValue(node, value, 15_000);
    if (answer?.status === 200 || Date.now() > deadline) return answer;
    if (answer !== undefined && answer.status !== 503) return answer;
    await sleep(250);
  }
}

/** Creates database `app` with table t(id, v UNIQUE) through `node`, retrying while it answers 503. */
export async function createApp(node: TestServer): Promise<void> {
  const retrying = async (what: string, call: () => Promise<{ status: number; body: any }>, ok: number[]): Promise<void> => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const answer = await call();
      if (ok.includes(answer.status)) return;
      if (answer.status !== 503 || Date.now() > deadline) throw new Error(`${what}: ${answer.status} ${JSON.stringify(answer.body)}`);
      await sleep(250);
    }
  };
  // 409: an earlier try that answered 503 had created it after all.
  await retrying('create app', () => node.request('POST', '/v1/databases', { name: 'app' }), [201, 409]);
  await retrying(
    'create table',
    () =>
      node.request('POST', '/v1/databases/app/query', {
        statements: [{ sql: 'CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT UNIQUE)' }],
      }),
    [200],
  );
}

/** Every v in t on `node`, once it has applied `minPosition`. */
export async function valuesOn(node: TestServer, minPosition?: string): Promise<string[]> {
  const response = await node.request('POST', '/v1/databases/app/query', {
    statements: [{ sql: 'SELECT v FROM t ORDER BY v' }],
    ...(minPosition ? { minPosition } : {}),
  });
  if (response.status !== 200) throw new Error(`select on ${node.url}: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body.results[0].rows.map((row: string[]) => row[0]);
}

/**
 * Clients writing unique values through the given nodes until stopped; `acknowledged` holds every
 * value some node answered 200 for, with the node and the time of the answer.
 */
export class Writers {
  /** Each acknowledged value: the node that answered, when it was sent and answered, and the log position it answered. */
  readonly acknowledged: Array<{ value: string; node: TestServer; sentAt: number; at: number; position: bigint }> = [];
  readonly refusals = new Map<string, number>();
  private stopped = false;
  private sequence = 0;
  private readonly running: Promise<void>[];

  constructor(
    private readonly targets: () => TestServer[],
    clients: number,
    private readonly prefix = 'w',
  ) {
    this.running = Array.from({ length: clients }, (_, client) => this.loop(client));
  }

  private async loop(client: number): Promise<void> {
    while (!this.stopped) {
      const nodes = this.targets().filter(isRunning);
      const node = nodes[(this.sequence + client) % Math.max(1, nodes.length)];
      if (!node) {
        await sleep(50);
        continue;
      }
      const value = `${this.prefix}${this.sequence++}`;
      const sentAt = Date.now();
      const answer = await insertValue(node, value);
      if (answer?.status === 200) this.acknowledged.push({ value, node, sentAt, at: Date.now(), position: BigInt(answer.body.position) });
      else {
        const code = answer ? String(answer.body?.error?.code ?? answer.status) : 'no answer';
        this.refusals.set(code, (this.refusals.get(code) ?? 0) + 1);
        await sleep(50);
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.running);
  }
}

/**
 * Checks the log folder as a reader does: every segment is at its position, each starts where the
 * one before ended (by position and rolling checksum), terms never go down. Answers the last position.
 */
export function checkLogChain(logDir: string): bigint {
  let last: bigint | undefined;
  let checksum: bigint | undefined;
  let term = 0n;
  for (const header of logHeaders(logDir)) {
    if (header.term < term) throw new Error(`position ${header.position} has term ${header.term} after term ${term}`);
    if (last !== undefined && header.position !== last + 1n) throw new Error(`position ${header.position} follows position ${last}`);
    if (checksum !== undefined && header.preChecksum !== checksum)
      throw new Error(`position ${header.position} does not continue the checksum chain`);
    term = header.term;
    last = header.position;
    checksum = header.postChecksum;
  }
  return last ?? 0n;
}

/** The term of the Primary that wrote segment `position`. */
export function segmentTerm(logDir: string, position: bigint): bigint {
  const log = new LogDirectory(logDir);
  log.locate(position);
  const bytes = log.readSyncInto(position, Buffer.alloc(1 << 20));
  if (!bytes) throw new Error(`segment ${position} is too large to read here`);
  return decodeSegment(bytes).header.term;
}

/** The same checksum on every node once each has applied `position`. */
export async function sameEverywhere(nodes: TestServer[], position: string): Promise<string> {
  const sums = new Set<string>();
  for (const node of nodes) {
    await valuesOn(node, position);
    sums.add((await node.request('GET', '/v1/databases/app')).body.database.checksum);
  }
  if (sums.size !== 1) throw new Error(`the nodes disagree at position ${position}: ${[...sums].join(', ')}`);
  return [...sums][0]!;
}

/** A failed test shows what the servers logged as errors. */
export function printServerErrors(servers: TestServer[]): void {
  for (const server of servers) {
    const errors = server.output.split('\n').filter((line) => line.includes('"level":50') || line.includes('"level":60'));
    if (errors.length > 0) console.error(`${server.url}:\n${errors.slice(0, 8).join('\n')}`);
  }
}

/**
 * The test group's frame: runs `body` when the cluster is there; otherwise the group is skipped
 * with the reason, or, when CI is set, has one test that fails with it.
 */
export function describeOnCeph(title: string, readiness: CephReadiness, body: (cluster: CephCluster) => void): void {
  if (!readiness.ready) console.log(`[ceph] ${title}: ${cephRequired ? 'failing, CI needs Ceph' : 'skipped'}: ${readiness.reason}`);
  describe.skipIf(!readiness.ready && !cephRequired)(`${title}${readiness.ready ? '' : ` (no Ceph: ${readiness.reason})`}`, () => {
    if (!readiness.ready) {
      it('has a Ceph cluster, which CI requires', () => {
        throw new Error(`the Ceph tests need a running cluster when CI is set (bash infra/ceph/start.sh): ${readiness.reason}`);
      });
      return;
    }
    body(readiness.cluster);
  });
}
