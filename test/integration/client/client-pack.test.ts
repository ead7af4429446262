import { execFile } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, tempDir, TestServer } from '../../support/server.js';

/**
 * `@litebase/client` as an application gets it: `npm pack` of packages/client, the tarball
 * installed into an empty folder (offline: the package has no dependencies), imported from plain
 * Node ESM and type-checked as a browser program would be, then run against a real server.
 */
const run = promisify(execFile);
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

let server: TestServer;
let app: string;

beforeAll(async () => {
  server = await TestServer.start();
  const packed = tempDir('litebase-client-pack-');
  // prepack builds the package (packages/client/tsconfig.json: no Node types), so this is also
  // the check that the package's sources use nothing but web APIs.
  await run(NPM, ['pack', '--workspace', '@litebase/client', '--pack-destination', packed], { cwd: REPO_ROOT });
  const tarball = readdirSync(packed).find((name) => name.endsWith('.tgz'));
  expect(tarball).toMatch(/^litebase-client-.*\.tgz$/);
  app = tempDir('litebase-client-app-');
  writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  await run(NPM, ['install', '--offline', '--no-audit', '--no-fund', path.join(packed, tarball ?? '')], { cwd: app });
}, 180_000);

afterAll(async () => {
  await server?.stop();
  server?.cleanup();
});

describe('the packed client', () => {
  it('installs alone: no native modules, no AWS SDK, nothing of the server', () => {
    const installed = readdirSync(path.join(app, 'node_modules')).filter((name) => !name.startsWith('.'));
    expect(installed).toEqual(['@litebase']);
    expect(readdirSync(path.join(app, 'node_modules', '@litebase'))).toEqual(['client']);
    for (const heavy of ['better-sqlite3', 'lz4-napi', '@aws-sdk', 'fastify'])
      expect(existsSync(path.join(app, 'node_modules', heavy))).toBe(false);
    const files = readdirSync(path.join(app, 'node_modules', '@litebase', 'client', 'dist'));
    expect(files).toContain('index.js');
    expect(files).toContain('index.d.ts');
  });

  it('runs from plain Node ESM against a real server: execute, batch, a transaction, a session, signing', async () => {
    writeFileSync(
      path.join(app, 'main.mjs'),
      `
import { LitebaseClient, LitebaseSession, litebaseFetch } from '@litebase/client';
const client = new LitebaseClient({ urls: [process.env.NODE_URL], key: process.env.KEY, sign: true });
await client.createDatabase('packed');
const session = new LitebaseSession();
const db = client.database('packed', { session });
await db.execute('CREATE TABLE t(a INTEGER, b BLOB)');
await db.batch([
  { sql: 'INSERT INTO t VALUES (?, ?)', params: [9223372036854775807n, new Uint8Array([1, 2, 3])] },
  { sql: 'INSERT INTO t VALUES (:a, NULL)', params: { a: 2 } },
]);
await db.transaction(async (tx) => { await tx.execute('DELETE FROM t WHERE a = ?', [2]); });
const { rows } = await db.execute('SELECT a, b FROM t');
const wrapped = litebaseFetch({ session });
console.log(JSON.stringify({
  a: String(rows[0][0]),
  b: Array.from(rows[0][1]),
  count: rows.length,
  position: session.position('packed'),
  wrapped: typeof wrapped === 'function' && wrapped.session === session,
}));
`,
    );
    const { stdout } = await run(process.execPath, ['main.mjs'], {
      cwd: app,
      env: { ...process.env, NODE_URL: server.url, KEY: server.key },
    });
    const result = JSON.parse(stdout) as { a: string; b: number[]; count: number; position: string; wrapped: boolean };
    expect(result).toMatchObject({ a: '9223372036854775807', b: [1, 2, 3], count: 1, wrapped: true });
    expect(Number(result.position)).toBeGreaterThan(0);
  });

  it('type-checks as a browser program would use it (DOM library, no Node types)', async () => {
    writeFileSync(
      path.join(app, 'browser.ts'),
      `
import { LitebaseClient, LitebaseClientError, litebaseFetch, type StatementResult } from '@litebase/client';
const client = new LitebaseClient({ urls: ['https://a.example', 'https://b.example'], key: 'k', retry: { attempts: 3 } });
export async function count(): Promise<number | bigint> {
  const result: StatementResult = await client.database('app').execute('SELECT count(*) FROM t');
  const value = result.rows[0]?.[0];
  if (typeof value !== 'number' && typeof value !== 'bigint') throw new LitebaseClientError('UNEXPECTED', 'not a count');
  return value;
}
export const fetchForLibsql: typeof fetch = litebaseFetch();
`,
    );
    const compilerOptions = {
      noEmit: true,
      strict: true,
      module: 'nodenext',
      moduleResolution: 'nodenext',
      target: 'es2022',
      lib: ['es2022', 'dom'],
      types: [],
    };
    writeFileSync(path.join(app, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: ['browser.ts'] }));
    const tsc = path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app }).catch((error: { stdout?: string }) => error);
    expect('stdout' in result ? result.stdout : '').toBe('');
  });
});
