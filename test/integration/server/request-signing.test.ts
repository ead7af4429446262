import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LitebaseClient } from '../../../src/client/client.js';
import { SIGNATURE_HEADERS, signatureHeaders } from '../../../src/client/signing.js';
import { runCli } from '../../support/cli.js';
import { TestServer } from '../../support/server.js';

/**
 * Signed requests (docs/SECURITY.md, "Request signing") against two real nodes sharing one folder:
 * `primary` is started first and holds the lease, `replica` forwards writes to it.
 */
let primary: TestServer;
let replica: TestServer;
let writer: { id: string; secret: string };

beforeAll(async () => {
  primary = await TestServer.start({ nodeId: 's1' });
  replica = await TestServer.start({ dataDir: primary.dataDir, nodeId: 's2', env: { LITEBASE_REPLICA_POLL_MS: '100' } });
  for (const name of ['app', 'secret']) expect((await primary.request('POST', '/v1/databases', { name })).status).toBe(201);
  await primary.request('POST', '/v1/databases/app/query', { statements: [{ sql: 'CREATE TABLE t(a)' }] });
  writer = await createKey(['app'], ['read', 'write']);
});

afterAll(async () => {
  await replica?.stop();
  await primary?.stop();
  primary?.cleanup();
});

async function createKey(databases: string[], actions: string[]): Promise<{ id: string; secret: string }> {
  const response = await primary.request('POST', '/v1/keys', { name: 'signing test', databases, actions });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return response.body.key;
}

interface Sent {
  method: string;
  path: string;
  body?: string;
}

/**
 * Sign `signed`, then send `sent` (by default the same request): a difference between the two is
 * what an attacker who altered a captured request would send.
 */
async function send(
  node: TestServer,
  key: string,
  signed: Sent,
  options: { sent?: Partial<Sent>; date?: Date; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: any; headers: Record<string, string> }> {
  const headers = {
    ...signatureHeaders({
      key,
      method: signed.method,
      url: node.url + signed.path,
      ...(signed.body === undefined ? {} : { body: signed.body }),
      ...(options.date ? { date: options.date } : {}),
    }),
    ...options.headers,
  };
  const sent = { ...signed, ...options.sent };
  const response = await fetch(node.url + sent.path, {
    method: sent.method,
    headers: { ...headers, ...(sent.body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(sent.body === undefined ? {} : { body: sent.body }),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined, headers };
}

const insert = (value: number): Sent => ({
  method: 'POST',
  path: '/v1/databases/app/query',
  body: JSON.stringify({ statements: [{ sql: 'INSERT INTO t VALUES (?)', params: [value] }] }),
});

describe('request signing', () => {
  it('a signed request reads and writes with an access key or the root key, through the client too', async () => {
    const written = await send(primary, writer.secret, insert(1));
    expect(written.status, JSON.stringify(written.body)).toBe(200);
    expect(written.headers[SIGNATURE_HEADERS.keyId]).toBe(writer.id);
    const read = await send(primary, writer.secret, {
      method: 'POST',
      path: '/v1/databases/app/query',
      body: JSON.stringify({ statements: [{ sql: 'SELECT count(*) FROM t' }] }),
    });
    expect(read.status).toBe(200);
    expect(read.body.results[0].rows[0][0]).toBeGreaterThanOrEqual(1);
    // The body is verified as sent, not re-serialized: whitespace and key order are signed as is.
    const spaced = '{ "statements" : [ { "params": [2], "sql": "INSERT INTO t VALUES (?)" } ] }';
    expect((await send(primary, writer.secret, { method: 'POST', path: '/v1/databases/app/query', body: spaced })).status).toBe(200);
    // GET with a query string: its parts are signed sorted, so their order does not matter.
    const reordered = await send(
      primary,
      writer.secret,
      { method: 'GET', path: '/v1/databases/app?b=2&a=1' },
      { sent: { path: '/v1/databases/app?a=1&b=2' } },
    );
    expect(reordered.status).toBe(200);

    for (const [key, name] of [
      [writer.secret, 'access key'],
      [primary.key, 'root key'],
    ] as const) {
      const client = new LitebaseClient({ url: primary.url, key, sign: true });
      const answer = await client.query('app', [{ sql: 'INSERT INTO t VALUES (?)', params: [3] }, { sql: 'SELECT count(*) FROM t' }]);
      expect(answer.results[1]?.rows[0]?.[0], name).toBeGreaterThanOrEqual(3);
      expect((await client.getDatabase('app')).name).toBe('app');
    }
    // Root signs as "root" and may do what only root can.
    expect((await send(primary, primary.key, { method: 'GET', path: '/v1/keys' })).headers[SIGNATURE_HEADERS.keyId]).toBe('root');
    expect((await send(primary, primary.key, { method: 'GET', path: '/v1/keys' })).status).toBe(200);
  });

  it('refuses a request whose body, path, query or method differs from what was signed', async () => {
    const altered: Array<[string, Sent, Partial<Sent>]> = [
      ['body', insert(10), { body: JSON.stringify({ statements: [{ sql: 'INSERT INTO t VALUES (?)', params: [11] }] }) }],
      ['body whitespace', insert(12), { body: `${insert(12).body} ` }],
      ['path', { method: 'GET', path: '/v1/databases/app' }, { path: '/v1/databases/secret' }],
      ['query', { method: 'GET', path: '/v1/databases/app?x=1' }, { path: '/v1/databases/app?x=2' }],
      ['query added', { method: 'GET', path: '/v1/databases/app' }, { path: '/v1/databases/app?x=1' }],
      ['method', { method: 'GET', path: '/v1/databases/app' }, { method: 'DELETE' }],
    ];
    for (const [what, signed, sent] of altered) {
      const answer = await send(primary, writer.secret, signed, { sent });
      expect(answer.status, what).toBe(401);
      expect(answer.body.error.code, what).toBe('SIGNATURE_INVALID');
    }
    const count = await primary.request('POST', '/v1/databases/app/query', {
      statements: [{ sql: 'SELECT count(*) FROM t WHERE a >= 10' }],
    });
    expect(count.body.results[0].rows[0][0]).toBe(0);
    // Signed with another key's secret under this key's id.
    const other = await createKey(['app'], ['read']);
    const forged = await send(
      primary,
      other.secret,
      { method: 'GET', path: '/v1/databases/app' },
      { headers: { [SIGNATURE_HEADERS.keyId]: writer.id } },
    );
    expect(forged.body.error.code).toBe('SIGNATURE_INVALID');
  });

  it('refuses dates outside the skew window, replays, and malformed headers', async () => {
    const read: Sent = { method: 'GET', path: '/v1/databases/app' };
    for (const offset of [-6 * 60_000, 6 * 60_000]) {
      const answer = await send(primary, writer.secret, read, { date: new Date(Date.now() + offset) });
      expect(answer.status).toBe(401);
      expect(answer.body.error.code).toBe('SIGNATURE_EXPIRED');
    }
    // Inside the window, either way, is fine.
    expect((await send(primary, writer.secret, read, { date: new Date(Date.now() - 60_000) })).status).toBe(200);

    const first = await send(primary, writer.secret, insert(20));
    expect(first.status).toBe(200);
    const replayed = await fetch(primary.url + insert(20).path, {
      method: 'POST',
      headers: { ...first.headers, 'content-type': 'application/json' },
      body: insert(20).body!,
    });
    expect(replayed.status).toBe(401);
    expect(((await replayed.json()) as any).error.code).toBe('SIGNATURE_REPLAYED');

    const malformed: Array<Record<string, string>> = [
      { [SIGNATURE_HEADERS.signature]: 'v1=zz' },
      { [SIGNATURE_HEADERS.signature]: `v2=${'0'.repeat(64)}` },
      { [SIGNATURE_HEADERS.date]: 'yesterday' },
      { [SIGNATURE_HEADERS.keyId]: '../../root' },
    ];
    for (const headers of malformed) {
      const answer = await send(primary, writer.secret, read, { headers });
      expect(answer.status, JSON.stringify(headers)).toBe(401);
      expect(['SIGNATURE_INVALID', 'INVALID_KEY']).toContain(answer.body.error.code);
    }
    const missing = await fetch(primary.url + read.path, { headers: { [SIGNATURE_HEADERS.signature]: `v1=${'0'.repeat(64)}` } });
    expect(missing.status).toBe(401);
    expect(((await missing.json()) as any).error.code).toBe('SIGNATURE_INVALID');
  });

  it('accepts a date in Unix milliseconds', async () => {
    const date = String(Date.now());
    const { createHash, createHmac } = await import('node:crypto');
    const signingKey = createHmac('sha256', createHash('sha256').update(writer.secret).digest())
      .update('litebase-request-signing-v1')
      .digest();
    const canonical = ['v1', 'GET', '/v1/databases/app', '', writer.id, date, createHash('sha256').digest('hex')].join('\n');
    const signature = createHmac('sha256', signingKey).update(canonical).digest('hex');
    const response = await fetch(`${primary.url}/v1/databases/app`, {
      headers: { [SIGNATURE_HEADERS.keyId]: writer.id, [SIGNATURE_HEADERS.date]: date, [SIGNATURE_HEADERS.signature]: `v1=${signature}` },
    });
    expect(response.status).toBe(200);
  });

  it("refuses a revoked key's signatures on every node, and a key's signature for another database", async () => {
    const key = await createKey(['app'], ['read']);
    const read: Sent = { method: 'GET', path: '/v1/databases/app' };
    expect((await send(replica, key.secret, read)).status).toBe(200);
    const elsewhere = await send(primary, key.secret, { method: 'GET', path: '/v1/databases/secret' });
    expect(elsewhere.status).toBe(403);
    expect(elsewhere.body.error.code).toBe('PERMISSION_DENIED');
    const write = await send(primary, key.secret, insert(30));
    expect(write.status).toBe(403);

    expect((await primary.request('DELETE', `/v1/keys/${key.id}`)).status).toBe(204);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    for (const node of [primary, replica]) {
      const refused = await send(node, key.secret, read);
      expect(refused.status).toBe(401);
      expect(refused.body.error.code).toBe('INVALID_KEY');
    }
  });

  it('a signed write sent to a replica is forwarded to the Primary with its exact bytes and verified there', async () => {
    const spaced: Sent = {
      method: 'POST',
      path: '/v1/databases/app/query',
      body: '{"statements":[ {"sql":"INSERT INTO t VALUES (?)","params":[40]} ]}',
    };
    const written = await send(replica, writer.secret, spaced);
    expect(written.status, JSON.stringify(written.body)).toBe(200);
    expect(written.body.node).toBe('s1');
    expect(written.body.role).toBe('primary');
    const client = new LitebaseClient({ url: replica.url, key: writer.secret, sign: true });
    const read = await client.query('app', 'SELECT count(*) FROM t WHERE a = 40', { minPosition: written.body.position });
    expect(read.results[0]?.rows[0]?.[0]).toBe(1);
    expect(read.node).toBe('s2');
    // The Primary saw the forwarded request: sending the same one to it directly is a replay.
    const replayed = await fetch(primary.url + spaced.path, {
      method: 'POST',
      headers: { ...written.headers, 'content-type': 'application/json' },
      body: spaced.body!,
    });
    expect(replayed.status).toBe(401);
    expect(((await replayed.json()) as any).error.code).toBe('SIGNATURE_REPLAYED');
    // The client signs writes sent to the replica as well.
    expect((await client.query('app', [{ sql: 'INSERT INTO t VALUES (?)', params: [41] }])).node).toBe('s1');
  });

  it('the CLI signs with --sign or LITEBASE_SIGN', async () => {
    const flag = await runCli([
      'query',
      'app',
      'SELECT count(*) AS n FROM t',
      '--json',
      '--sign',
      '--url',
      replica.url,
      '--key',
      writer.secret,
    ]);
    expect(flag.code, flag.stderr).toBe(0);
    expect(JSON.parse(flag.stdout).results[0].columns).toEqual(['n']);
    const env = await runCli(['db', 'get', 'app', '--json'], {
      LITEBASE_URL: primary.url,
      LITEBASE_KEY: writer.secret,
      LITEBASE_SIGN: '1',
    });
    expect(env.code, env.stderr).toBe(0);
    expect(JSON.parse(env.stdout).database.name).toBe('app');
    // A signature made with a wrong secret is refused: the CLI really signs rather than sending the key.
    const wrong = await runCli(['db', 'get', 'app', '--sign', '--url', primary.url, '--key', `lb_${writer.id}_${'x'.repeat(43)}`]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('SIGNATURE_INVALID');
  });
});
