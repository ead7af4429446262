import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, describe, expect, it } from 'vitest';
import { LitebaseClientError, type LitebaseClient } from '../../src/client/client.js';
import { ERRORS, isErrorCode } from '../../src/error-codes.js';
import { ContainerCluster, ContainerEnvironment, ContainerLoadBalancer, prepareDocker, ROOT_KEY } from '../support/containers.js';
import { REPO_ROOT } from '../support/server.js';
import { sleep, waitFor } from '../support/wait.js';

/**
 * HAProxy (infra/haproxy, the `lb` service of infra/compose.yaml) in front of three nodes in
 * containers, with applications talking to it alone: the TypeScript client, given the balancer's
 * one URL, writes and reads through it while a Replica's container is killed and then the
 * Primary's. What a client may see is a success or a documented 503 with Retry-After (the client
 * retries those it can; a write whose outcome is unknown comes back as PRIMARY_NO_ANSWER), never a
 * closed connection or another error; and every write the client saw acknowledged is there
 * afterwards, under the row id it was given.
 *
 * Needs Docker; without it the suite is skipped with the reason, and with CI set it fails.
 */
const docker = await prepareDocker();
const required = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false';
if (!docker.ready) console.log(`[containers] ${required ? 'failing, CI needs Docker' : 'skipped'}: ${docker.reason}`);

const LEASE_TTL_MS = 2000;
const ERRORS_DIR = path.join(REPO_ROOT, 'infra', 'haproxy', 'errors');

type Phase = 'steady' | 'replica killed' | 'primary killed';

interface Acknowledged {
  value: string;
  rowid: string;
  position: bigint;
}

interface Failure {
  phase: Phase;
  what: string;
  /** For a write: the value it inserts. */
  value?: string;
  code: string;
  status: number;
  retryAfter: number | undefined;
  message: string;
}

/** A documented 503: a code of docs/ERRORS.md whose status is 503, with its Retry-After header. */
function isDocumented503(failure: Failure): boolean {
  return failure.status === 503 && isErrorCode(failure.code) && ERRORS[failure.code].status === 503 && failure.retryAfter !== undefined;
}

function failureOf(phase: Phase, what: string, error: unknown, value?: string): Failure {
  const write = value === undefined ? {} : { value };
  if (error instanceof LitebaseClientError) {
    return { phase, what, ...write, code: error.code, status: error.status, retryAfter: error.retryAfter, message: error.message };
  }
  return { phase, what, ...write, code: 'THROWN', status: 0, retryAfter: undefined, message: String(error) };
}

/** The steady load: writers and readers, each a loop of requests through the balancer. */
class Load {
  phase: Phase = 'steady';
  readonly acknowledged: Acknowledged[] = [];
  readonly failures: Failure[] = [];
  readonly reads = { ok: 0, behind: [] as string[] };
  private maxPosition = 0n;
  private running = true;
  private readonly loops: Promise<void>[] = [];

  constructor(private readonly client: () => LitebaseClient) {}

  /** Inserts one row per request; a success is kept with its row id and position. */
  writer(name: string): void {
    const client = this.client();
    this.loops.push(
      (async () => {
        for (let sequence = 0; this.running; sequence++) {
          const value = `${name}-${sequence}`;
          try {
            const answer = await client.query('app', [{ sql: 'INSERT INTO t(v) VALUES (?)', params: [value] }]);
            const position = BigInt(answer.position);
            this.acknowledged.push({ value, rowid: String(answer.results[0]!.lastInsertRowid), position });
            if (position > this.maxPosition) this.maxPosition = position;
          } catch (error) {
            this.failures.push(failureOf(this.phase, `write ${value}`, error, value));
          }
          await sleep(20);
        }
      })(),
    );
  }

  /**
   * Counts the rows as of the newest acknowledged position (read your writes through the
   * balancer, whichever node answers), and sometimes asks GET /v1/cluster. The count can only be
   * at least the writes acknowledged before the read was sent.
   */
  reader(name: string): void {
    const client = this.client();
    this.loops.push(
      (async () => {
        for (let sequence = 0; this.running; sequence++) {
          const known = this.acknowledged.length;
          const minPosition = this.maxPosition;
          try {
            if (sequence % 4 === 3) {
              await client.cluster();
            } else {
              const answer = await client.query('app', [{ sql: 'SELECT count(*) FROM t' }], { minPosition, idempotent: true });
              const count = Number(answer.results[0]!.rows[0]![0]);
              if (count < known) this.reads.behind.push(`${name}: ${count} rows at position ${minPosition}, ${known} acknowledged`);
            }
            this.reads.ok++;
          } catch (error) {
            this.failures.push(failureOf(this.phase, `${name} read ${sequence}`, error));
          }
          await sleep(20);
        }
      })(),
    );
  }

  get newestPosition(): bigint {
    return this.maxPosition;
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

describe('the load balancer error answers', () => {
  // HAProxy's own answers (errorfile) must be the API's error shape with a code docs/ERRORS.md
  // documents, with that code's status, and a 503's Retry-After: clients act on them as on a
  // node's answers.
  const files = readdirSync(ERRORS_DIR).filter((name) => name.endsWith('.http'));
  const config = readFileSync(path.join(REPO_ROOT, 'infra', 'haproxy', 'haproxy.cfg'), 'utf8');

  it('every errorfile is a documented error answer, and haproxy.cfg uses each one', () => {
    expect(files.sort()).toEqual(['400.http', '408.http', '500.http', '502.http', '503.http', '504.http']);
    for (const name of files) {
      const raw = readFileSync(path.join(ERRORS_DIR, name));
      const split = raw.indexOf('\r\n\r\n');
      expect(split, name).toBeGreaterThan(0);
      const [statusLine, ...headerLines] = raw.subarray(0, split).toString('latin1').split('\r\n');
      const body = raw.subarray(split + 4);
      const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine!)?.[1]);
      const headers = new Map(
        headerLines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
      );
      expect(headers.get('content-type'), name).toMatch(/^application\/json/);
      expect(Number(headers.get('content-length')), `${name} Content-Length`).toBe(body.length);
      const error = JSON.parse(body.toString('utf8')).error as { code: string; message: string };
      expect(isErrorCode(error.code), `${name}: ${error.code} is in src/error-codes.ts`).toBe(true);
      const spec = ERRORS[error.code as keyof typeof ERRORS];
      expect(status, `${name}: the status of ${error.code}`).toBe(spec.status);
      const retryAfter = 'retryAfterSeconds' in spec ? String(spec.retryAfterSeconds) : undefined;
      expect(headers.get('retry-after'), `${name}: Retry-After of ${error.code}`).toBe(retryAfter);
      expect(config, name).toContain(`errorfile ${name.slice(0, 3)} /etc/haproxy/errors/${name}`);
    }
  });
});

describe.skipIf(!docker.ready && !required)(`HAProxy in front of a cluster${docker.ready ? '' : ` (no Docker: ${docker.reason})`}`, () => {
  if (!docker.ready && required) {
    it('has Docker, which CI requires', () => {
      throw new Error(`the container tests need Docker when CI is set: ${docker.reason}`);
    });
  }

  let environment: ContainerEnvironment | undefined;
  let cluster: ContainerCluster | undefined;
  let balancer: ContainerLoadBalancer | undefined;

  afterAll(async () => {
    await balancer?.stop();
    await cluster?.stop();
    cluster?.removeFolder();
    await environment?.stop();
  }, 60_000);

  it.skipIf(!docker.ready)(
    'writes and reads through HAProxy while a Replica and then the Primary are killed: no undocumented error, no acknowledged write lost',
    async () => {
      const started = performance.now();
      let load: Load | undefined;
      try {
        environment = await ContainerEnvironment.start();
        cluster = await ContainerCluster.start(environment, { name: 'lb', leaseTtlMs: LEASE_TTL_MS });
        balancer = await ContainerLoadBalancer.start(cluster);
        const admin = balancer.client();
        await admin.createDatabase('app');
        await admin.query('app', [{ sql: 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT UNIQUE NOT NULL)' }]);

        const activeLoad = new Load(() => balancer!.client());
        load = activeLoad;
        for (const name of ['w1', 'w2', 'w3']) activeLoad.writer(name);
        for (const name of ['r1', 'r2']) activeLoad.reader(name);
        const acknowledgedSince = async (count: number, timeoutMs: number, what: string): Promise<void> => {
          const from = activeLoad.acknowledged.length;
          await waitFor(() => activeLoad.acknowledged.length >= from + count, timeoutMs, what, 100);
        };
        await acknowledgedSince(30, 20_000, '30 writes acknowledged through the balancer');

        // A Replica dies. Requests it had are answered by HAProxy; new ones go to the others.
        const primary = await cluster.waitForPrimary();
        const replica = cluster.nodes.find((node) => node !== primary)!;
        activeLoad.phase = 'replica killed';
        const replicaAt = activeLoad.acknowledged.length;
        await cluster.kill(replica);
        await sleep(3000);
        await acknowledgedSince(30, 20_000, '30 writes acknowledged after the Replica was killed');
        const afterReplica = activeLoad.acknowledged.length - replicaAt;

        // The Primary dies: the last node is elected after the lease TTL and takes the writes.
        const survivor = cluster.nodes.find((node) => node !== primary && node !== replica)!;
        activeLoad.phase = 'primary killed';
        const primaryAt = activeLoad.acknowledged.length;
        const killedAt = performance.now();
        await cluster.kill(primary);
        await cluster.waitForPrimary(LEASE_TTL_MS + 15_000, [survivor]);
        const electedAfterMs = performance.now() - killedAt;
        await acknowledgedSince(30, 30_000, '30 writes acknowledged after the Primary was killed');
        const servingAfterMs = performance.now() - killedAt;
        await sleep(2000);
        await activeLoad.stop();
        const afterPrimary = activeLoad.acknowledged.length - primaryAt;

        const phases: Phase[] = ['steady', 'replica killed', 'primary killed'];
        const tally = phases.map((phase) => {
          const inPhase = activeLoad.failures.filter((failure) => failure.phase === phase);
          const codes = new Map<string, number>();
          for (const failure of inPhase) {
            const key = `${failure.code} ${failure.message.includes('load balancer') ? 'from HAProxy' : 'from a node'}`;
            codes.set(key, (codes.get(key) ?? 0) + 1);
          }
          return `${phase}: ${inPhase.length} errors${codes.size ? ` (${[...codes].map(([code, n]) => `${n} ${code}`).join(', ')})` : ''}`;
        });
        console.log(
          `[containers] load balancer: ${activeLoad.acknowledged.length} writes acknowledged (${afterReplica} after the Replica's kill, ` +
            `${afterPrimary} after the Primary's: ${survivor.id} elected ${electedAfterMs.toFixed(0)} ms after its kill, 30 writes acknowledged ` +
            `by ${servingAfterMs.toFixed(0)} ms), ${activeLoad.reads.ok} reads; ${tally.join('; ')}`,
        );

        // Nothing but documented 503s with Retry-After reached the application.
        const undocumented = activeLoad.failures.filter((failure) => !isDocumented503(failure));
        expect(undocumented, 'errors other than a documented 503 with Retry-After').toEqual([]);
        expect(activeLoad.reads.behind, 'reads with minPosition that missed acknowledged writes').toEqual([]);

        // Every acknowledged write is there, under its row id: read through the balancer, at the
        // newest acknowledged position.
        const rows = (
          await admin.query('app', [{ sql: 'SELECT id, v FROM t' }], { minPosition: activeLoad.newestPosition, idempotent: true })
        ).results[0]!.rows;
        const present = new Map(rows.map((row) => [String(row[0]), row[1]]));
        const missing = activeLoad.acknowledged.filter((write) => present.get(write.rowid) !== write.value);
        expect(missing, 'acknowledged writes missing or under another row id').toEqual([]);
        // Writes whose outcome the client was told is unknown: some were applied, some not.
        const values = new Set(rows.map((row) => row[1]));
        const unknown = activeLoad.failures.filter((failure) => failure.value !== undefined);
        const servers = balancer.output.split('\n').filter((line) => /Server nodes\/\S+ is (DOWN|UP)/.test(line) && !line.startsWith('['));
        console.log(
          `[containers] load balancer: ${unknown.filter((failure) => values.has(failure.value)).length} of ${unknown.length} writes answered ` +
            `with an unknown outcome were applied; HAProxy: ${servers.map((line) => line.replace(/^.*Server (nodes\/\S+ is \w+), reason: ([^,]*).*$/, '$1 ($2)')).join('; ')}`,
        );

        // With no node left, HAProxy answers itself: 503 PRIMARY_UNAVAILABLE, Retry-After 1, the
        // API's error shape (errors/503.http).
        await cluster.kill(survivor);
        for (const [method, route, body] of [
          ['GET', '/v1/cluster', undefined],
          ['POST', '/v1/databases/app/query', { statements: [{ sql: 'SELECT 1' }] }],
        ] as const) {
          const response = await fetch(balancer.url + route, {
            method,
            headers: { authorization: `Bearer ${ROOT_KEY}`, ...(body ? { 'content-type': 'application/json' } : {}) },
            ...(body ? { body: JSON.stringify(body) } : {}),
            signal: AbortSignal.timeout(15_000),
          });
          expect(response.status, `${method} ${route}`).toBe(503);
          expect(response.headers.get('retry-after')).toBe('1');
          expect(((await response.json()) as { error: { code: string } }).error.code).toBe('PRIMARY_UNAVAILABLE');
        }
      } catch (error) {
        if (cluster) console.error(`[containers] what the nodes printed last:\n${cluster.report()}`);
        if (balancer) console.error(`[containers] HAProxy's log:\n${balancer.output.trim().split('\n').slice(-40).join('\n')}`);
        if (load) console.error(`[containers] client errors:\n${JSON.stringify(load.failures.slice(0, 30), null, 1)}`);
        throw error;
      } finally {
        await load?.stop();
        console.log(`[containers] load balancer scenario: ${((performance.now() - started) / 1000).toFixed(1)} s`);
      }
    },
    240_000,
  );
});
