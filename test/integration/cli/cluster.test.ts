import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../support/cli.js';
import { startClusterNode, tempDir, TestServer } from '../../support/server.js';
import { waitFor } from '../../support/wait.js';

/**
 * `litebase cluster status` and `litebase db backup`, run as child processes against a real
 * two-node cluster (n1 Primary, n2 Replica) on one shared folder.
 */
const servers: TestServer[] = [];
let primary: TestServer;
let replica: TestServer;
let work: string;
let lastPosition: string;

const startNode = (dataDir: string, nodeId: string): Promise<TestServer> => startClusterNode(dataDir, nodeId, servers);

const roleOf = async (node: TestServer, nodeId: string): Promise<string | undefined> =>
  (await node.request('GET', '/v1/cluster')).body?.nodes?.find((entry: { nodeId: string }) => entry.nodeId === nodeId)?.role;

beforeAll(async () => {
  const dataDir = tempDir('litebase-cli-cluster-');
  work = tempDir('litebase-cli-cluster-work-');
  primary = await startNode(dataDir, 'n1');
  await waitFor(async () => (await roleOf(primary, 'n1')) === 'primary', 10_000, 'n1 to be the Primary');
  replica = await startNode(dataDir, 'n2');
  await waitFor(async () => (await roleOf(replica, 'n2')) === 'replica', 10_000, 'n2 to be a Replica');
  expect((await primary.request('POST', '/v1/databases', { name: 'app' })).status).toBe(201);
  const written = await primary.request('POST', '/v1/databases/app/query', {
    statements: [{ sql: 'CREATE TABLE t(a INTEGER, b TEXT)' }, { sql: "INSERT INTO t VALUES (1, 'one'), (2, 'two')" }],
  });
  expect(written.status, JSON.stringify(written.body)).toBe(200);
  lastPosition = written.body.position;
  // A node opens a database created after it started when it is first asked for it.
  const read = await replica.request('POST', '/v1/databases/app/query', {
    statements: [{ sql: 'SELECT count(*) FROM t' }],
    minPosition: lastPosition,
  });
  expect(read.status, JSON.stringify(read.body)).toBe(200);
  // Both heartbeats carry the database at the last position, as either node sees them (a node's
  // own entry is live, the other's comes from its last heartbeat).
  await waitFor(
    async () => {
      for (const node of [primary, replica]) {
        const nodes = (await node.request('GET', '/v1/cluster')).body?.nodes ?? [];
        if (nodes.length !== 2 || !nodes.every((entry: any) => entry.databases?.app?.position === lastPosition)) return false;
      }
      return true;
    },
    15_000,
    'both nodes to report app at the last position',
  );
});

afterAll(async () => {
  for (const server of servers.splice(0)) await server.stop('SIGKILL');
  primary?.cleanup();
  rmSync(work, { recursive: true, force: true });
});

describe('litebase cluster status', () => {
  it('prints the term, the Primary and a row per node with its role, heartbeat and positions', async () => {
    // Asked of the Replica: any node answers for the whole cluster.
    const shown = await runCli(['cluster', 'status', '--url', replica.url, '--key', replica.key]);
    expect(shown.code, shown.stderr).toBe(0);
    const json = await runCli(['cluster', 'status', '--json'], { LITEBASE_URL: replica.url, LITEBASE_KEY: replica.key });
    expect(json.code, json.stderr).toBe(0);
    const status = JSON.parse(json.stdout);
    expect(status.term).toMatch(/^\d+$/);
    expect(status.primary).toEqual({ nodeId: 'n1', address: primary.url });
    expect(status.nodes.map((node: any) => [node.nodeId, node.role]).sort()).toEqual([
      ['n1', 'primary'],
      ['n2', 'replica'],
    ]);
    for (const node of status.nodes) expect(node.databases.app.position).toBe(lastPosition);

    const lines = shown.stdout.split('\n');
    expect(lines[0]).toBe(`term ${status.term}, primary n1 (${primary.url})`);
    const row = (nodeId: string) => lines.find((line) => line.startsWith(`│ ${nodeId} `)) ?? '';
    expect(row('n1')).toMatch(/│ n1\s+│ primary\s+│ http:\/\/127\.0\.0\.1:\d+\s+│ yes\s+│ \d+\.\d s ago\s+│ app: \d+, lag 0\s+│/);
    expect(row('n2')).toMatch(/│ n2\s+│ replica\s+│ http:\/\/127\.0\.0\.1:\d+\s+│ yes\s+│ \d+\.\d s ago\s+│ app: \d+, lag 0\s+│/);
    expect(row('n1')).toContain(primary.url);
    expect(row('n2')).toContain(replica.url);
    expect(shown.stdout).toContain(`app: ${lastPosition}, lag 0`);
  });

  it('fails with the error code of an HTTP error, and is in --help', async () => {
    const created = await primary.request('POST', '/v1/keys', { name: 'reader', databases: ['*'], actions: ['read'] });
    expect(created.status).toBe(201);
    const refused = await runCli(['cluster', 'status', '--url', primary.url, '--key', created.body.key.secret]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^error PERMISSION_DENIED: this key may not cluster/);
    const anonymous = await runCli(['cluster', 'status', '--url', primary.url]);
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr).toMatch(/^error UNAUTHENTICATED: /);

    const help = await runCli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^\s+cluster\s/m);
    const groupHelp = await runCli(['cluster', '--help']);
    expect(groupHelp.stdout).toMatch(/^\s+status \[options\]/m);
  });
});

describe('litebase db backup', () => {
  it('writes a checked SQLite file from the Replica at the position it waited for', async () => {
    const output = path.join(work, 'app.sqlite');
    const done = await runCli([
      'db',
      'backup',
      'app',
      '--output',
      output,
      '--min-position',
      lastPosition,
      '--json',
      '--url',
      replica.url,
      '--key',
      replica.key,
    ]);
    expect(done.code, done.stderr).toBe(0);
    const result = JSON.parse(done.stdout);
    expect(result).toMatchObject({ database: 'app', position: lastPosition, output });
    const db = new Database(output, { readonly: true, fileMustExist: true });
    try {
      expect(db.pragma('quick_check', { simple: true })).toBe('ok');
      expect(db.pragma('journal_mode', { simple: true })).toBe('delete');
      expect(db.prepare('SELECT a, b FROM t ORDER BY a').raw().all()).toEqual([
        [1, 'one'],
        [2, 'two'],
      ]);
    } finally {
      db.close();
    }
    expect(result.bytes).toBeGreaterThan(0);
    // No temporary file is left beside the output.
    expect(readdirSync(work)).toEqual(['app.sqlite']);

    // An existing file is kept unless --force; then it is replaced.
    const again = await runCli(['db', 'backup', 'app', '--output', output, '--url', primary.url, '--key', primary.key]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error OUTPUT_EXISTS: /);
    writeFileSync(output, 'not a database');
    const forced = await runCli(['db', 'backup', 'app', '--output', output, '--force', '--url', primary.url, '--key', primary.key]);
    expect(forced.code, forced.stderr).toBe(0);
    expect(forced.stdout).toMatch(new RegExp(`^backed up app at position ${lastPosition} into ${output} \\(\\d+ bytes\\)`));
    const replaced = new Database(output, { readonly: true });
    expect(replaced.prepare('SELECT count(*) FROM t').pluck().get()).toBe(2);
    replaced.close();
  });

  it('fails with the server error for an unknown database and leaves no file', async () => {
    const output = path.join(work, 'missing.sqlite');
    const missing = await runCli(['db', 'backup', 'nope', '--output', output, '--url', replica.url, '--key', replica.key]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error DATABASE_NOT_FOUND: database nope does not exist/);
    expect(existsSync(output)).toBe(false);
    const usage = await runCli(['db', 'backup', 'app', '--output', output, '--min-position', 'soon', '--url', replica.url]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/^error INVALID_ARGUMENTS: /);
  });
});
