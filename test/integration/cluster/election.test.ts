import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import ts from 'typescript';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ClusterMember, type ClusterMemberOptions, type Role } from '../../../src/cluster/cluster-member.js';
import { REPO_ROOT } from '../../support/server.js';

/**
 * Election, lease and fencing (docs/CLUSTER.md) on a real folder: several members in this process,
 * and members in child processes that are stopped (SIGSTOP), resumed and killed.
 */

const TTL = 600;
const SKEW = 100;
/** DESIGN: a new Primary within TTL + skew + 1 s of the old one's crash. */
const FAILOVER_LIMIT_MS = TTL + SKEW + 1000;

const logger = pino({ level: process.env.LITEBASE_TEST_LOG ?? 'silent' });
const members: ClusterMember[] = [];
const children: ChildProcess[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.all(members.splice(0).map((member) => member.abandon()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'litebase-election-'));
  dirs.push(dir);
  return dir;
}

async function start(dataDir: string, nodeId: string, options: Partial<ClusterMemberOptions> = {}): Promise<ClusterMember> {
  const member = await ClusterMember.start({
    dataDir,
    nodeId,
    address: `http://${nodeId}.internal:8080`,
    leaseTtlMs: TTL,
    clockSkewMs: SKEW,
    heartbeatMs: 200,
    logger,
    ...options,
  });
  members.push(member);
  return member;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs: number, everyMs = 5): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

function writers(group: ClusterMember[]): ClusterMember[] {
  return group.filter((member) => member.canWrite());
}

/** Samples every few ms that at most one member may write, until stopped. */
function watchSingleWriter(group: ClusterMember[]): { stop(): { samples: number; overlaps: string[] } } {
  let samples = 0;
  const overlaps: string[] = [];
  const timer = setInterval(() => {
    samples++;
    const now = writers(group);
    if (now.length > 1) overlaps.push(now.map((member) => `${member.nodeId}@${member.term}`).join(','));
  }, 2);
  return {
    stop() {
      clearInterval(timer);
      return { samples, overlaps };
    },
  };
}

interface TermFile {
  term: bigint;
  nodeId: string;
  address: string;
  createdAt: number;
}

function readTerms(dataDir: string): TermFile[] {
  const dir = path.join(dataDir, 'cluster', 'terms');
  return readdirSync(dir)
    .filter((name) => /^[0-9]+$/.test(name))
    .map((name) => ({ term: BigInt(name), ...(JSON.parse(readFileSync(path.join(dir, name), 'utf8')) as Omit<TermFile, 'term'>) }))
    .sort((a, b) => (a.term < b.term ? -1 : 1));
}

interface LeaseFile {
  term: string;
  nodeId: string;
  address: string;
  expiresAt: number;
  renewedAt: number;
}

function readLease(dataDir: string): LeaseFile {
  return JSON.parse(readFileSync(path.join(dataDir, 'cluster', 'lease.json'), 'utf8')) as LeaseFile;
}

/** Records every 'role' event: who became what, at which term. */
function recordRoles(group: ClusterMember[]): Array<{ nodeId: string; role: Role; term: bigint }> {
  const events: Array<{ nodeId: string; role: Role; term: bigint }> = [];
  for (const member of group) member.on('role', (role, term) => events.push({ nodeId: member.nodeId, role, term }));
  return events;
}

describe('election among members of one process', () => {
  it('members racing on an empty folder elect exactly one Primary, at term 1', async () => {
    const dataDir = tempDir();
    const group = await Promise.all(['n1', 'n2', 'n3', 'n4'].map((id) => start(dataDir, id)));
    const watch = watchSingleWriter(group);
    const primary = await waitFor('a primary', () => writers(group)[0], 2000);
    await sleep(3 * TTL);
    const { samples, overlaps } = watch.stop();
    expect(samples).toBeGreaterThan(100);
    expect(overlaps).toEqual([]);

    expect(group.filter((member) => member.role === 'primary')).toEqual([primary]);
    expect(primary.canWrite()).toBe(true);
    expect(primary.term).toBe(1n);
    for (const member of group) {
      if (member === primary) continue;
      expect(member.role).toBe('replica');
      expect(member.canWrite()).toBe(false);
      expect(member.lease).toMatchObject({
        term: 1n,
        primaryNodeId: primary.nodeId,
        primaryAddress: `http://${primary.nodeId}.internal:8080`,
      });
    }
    expect(readTerms(dataDir)).toEqual([
      expect.objectContaining({ term: 1n, nodeId: primary.nodeId, address: `http://${primary.nodeId}.internal:8080` }),
    ]);
    const lease = readLease(dataDir);
    expect(lease).toMatchObject({ term: '1', nodeId: primary.nodeId });
    // Renewed by its holder: the record is fresh and reaches about one TTL ahead.
    expect(lease.expiresAt).toBeGreaterThan(Date.now());
    expect(lease.expiresAt - lease.renewedAt).toBe(TTL);
  });

  it('a crashed Primary is replaced within TTL + skew + 1 s, at the next term; terms are never reused', async () => {
    const dataDir = tempDir();
    const group = await Promise.all(['a', 'b', 'c'].map((id) => start(dataDir, id)));
    const events = recordRoles(group);
    const watch = watchSingleWriter(group);
    let primary = await waitFor('a primary', () => writers(group)[0], 2000);
    const winners = new Map<bigint, string>([[primary.term, primary.nodeId]]);
    const alive = new Set(group);

    for (let crash = 0; crash < 2; crash++) {
      const term = primary.term;
      const crashedAt = Date.now();
      await primary.abandon(); // the keeper thread is gone: no release, no more renewals
      alive.delete(primary);
      const next = await waitFor('a new primary', () => writers([...alive])[0], FAILOVER_LIMIT_MS + 500);
      expect(Date.now() - crashedAt).toBeLessThan(FAILOVER_LIMIT_MS);
      expect(next.term).toBe(term + 1n);
      winners.set(next.term, next.nodeId);
      // Events come by message behind the shared memory: let this one arrive before the next crash.
      await waitFor('its role event', () => events.find((event) => event.role === 'primary' && event.term === next.term), 2000);
      primary = next;
    }
    expect(watch.stop().overlaps).toEqual([]);

    const terms = readTerms(dataDir);
    expect(terms.map((file) => file.term)).toEqual([1n, 2n, 3n]);
    for (const file of terms) expect(file.nodeId).toBe(winners.get(file.term));
    // Every term after the first (won before the listeners were attached) made exactly one member Primary.
    const becamePrimary = events.filter((event) => event.role === 'primary');
    const later = [...winners].filter(([term]) => term > 1n);
    expect(becamePrimary.map((event) => `${event.term}:${event.nodeId}`).sort()).toEqual(later.map(([term, id]) => `${term}:${id}`).sort());
    expect(readLease(dataDir)).toMatchObject({ term: '3', nodeId: primary.nodeId });
  });

  it('a graceful stop releases the lease and another member takes over at once', async () => {
    const dataDir = tempDir();
    const group = await Promise.all(['a', 'b', 'c'].map((id) => start(dataDir, id)));
    const primary = await waitFor('a primary', () => writers(group)[0], 2000);
    const rest = group.filter((member) => member !== primary);
    const stoppedAt = Date.now();
    await primary.stop();
    expect(primary.canWrite()).toBe(false);
    expect(primary.role).not.toBe('primary');
    const next = await waitFor('a new primary', () => writers(rest)[0], 2000);
    // No waiting for the TTL: a poll interval (TTL / 3) plus a little.
    expect(Date.now() - stoppedAt).toBeLessThan(TTL);
    expect(next.term).toBe(2n);
    expect(readTerms(dataDir).map((file) => file.term)).toEqual([1n, 2n]);
    const heartbeat = (await next.nodes()).find((node) => node.nodeId === primary.nodeId);
    expect(heartbeat?.role).toBe('replica');
  });

  it('keeps renewing the lease while the main thread is blocked for twice the TTL', async () => {
    const dataDir = tempDir();
    const group = await Promise.all(['a', 'b', 'c'].map((id) => start(dataDir, id)));
    const events = recordRoles(group);
    const primary = await waitFor('a primary', () => writers(group)[0], 2000);
    await sleep(TTL);

    // A long SQL statement looks like this to the event loop.
    const blockedAt = Date.now();
    while (Date.now() - blockedAt < 2 * TTL) {
      // busy
    }
    expect(primary.canWrite()).toBe(true);
    const lease = readLease(dataDir);
    expect(lease).toMatchObject({ term: '1', nodeId: primary.nodeId });
    expect(lease.renewedAt).toBeGreaterThan(blockedAt + TTL);

    await sleep(100); // let queued events arrive
    expect(events.filter((event) => event.role === 'primary')).toEqual([]);
    expect(group.map((member) => member.role).sort()).toEqual(['primary', 'replica', 'replica']);
    expect(readTerms(dataDir).map((file) => file.term)).toEqual([1n]);
  });

  it('stepDown stops writes at once; another member wins the next term and the old one follows it', async () => {
    const dataDir = tempDir();
    const group = await Promise.all(['a', 'b', 'c'].map((id) => start(dataDir, id)));
    const primary = await waitFor('a primary', () => writers(group)[0], 2000);
    const roles: Role[] = [];
    primary.on('role', (role) => roles.push(role));
    const steppedAt = Date.now();
    primary.stepDown('EEXIST on segment 00000000000000000042');
    expect(primary.canWrite()).toBe(false);
    expect(primary.role).toBe('candidate');
    expect(roles).toEqual(['candidate']);

    const next = await waitFor('a new primary', () => writers(group)[0], FAILOVER_LIMIT_MS + 500);
    expect(next).not.toBe(primary);
    expect(Date.now() - steppedAt).toBeLessThan(FAILOVER_LIMIT_MS);
    expect(next.term).toBe(2n);
    await waitFor('the old primary to follow', () => primary.role === 'replica', 1000);
    expect(primary.lease).toMatchObject({ term: 2n, primaryNodeId: next.nodeId });
    expect(primary.canWrite()).toBe(false);
  });

  it('a Primary whose lease renewal fails steps down at its next renewal, long before the lease runs out', async () => {
    const dataDir = tempDir();
    const ttl = 1500; // renewals every 500 ms, write window 1125 ms
    const group = await Promise.all(['a', 'b'].map((id) => start(dataDir, id, { leaseTtlMs: ttl })));
    const primary = await waitFor('a primary', () => writers(group)[0], 3000);
    const leaseFile = path.join(dataDir, 'cluster', 'lease.json');
    // lease.json becomes a folder: reading and replacing it fail (EISDIR), as on a broken mount.
    unlinkSync(leaseFile);
    mkdirSync(leaseFile);
    const brokenAt = Date.now();
    await waitFor('the primary to step down', () => !primary.canWrite(), 1000, 2);
    expect(Date.now() - brokenAt).toBeLessThan(800);
    expect(primary.role).toBe('candidate');
    await sleep(ttl);
    expect(writers(group)).toEqual([]);

    rmdirSync(leaseFile);
    const next = await waitFor('a primary again', () => writers(group)[0], ttl + SKEW + 1500);
    expect(next.term).toBe(2n);
    expect(readLease(dataDir)).toMatchObject({ term: '2', nodeId: next.nodeId });
  });

  it('stands above the highest term in cluster/terms even when lease.json shows a lower one', async () => {
    const dataDir = tempDir();
    const terms = path.join(dataDir, 'cluster', 'terms');
    mkdirSync(terms, { recursive: true });
    const longAgo = Date.now() - 3_600_000;
    for (let term = 1; term <= 5; term++) {
      writeFileSync(path.join(terms, String(term)), JSON.stringify({ nodeId: 'gone', address: 'http://gone', createdAt: longAgo }));
    }
    writeFileSync(
      path.join(dataDir, 'cluster', 'lease.json'),
      JSON.stringify({ term: '3', nodeId: 'gone', address: 'http://gone', expiresAt: longAgo, renewedAt: longAgo }),
    );

    const member = await start(dataDir, 'a');
    await waitFor('a primary', () => member.canWrite(), TTL + SKEW + 1000);
    expect(member.term).toBe(6n);
    expect(readTerms(dataDir).map((file) => `${file.term}:${file.nodeId}`)).toEqual([
      '1:gone',
      '2:gone',
      '3:gone',
      '4:gone',
      '5:gone',
      '6:a',
    ]);

    // A deposed Primary's late write puts a lower term into lease.json: the holder writes its own
    // over it at its next renewal, and nobody stands against it meanwhile.
    const other = await start(dataDir, 'b');
    const watch = watchSingleWriter([member, other]);
    writeFileSync(
      path.join(dataDir, 'cluster', 'lease.json'),
      JSON.stringify({ term: '5', nodeId: 'gone', address: 'http://gone', expiresAt: Date.now() + 60_000, renewedAt: Date.now() }),
    );
    await waitFor('the lease to be repaired', () => readLease(dataDir).term === '6', TTL);
    await sleep(2 * TTL);
    expect(watch.stop().overlaps).toEqual([]);
    expect(member.canWrite()).toBe(true);
    expect(other.role).toBe('replica');
    expect(other.lease).toMatchObject({ term: 6n, primaryNodeId: 'a' });
    expect(readTerms(dataDir)).toHaveLength(6);
  });

  it('publishes heartbeats with roles and the database positions the engine reports', async () => {
    const dataDir = tempDir();
    const group = await Promise.all(['a', 'b'].map((id) => start(dataDir, id)));
    const primary = await waitFor('a primary', () => writers(group)[0], 2000);
    const replica = group.find((member) => member !== primary)!;
    replica.setDatabasePositions({ app: { position: '17' }, logs: { position: '3' } });
    primary.setDatabasePositions({ app: { position: '18' } });
    let nodes = await primary.nodes();
    const deadline = Date.now() + 2000;
    while (!(nodes.length === 2 && nodes.every((node) => Object.keys(node.databases).length > 0)) && Date.now() < deadline) {
      await sleep(20);
      nodes = await primary.nodes();
    }
    expect(nodes.map((node) => node.nodeId)).toEqual(['a', 'b']);
    const byId = new Map(nodes.map((node) => [node.nodeId, node]));
    expect(byId.get(primary.nodeId)).toMatchObject({
      role: 'primary',
      term: '1',
      address: `http://${primary.nodeId}.internal:8080`,
      databases: { app: { position: '18' } },
    });
    expect(byId.get(replica.nodeId)).toMatchObject({
      role: 'replica',
      term: '1',
      databases: { app: { position: '17' }, logs: { position: '3' } },
    });
    for (const node of nodes) expect(Date.now() - node.lastHeartbeat).toBeLessThan(1000);
    const file = JSON.parse(readFileSync(path.join(dataDir, 'cluster', 'nodes', `${replica.nodeId}.json`), 'utf8'));
    expect(file).toMatchObject({ nodeId: replica.nodeId, role: 'replica', databases: { logs: { position: '3' } } });
  });

  it('refuses invalid options with a typed error', async () => {
    const dataDir = tempDir();
    await expect(start(dataDir, '../escape')).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await expect(start(dataDir, 'ok', { leaseTtlMs: 50 })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    expect(existsSync(path.join(dataDir, 'cluster'))).toBe(false);
  });
});

/**
 * Members in child processes, run from JavaScript compiled from the sources the way the build
 * compiles them (so the keeper thread is also tested from compiled code).
 */
describe('members in separate processes', () => {
  let buildDir: string;
  let memberModule: string;
  let childScript: string;

  beforeAll(() => {
    buildDir = mkdtempSync(path.join(tmpdir(), 'litebase-election-build-'));
    memberModule = compile(path.join(REPO_ROOT, 'src', 'cluster', 'cluster-member.ts'), buildDir);
    childScript = path.join(buildDir, 'member-child.mjs');
    writeFileSync(childScript, CHILD_SOURCE);
  });

  afterAll(() => {
    if (buildDir) rmSync(buildDir, { recursive: true, force: true });
  });

  it('SIGSTOP: a stopped Primary is replaced at a higher term; resumed, it never writes again and follows', async () => {
    const dataDir = tempDir();
    const ttl = 800;
    const writesFile = path.join(dataDir, 'writes.log');
    const a = spawnMember(childScript, memberModule, dataDir, 'a', ttl, writesFile);
    await a.waitFor('a to be primary', (report) => report.canWrite && report.role === 'primary', 5000);

    const b = await start(dataDir, 'b', { leaseTtlMs: ttl });
    expect(b.lease).toMatchObject({ term: 1n, primaryNodeId: 'a' });
    const bWrites = simulateWrites(b, writesFile);

    a.child.kill('SIGSTOP');
    const stoppedAt = Date.now();
    await waitFor('b to take over', () => b.canWrite(), ttl + SKEW + 1500);
    const tookOverAfter = Date.now() - stoppedAt;
    expect(tookOverAfter).toBeLessThan(ttl + SKEW + 1000);
    expect(b.term).toBe(2n);
    await sleep(2 * ttl - (Date.now() - stoppedAt));

    const resumedAt = Date.now();
    a.child.kill('SIGCONT');
    await a.waitFor('a to follow b', (report) => report.t > resumedAt && report.role === 'replica' && report.primary === 'b', 3000);
    await sleep(300);
    bWrites.stop();

    const afterResume = a.reports.filter((report) => report.t >= resumedAt);
    expect(afterResume.length).toBeGreaterThan(10);
    // canWrite() was false from the first report after the resume on, before any event could say so.
    expect(afterResume.filter((report) => report.canWrite)).toEqual([]);
    expect(afterResume.filter((report) => report.role === 'primary')).toEqual([]);
    expect(afterResume.at(-1)).toMatchObject({ role: 'replica', term: '2', primary: 'b', canWrite: false });

    // The simulated appends: every one a made was decided before every one of b's.
    const writes = readFileSync(writesFile, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { node: string; term: string; t: number });
    const ofA = writes.filter((write) => write.node === 'a');
    const ofB = writes.filter((write) => write.node === 'b');
    expect(ofA.length).toBeGreaterThan(0);
    expect(ofB.length).toBeGreaterThan(0);
    expect(Math.max(...ofA.map((write) => write.t))).toBeLessThan(Math.min(...ofB.map((write) => write.t)));
    expect(new Set(ofA.map((write) => write.term))).toEqual(new Set(['1']));
    expect(new Set(ofB.map((write) => write.term))).toEqual(new Set(['2']));

    expect(readTerms(dataDir).map((file) => `${file.term}:${file.nodeId}`)).toEqual(['1:a', '2:b']);
    expect(readLease(dataDir)).toMatchObject({ term: '2', nodeId: 'b' });
    expect(b.canWrite()).toBe(true);
  });

  it('SIGKILL: a killed Primary process is replaced within TTL + skew + 1 s', async () => {
    const dataDir = tempDir();
    const a = spawnMember(childScript, memberModule, dataDir, 'a', TTL, path.join(dataDir, 'writes.log'));
    await a.waitFor('a to be primary', (report) => report.canWrite, 5000);
    const b = await start(dataDir, 'b');
    const c = await start(dataDir, 'c');
    a.child.kill('SIGKILL');
    const killedAt = Date.now();
    const next = await waitFor('a new primary', () => writers([b, c])[0], FAILOVER_LIMIT_MS + 500);
    expect(Date.now() - killedAt).toBeLessThan(FAILOVER_LIMIT_MS);
    expect(next.term).toBe(2n);
    expect(readTerms(dataDir).map((file) => `${file.term}:${file.nodeId}`)).toEqual(['1:a', `2:${next.nodeId}`]);
  });
});

interface Report {
  t: number;
  role: Role;
  term: string;
  canWrite: boolean;
  primary: string | null;
}

/** A member in a child process that reports its state every 10 ms on stdout, one JSON line each. */
function spawnMember(script: string, memberModule: string, dataDir: string, nodeId: string, ttl: number, writesFile: string) {
  const child = spawn(
    process.execPath,
    [script, pathToFileURL(memberModule).href, REPO_ROOT, dataDir, nodeId, String(ttl), String(SKEW), writesFile],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LITEBASE_TEST_LOG: process.env.LITEBASE_TEST_LOG ?? 'warn' },
    },
  );
  children.push(child);
  const reports: Report[] = [];
  let buffered = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) if (line.trim() !== '') reports.push(JSON.parse(line) as Report);
  });
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return {
    child,
    reports,
    async waitFor(what: string, test: (report: Report) => boolean, timeoutMs: number): Promise<Report> {
      return waitFor(
        `${what} (stderr: ${stderr.slice(-500)})`,
        () => {
          if (child.exitCode !== null) throw new Error(`member ${nodeId} exited with ${child.exitCode}: ${stderr}`);
          return reports.find(test);
        },
        timeoutMs,
      );
    },
  };
}

/** What an engine does: append while canWrite() says so. Each line records when it was decided. */
function simulateWrites(member: ClusterMember, file: string): { stop(): void } {
  const timer = setInterval(() => {
    const t = Date.now();
    if (member.canWrite())
      writeFileSync(file, JSON.stringify({ node: member.nodeId, term: member.term.toString(), t }) + '\n', { flag: 'a' });
  }, 5);
  return { stop: () => clearInterval(timer) };
}

const CHILD_SOURCE = `
import { appendFileSync } from 'node:fs';
import { createRequire } from 'node:module';
const [memberModule, repoRoot, dataDir, nodeId, ttl, skew, writesFile] = process.argv.slice(2);
const { pino } = createRequire(repoRoot + '/package.json')('pino');
const { ClusterMember } = await import(memberModule);
const member = await ClusterMember.start({
  dataDir, nodeId, address: 'http://' + nodeId + '.internal:8080',
  leaseTtlMs: Number(ttl), clockSkewMs: Number(skew), heartbeatMs: 200,
  logger: pino({ level: process.env.LITEBASE_TEST_LOG || 'warn' }, pino.destination(2)),
});
setInterval(() => {
  const t = Date.now();
  const canWrite = member.canWrite();
  if (canWrite) appendFileSync(writesFile, JSON.stringify({ node: nodeId, term: member.term.toString(), t }) + '\\n');
  process.stdout.write(JSON.stringify({ t, role: member.role, term: member.term.toString(), canWrite, primary: member.lease.primaryNodeId ?? null }) + '\\n');
}, 10);
process.on('SIGTERM', () => member.stop().then(() => process.exit(0)));
`;

/**
 * Compile a module and the modules it imports (relative imports only) to JavaScript the way tsc
 * does, into `outDir`, keeping the folder structure. Returns the path of the compiled entry.
 */
function compile(entry: string, outDir: string): string {
  const done = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (done.has(file)) continue;
    done.add(file);
    const text = readFileSync(file, 'utf8');
    const output = ts.transpileModule(text, {
      fileName: file,
      compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
    });
    const target = path.join(outDir, path.relative(REPO_ROOT, file)).replace(/\.ts$/, '.js');
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(target, output.outputText);
    // Imported modules, and thread modules named by path (startModuleWorker(import.meta.url, './x-thread.js')).
    for (const match of text.matchAll(/'(\.{1,2}\/[^']+)\.js'/g)) {
      const source = path.resolve(path.dirname(file), `${match[1]}.ts`);
      if (existsSync(source)) queue.push(source);
    }
  }
  writeFileSync(path.join(outDir, 'package.json'), JSON.stringify({ type: 'module' }));
  return path.join(outDir, path.relative(REPO_ROOT, entry)).replace(/\.ts$/, '.js');
}
