import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signatureHeaders } from '../../../src/client/signing.js';
import { ACTIONS, type Action } from '../../../src/server/access-keys.js';
import { REPO_ROOT, TestServer } from '../../support/server.js';

/**
 * The auth matrix (issue 6, docs/SECURITY.md "Keys and permissions"): every route the server
 * registers, on a Primary and on a Replica, is sent
 *
 *   - no credentials, a malformed Authorization header            -> 401 UNAUTHENTICATED
 *   - a wrong bearer key: unknown id, a live key's id with another secret, not the root key,
 *     and a request signed with the wrong key                      -> 401 INVALID_KEY / SIGNATURE_INVALID
 *   - a revoked key (all actions on every database, revoked through the API), bearer and signed
 *                                                                   -> 401 INVALID_KEY
 *   - a key with every action, but for another database only, bearer and signed
 *                                                                   -> 403 PERMISSION_DENIED naming the action
 *                                                                      (and the database), except on routes any key may use
 *   - a key for the right database with every action but the one the route needs -> 403
 *   - a key with only the action the route needs, bearer and signed -> anything but 401/403
 *
 * The table must list exactly the routes in the server's source (src/server/app.ts and
 * src/server/routes/*.ts, GETs with the HEAD route fastify adds for them): a new route fails the
 * "table is complete" test until it is added here with its guard.
 */

type Guard =
  /** Answers without a key. */
  | { kind: 'public' }
  /** Any valid key (no action needed). */
  | { kind: 'any-key' }
  /** `action` on the database the request names. */
  | { kind: 'database'; action: Action }
  /** `action` with the "*" database pattern (cluster status, metrics, key management). */
  | { kind: 'all-databases'; action: Action };

interface RouteCase {
  method: 'GET' | 'POST' | 'DELETE';
  /** The path as registered. */
  path: string;
  guard: Guard;
  /** The database the request names (`:db`, or the body of POST /v1/databases); default "app". */
  db?: string;
  /** `:id` in the path. */
  id?: string;
  body?: unknown;
  /** Registered with `exposeHeadRoute: false`: fastify adds no HEAD route for this GET. */
  noHead?: true;
  /** Undo what the request with the right key did (e.g. roll back a transaction it opened). */
  after?: (node: TestServer, response: Answer) => Promise<void>;
}

const TRANSACTION_ID = '00000000-0000-4000-8000-000000000000';
const RESTORE_ID = '00000000-0000-4000-8000-000000000001';
const NO_SUCH_KEY_ID = 'zzzzzzzzzzzz';
const SELECT = { statements: [{ sql: 'SELECT 1' }] };

const ROUTES: RouteCase[] = [
  // src/server/app.ts
  { method: 'GET', path: '/healthz', guard: { kind: 'public' } },
  { method: 'POST', path: '/v1/ping', guard: { kind: 'any-key' }, body: {} },
  { method: 'GET', path: '/readyz', guard: { kind: 'any-key' } },
  { method: 'GET', path: '/metrics', guard: { kind: 'all-databases', action: 'cluster' } },
  // src/server/routes/databases.ts
  {
    method: 'POST',
    path: '/v1/databases',
    guard: { kind: 'database', action: 'admin' },
    db: 'made-by-matrix',
    body: { name: 'made-by-matrix' },
  },
  { method: 'GET', path: '/v1/databases', guard: { kind: 'any-key' } },
  { method: 'GET', path: '/v1/databases/:db', guard: { kind: 'database', action: 'read' } },
  { method: 'DELETE', path: '/v1/databases/:db', guard: { kind: 'database', action: 'admin' }, db: 'doomed' },
  // src/server/routes/query.ts
  { method: 'POST', path: '/v1/databases/:db/query', guard: { kind: 'database', action: 'read' }, body: SELECT },
  {
    method: 'POST',
    path: '/v1/databases/:db/transactions',
    guard: { kind: 'database', action: 'write' },
    body: { timeoutMs: 2000 },
    after: async (node, response) => {
      const id = response.body?.transaction?.id;
      if (id) await node.request('POST', `/v1/databases/app/transactions/${id}/rollback`);
    },
  },
  {
    method: 'POST',
    path: '/v1/databases/:db/transactions/:id/query',
    guard: { kind: 'database', action: 'write' },
    id: TRANSACTION_ID,
    body: SELECT,
  },
  { method: 'POST', path: '/v1/databases/:db/transactions/:id/commit', guard: { kind: 'database', action: 'write' }, id: TRANSACTION_ID },
  { method: 'POST', path: '/v1/databases/:db/transactions/:id/rollback', guard: { kind: 'database', action: 'write' }, id: TRANSACTION_ID },
  // src/server/routes/statements.ts
  { method: 'GET', path: '/v1/databases/:db/statements', guard: { kind: 'database', action: 'read' } },
  { method: 'DELETE', path: '/v1/databases/:db/statements', guard: { kind: 'database', action: 'admin' } },
  // src/server/routes/archive.ts
  { method: 'POST', path: '/v1/databases/:db/compact', guard: { kind: 'database', action: 'admin' } },
  { method: 'GET', path: '/v1/databases/:db/restore-points', guard: { kind: 'database', action: 'restore' } },
  // An invalid time: refused (400) only after the permission check, so nothing is restored.
  { method: 'POST', path: '/v1/databases/:db/restore', guard: { kind: 'database', action: 'restore' }, body: { timestamp: 'not a time' } },
  { method: 'GET', path: '/v1/databases/:db/restores/:id', guard: { kind: 'database', action: 'restore' }, id: RESTORE_ID },
  { method: 'GET', path: '/v1/databases/:db/restores', guard: { kind: 'database', action: 'restore' } },
  // src/server/routes/backup.ts
  { method: 'GET', path: '/v1/databases/:db/backup', guard: { kind: 'database', action: 'read' }, noHead: true },
  // src/server/routes/cluster.ts
  { method: 'POST', path: '/v1/cluster/nudge', guard: { kind: 'all-databases', action: 'cluster' }, body: { databases: [] } },
  { method: 'GET', path: '/v1/cluster', guard: { kind: 'all-databases', action: 'cluster' } },
  // src/server/routes/keys.ts
  {
    method: 'POST',
    path: '/v1/keys',
    guard: { kind: 'all-databases', action: 'admin' },
    body: { name: 'made by the auth matrix', databases: ['app'], actions: ['read'] },
  },
  { method: 'GET', path: '/v1/keys', guard: { kind: 'all-databases', action: 'admin' } },
  { method: 'DELETE', path: '/v1/keys/:id', guard: { kind: 'all-databases', action: 'admin' }, id: NO_SUCH_KEY_ID },
  // src/server/routes/key-self.ts
  { method: 'GET', path: '/v1/keys/self', guard: { kind: 'any-key' } },
];

/** Every registered method and path, as fastify has it: each GET also answers HEAD unless told not to. */
const routeKeys = (route: RouteCase): string[] => [
  `${route.method} ${route.path}`,
  ...(route.method === 'GET' && !route.noHead ? [`HEAD ${route.path}`] : []),
];

/** The routes registered in the server's source, read the way a reviewer would. */
function registeredRoutes(): { routes: Set<string>; problems: string[] } {
  const serverDir = path.join(REPO_ROOT, 'src', 'server');
  const routesDir = path.join(serverDir, 'routes');
  const files = [
    path.join(serverDir, 'app.ts'),
    ...readdirSync(routesDir)
      .filter((name) => name.endsWith('.ts'))
      .map((name) => path.join(routesDir, name)),
  ];
  const routes = new Set<string>();
  const problems: string[] = [];
  const literal = /\.(get|post|put|delete|patch|head|options|all)\(\s*(['"`])(\/[^'"`]*)\2/g;
  const anyCall =
    /\b(?:app|plugin|fastify|instance|server)\b(?:\.withTypeProvider<[^>]*>\(\))?\s*\.\s*(get|post|put|delete|patch|head|options|all|route)\s*\(/g;
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const relative = path.relative(REPO_ROOT, file);
    if (/exposeHeadRoutes\s*:/.test(text)) problems.push(`${relative} sets exposeHeadRoutes: extend this scan`);
    const found = [...text.matchAll(literal)];
    const calls = [...text.matchAll(anyCall)];
    if (calls.length !== found.length) {
      problems.push(
        `${relative} registers ${calls.length} routes but only ${found.length} with a literal path (or uses .route()): extend this scan`,
      );
    }
    for (const match of found) {
      const method = match[1]!.toUpperCase();
      if (method === 'ALL') problems.push(`${relative} registers ALL ${match[3]}: list each method`);
      routes.add(`${method} ${match[3]}`);
      // The route's options: from the path to its handler.
      const rest = text.slice(match.index! + match[0].length);
      const options = rest.slice(0, Math.max(0, rest.search(/async\b|=>/)));
      if (method === 'GET' && !/exposeHeadRoute\s*:\s*false/.test(options)) routes.add(`HEAD ${match[3]}`);
    }
  }
  return { routes, problems };
}

const REGISTERED = registeredRoutes();

interface Answer {
  status: number;
  body: any;
  headers: Headers;
}

interface Credentials {
  label: string;
  /** Sent as `Authorization: Bearer <bearer>` (or as the whole header with `header`). */
  bearer?: string;
  header?: string;
  /** Sign with this key string, naming `keyId` (default: the key's own id). */
  sign?: { key: string; keyId?: string };
}

let primary: TestServer;
let replica: TestServer;
let full: { id: string; secret: string };
let revoked: { id: string; secret: string };
let foreign: { id: string; secret: string };
/** Signed requests need distinct dates, or two alike in one millisecond would be a replay. */
let lastSignedAt = 0;

async function createKey(databases: string[], actions: readonly string[]): Promise<{ id: string; secret: string }> {
  const response = await primary.request('POST', '/v1/keys', {
    name: `matrix: ${actions.join('+')} on ${databases.join(',')}`,
    databases,
    actions,
  });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return response.body.key;
}

async function send(node: TestServer, method: string, url: string, body: unknown, credentials: Credentials): Promise<Answer> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  const headers: Record<string, string> = text === undefined ? {} : { 'content-type': 'application/json' };
  if (credentials.header !== undefined) headers.authorization = credentials.header;
  if (credentials.bearer !== undefined) headers.authorization = `Bearer ${credentials.bearer}`;
  if (credentials.sign) {
    lastSignedAt = Math.max(Date.now(), lastSignedAt + 1);
    Object.assign(
      headers,
      signatureHeaders({
        key: credentials.sign.key,
        ...(credentials.sign.keyId ? { keyId: credentials.sign.keyId } : {}),
        method,
        url: node.url + url,
        ...(text === undefined ? {} : { body: text }),
        date: new Date(lastSignedAt),
      }),
    );
  }
  const response = await fetch(node.url + url, { method, headers, ...(text === undefined ? {} : { body: text }) });
  const raw = await response.text();
  let parsed: unknown = raw;
  try {
    parsed = raw ? JSON.parse(raw) : undefined;
  } catch {
    // metrics, a backup file
  }
  return { status: response.status, body: parsed, headers: response.headers };
}

/** A body for an assertion message: metrics and backups are long. */
const brief = (body: unknown): string => {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return text === undefined ? '' : text.length > 300 ? `${text.slice(0, 300)}...` : text;
};

const urlOf = (route: RouteCase): string => route.path.replace(':db', route.db ?? 'app').replace(':id', route.id ?? '');

beforeAll(async () => {
  primary = await TestServer.start({ nodeId: 'm1' });
  replica = await TestServer.start({ dataDir: primary.dataDir, nodeId: 'm2', env: { LITEBASE_REPLICA_POLL_MS: '100' } });
  for (const name of ['app', 'other', 'doomed']) expect((await primary.request('POST', '/v1/databases', { name })).status).toBe(201);
  await primary.request('POST', '/v1/databases/app/query', {
    statements: [{ sql: 'CREATE TABLE t(a)' }, { sql: 'INSERT INTO t VALUES (1)' }],
  });
  full = await createKey(['*'], ACTIONS);
  foreign = await createKey(['other'], ACTIONS);
  revoked = await createKey(['*'], ACTIONS);
  // The key to revoke works everywhere, on both nodes (which caches it there), bearer and signed...
  for (const node of [primary, replica]) {
    expect((await send(node, 'GET', '/v1/keys', undefined, { label: 'revoked, still live', bearer: revoked.secret })).status).toBe(200);
    expect((await send(node, 'GET', '/v1/keys', undefined, { label: 'revoked, still live', sign: { key: revoked.secret } })).status).toBe(
      200,
    );
  }
  // ...until it is revoked through the API; nodes cache a key for at most 500 ms.
  expect((await primary.request('DELETE', `/v1/keys/${revoked.id}`)).status).toBe(204);
  await new Promise((resolve) => setTimeout(resolve, 700));
});

afterAll(async () => {
  await replica?.stop();
  await primary?.stop();
  primary?.cleanup();
});

describe('auth matrix', () => {
  it('the table lists exactly the routes the server registers', () => {
    expect(REGISTERED.problems).toEqual([]);
    const table = new Set(ROUTES.flatMap(routeKeys));
    const missing = [...REGISTERED.routes].filter((key) => !table.has(key)).sort();
    const extra = [...table].filter((key) => !REGISTERED.routes.has(key)).sort();
    expect({ missing, extra }, 'add every new route to ROUTES in test/integration/server/auth-matrix.test.ts, with its guard').toEqual({
      missing: [],
      extra: [],
    });
    expect(REGISTERED.routes.size).toBeGreaterThanOrEqual(30);
  });

  it('a path no route has is refused before routing: 401 without a valid key, 404 with one', async () => {
    for (const node of [primary, replica]) {
      const none = await send(node, 'GET', '/v1/no-such-route', undefined, { label: 'no key' });
      expect(none.status).toBe(401);
      expect((await send(node, 'GET', '/v1/no-such-route', undefined, { label: 'revoked', bearer: revoked.secret })).status).toBe(401);
      const keyed = await send(node, 'GET', '/v1/no-such-route', undefined, { label: 'foreign', bearer: foreign.secret });
      expect(keyed.status).toBe(404);
      expect(keyed.body.error.code).toBe('ROUTE_NOT_FOUND');
    }
  });

  const cases = ROUTES.flatMap((route) => routeKeys(route).map((key) => ({ key, method: key.split(' ')[0] as string, route })));

  it.each(cases)('$key', async ({ key, method, route }) => {
    const url = urlOf(route);
    const db = route.db ?? 'app';
    const body = method === 'HEAD' ? undefined : route.body;
    const head = method === 'HEAD';
    const { guard } = route;

    const refusals: Array<[Credentials, string]> = [
      [{ label: 'no key' }, 'UNAUTHENTICATED'],
      [{ label: 'not a bearer header', header: `Basic ${Buffer.from('root:x').toString('base64')}` }, 'UNAUTHENTICATED'],
      [{ label: 'empty bearer', header: 'Bearer ' }, 'UNAUTHENTICATED'],
      [{ label: 'unknown key', bearer: `lb_aaaaaaaaaaaa_${'b'.repeat(43)}` }, 'INVALID_KEY'],
      [{ label: 'a live key id with another secret', bearer: `lb_${full.id}_${'A'.repeat(43)}` }, 'INVALID_KEY'],
      [{ label: 'not the root key', bearer: `${primary.key}x` }, 'INVALID_KEY'],
      [{ label: 'signed with the wrong key', sign: { key: `lb_${full.id}_${'A'.repeat(43)}`, keyId: full.id } }, 'SIGNATURE_INVALID'],
      [{ label: 'signed by an unknown key', sign: { key: `lb_aaaaaaaaaaaa_${'b'.repeat(43)}` } }, 'INVALID_KEY'],
      [{ label: 'revoked key', bearer: revoked.secret }, 'INVALID_KEY'],
      [{ label: 'signed by a revoked key', sign: { key: revoked.secret } }, 'INVALID_KEY'],
    ];
    const foreignKeys: Credentials[] = [
      { label: 'key for another database', bearer: foreign.secret },
      { label: 'signed by a key for another database', sign: { key: foreign.secret } },
    ];

    for (const node of [primary, replica]) {
      const where = (label: string) => `${key} on ${node === primary ? 'the Primary' : 'a Replica'}, ${label}`;

      /** Anything but a refusal, from a route that exists. */
      const expectAccepted = (answer: Answer, label: string) => {
        expect([401, 403], `${where(label)}: ${answer.status} ${brief(answer.body)}`).not.toContain(answer.status);
        if (!head) expect(answer.body?.error?.code, `${where(label)}: is dist/ built from src/?`).not.toBe('ROUTE_NOT_FOUND');
      };
      const expectRefused = (answer: Answer, status: number, code: string, label: string, details?: Record<string, unknown>) => {
        expect(answer.status, `${where(label)}: ${brief(answer.body)}`).toBe(status);
        if (head) return;
        expect(answer.body?.error?.code, where(label)).toBe(code);
        if (details) expect(answer.body.error, where(label)).toMatchObject(details);
        expect(JSON.stringify(answer.body), where(label)).not.toMatch(/\n\s+at |node_modules|\/src\//);
      };

      // (a)-(c): no key, wrong keys, revoked keys.
      for (const [credentials, code] of refusals) {
        const answer = await send(node, method, url, body, credentials);
        if (guard.kind === 'public') {
          expect(answer.status, where(credentials.label)).toBe(200);
          continue;
        }
        expectRefused(answer, 401, code, credentials.label);
        if (code === 'UNAUTHENTICATED') expect(answer.headers.get('www-authenticate'), where(credentials.label)).toBe('Bearer');
      }

      // (d): every action, but on another database only.
      for (const credentials of foreignKeys) {
        const answer = await send(node, method, url, body, credentials);
        if (guard.kind === 'public') expect(answer.status, where(credentials.label)).toBe(200);
        else if (guard.kind === 'any-key') {
          expectAccepted(answer, credentials.label);
          if (route.path === '/v1/databases' && !head) {
            expect(
              answer.body.databases.map((database: { name: string }) => database.name),
              where(credentials.label),
            ).toEqual(['other']);
          }
        } else if (guard.kind === 'database') {
          expectRefused(answer, 403, 'PERMISSION_DENIED', credentials.label, { action: guard.action, database: db });
        } else {
          expectRefused(answer, 403, 'PERMISSION_DENIED', credentials.label, { action: guard.action });
          if (!head) expect(answer.body.error, where(credentials.label)).not.toHaveProperty('database');
        }
      }

      if (guard.kind === 'database' || guard.kind === 'all-databases') {
        const databases = guard.kind === 'database' ? [db] : ['*'];
        // The right database, every action but the one this route needs: the guard is per action.
        const others = await createKey(
          databases,
          ACTIONS.filter((action) => action !== guard.action),
        );
        const refused = await send(node, method, url, body, { label: `every action but ${guard.action}`, bearer: others.secret });
        expectRefused(refused, 403, 'PERMISSION_DENIED', `every action but ${guard.action}`, { action: guard.action });
        // Only the action it needs: not refused (whatever the route then answers), bearer and signed.
        const needed = await createKey(databases, [guard.action]);
        for (const credentials of [
          { label: `only ${guard.action} on ${databases[0]}`, bearer: needed.secret },
          { label: `signed, only ${guard.action} on ${databases[0]}`, sign: { key: needed.secret } },
        ]) {
          const answer = await send(node, method, url, body, credentials);
          expectAccepted(answer, credentials.label);
          await route.after?.(node, answer);
        }
      } else if (guard.kind === 'any-key') {
        const reader = await createKey(['other'], ['read']);
        for (const credentials of [
          { label: 'a read key for another database', bearer: reader.secret },
          { label: 'signed, a read key for another database', sign: { key: reader.secret } },
        ]) {
          expectAccepted(await send(node, method, url, body, credentials), credentials.label);
        }
      }
    }
  });
});
