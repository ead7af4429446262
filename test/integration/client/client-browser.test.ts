import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, tempDir, TestServer } from '../../support/server.js';

/**
 * The client package in a real browser: headless Chromium loads the compiled package as plain ES
 * modules (no bundler), signs with the browser's Web Crypto and queries a real node. The page and
 * the API share one origin (a small proxy in front of the node), as an app serving both would.
 * Skipped, with the reason, where no Chromium is installed (a failure when CI is set).
 */
const run = promisify(execFile);
const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((candidate) => existsSync(candidate));
// .ci/run installs Debian's chromium: in CI a missing browser fails this file instead of skipping it.
if (CHROMIUM === undefined && process.env.CI) throw new Error("no Chromium installed: .ci/run installs Debian's chromium package");
if (CHROMIUM === undefined) console.log('[client-browser] skipped: no Chromium installed (apt-get install chromium)');

let node: TestServer;
let front: Server;
let origin: string;
let compiled: string;

const page = (key: string) => `<!doctype html>
<html><body><pre id="result">pending</pre>
<script type="module">
import { LitebaseClient, LitebaseSession, litebaseFetch } from '/client/index.js';
const out = document.getElementById('result');
try {
  // fetch given as the bare window.fetch: the client must not call it with another \`this\`.
  const client = new LitebaseClient({ url: location.origin, key: ${JSON.stringify(key)}, sign: true, fetch: window.fetch });
  await client.createDatabase('browser');
  const session = new LitebaseSession();
  const db = client.database('browser', { session });
  await db.execute('CREATE TABLE t(a INTEGER, b BLOB, c TEXT)');
  await db.execute('INSERT INTO t VALUES (?, ?, ?)', [2n ** 62n, new Uint8Array([0, 255, 7]), 'from the browser ✓']);
  await db.transaction(async (tx) => { await tx.execute("INSERT INTO t VALUES (1, NULL, 'tx')"); });
  const { rows } = await db.execute('SELECT a, b, c FROM t ORDER BY a DESC');
  out.textContent = JSON.stringify({
    a: String(rows[0][0]), b: Array.from(rows[0][1]), c: rows[0][2], count: rows.length,
    position: session.position('browser'), fetchWrapper: typeof litebaseFetch({ session }),
    hasBuffer: typeof globalThis.Buffer !== 'undefined', hasProcess: typeof globalThis.process !== 'undefined',
  });
} catch (error) {
  out.textContent = JSON.stringify({ error: String(error && error.stack || error) });
}
</script></body></html>`;

beforeAll(async () => {
  if (CHROMIUM === undefined) return;
  node = await TestServer.start();
  // The package's own build (no Node types), into a folder of this test's.
  compiled = tempDir('litebase-client-browser-');
  await run(process.execPath, [
    path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
    '-p',
    path.join(REPO_ROOT, 'packages', 'client', 'tsconfig.json'),
    '--outDir',
    compiled,
  ]);
  front = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://front');
    if (url.pathname === '/') {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page(node.key));
      return;
    }
    if (url.pathname.startsWith('/client/')) {
      const file = path.join(compiled, path.basename(url.pathname));
      if (!existsSync(file)) return void response.writeHead(404).end();
      response.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(readFileSync(file));
      return;
    }
    // Everything else goes to the node, as it came (the signature covers path, query and body).
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const headers = new Headers();
      for (const [name, value] of Object.entries(request.headers))
        if (typeof value === 'string' && name !== 'host') headers.set(name, value);
      const body = chunks.length > 0 ? Buffer.concat(chunks) : undefined;
      fetch(node.url + url.pathname + url.search, { method: request.method ?? 'GET', headers, ...(body ? { body } : {}) }).then(
        async (answer) => {
          const outgoing: Record<string, string> = {};
          answer.headers.forEach((value, name) => {
            if (name !== 'content-encoding' && name !== 'content-length' && name !== 'transfer-encoding') outgoing[name] = value;
          });
          response.writeHead(answer.status, outgoing).end(Buffer.from(await answer.arrayBuffer()));
        },
        (error: unknown) => response.writeHead(502).end(String(error)),
      );
    });
  });
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
}, 120_000);

afterAll(async () => {
  if (CHROMIUM === undefined) return;
  front?.closeAllConnections();
  await new Promise<void>((resolve) => (front ? front.close(() => resolve()) : resolve()));
  await node?.stop();
  node?.cleanup();
});

describe.skipIf(CHROMIUM === undefined)('the client package in headless Chromium', () => {
  it('loads as plain ES modules, signs with Web Crypto and queries a real node', async () => {
    const profile = tempDir('litebase-chromium-');
    const { stdout } = await run(
      CHROMIUM ?? '',
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--no-first-run',
        `--user-data-dir=${profile}`,
        // Virtual time stands still while requests are pending, so the page's awaits all finish.
        '--virtual-time-budget=60000',
        '--dump-dom',
        `${origin}/`,
      ],
      { timeout: 90_000, maxBuffer: 16 * 1024 * 1024 },
    );
    // The page's text as Chromium serialises it: only &, < and > are escaped in a text node.
    const text = /<pre id="result">(.*?)<\/pre>/s.exec(stdout)?.[1]?.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
    expect(text, stdout.slice(0, 2000)).toMatch(/^\{/);
    const result = JSON.parse(text ?? '{}') as Record<string, unknown>;
    expect(result).toEqual({
      a: String(2n ** 62n),
      b: [0, 255, 7],
      c: 'from the browser ✓',
      count: 2,
      position: expect.stringMatching(/^\d+$/),
      fetchWrapper: 'function',
      hasBuffer: false,
      hasProcess: false,
    });
  }, 120_000);
});
