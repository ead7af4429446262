import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestServer } from '../../support/server.js';

/** Access keys with per-database permissions, on two nodes sharing one folder. */
let primary: TestServer;
let other: TestServer;

beforeAll(async () => {
  primary = await TestServer.start({ nodeId: 'k1' });
  other = await TestServer.start({ dataDir: primary.dataDir, nodeId: 'k2' });
  for (const name of ['app', 'secret']) expect((await primary.request('POST', '/v1/databases', { name })).status).toBe(201);
  await primary.request('POST', '/v1/databases/app/query', { statements: [{ sql: 'CREATE TABLE t(a)' }] });
  await primary.request('POST', '/v1/databases/secret/query', { statements: [{ sql: 'CREATE TABLE s(a)' }] });
});

afterAll(async () => {
  await other?.stop();
  await primary?.stop();
  primary?.cleanup();
});

async function createKey(databases: string[], actions: string[]): Promise<{ id: string; secret: string }> {
  const response = await primary.request('POST', '/v1/keys', {
    name: `${actions.join('+')} on ${databases.join(',')}`,
    databases,
    actions,
  });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return response.body.key;
}

const as = (node: TestServer, key: string) => ({
  request: (method: string, url: string, body?: unknown) => node.request(method, url, body, { authorization: `Bearer ${key}` }),
});

describe('access keys', () => {
  it('a read key reads its database and nothing else', async () => {
    const reader = await createKey(['app'], ['read']);
    const client = as(primary, reader.secret);
    expect((await client.request('POST', '/v1/databases/app/query', { statements: [{ sql: 'SELECT count(*) FROM t' }] })).status).toBe(200);
    const write = await client.request('POST', '/v1/databases/app/query', { statements: [{ sql: 'INSERT INTO t VALUES (1)' }] });
    expect(write.status).toBe(403);
    expect(write.body.error.code).toBe('PERMISSION_DENIED');
    const independent = await client.request('POST', '/v1/databases/app/query', {
      mode: 'independent',
      statements: [{ sql: 'SELECT 1' }, { sql: 'INSERT INTO t VALUES (2)' }],
    });
    expect(independent.body.results[1].error.code).toBe('PERMISSION_DENIED');
    expect((await client.request('POST', '/v1/databases/app/transactions', {})).status).toBe(403);
    expect((await client.request('POST', '/v1/databases/secret/query', { statements: [{ sql: 'SELECT 1' }] })).status).toBe(403);
    expect((await client.request('GET', '/v1/databases/secret')).status).toBe(403);
    expect((await client.request('POST', '/v1/databases', { name: 'new' })).status).toBe(403);
    expect((await client.request('DELETE', '/v1/databases/app')).status).toBe(403);
    expect((await client.request('GET', '/v1/cluster')).status).toBe(403);
    expect((await client.request('GET', '/v1/keys')).status).toBe(403);
    const list = await client.request('GET', '/v1/databases');
    expect(list.body.databases.map((database: { name: string }) => database.name)).toEqual(['app']);
    // The same key works on another node (keys live on the shared folder), with the same limits.
    const elsewhere = as(other, reader.secret);
    expect((await elsewhere.request('POST', '/v1/databases/app/query', { statements: [{ sql: 'SELECT 1' }] })).status).toBe(200);
    expect((await elsewhere.request('POST', '/v1/databases/app/query', { statements: [{ sql: 'INSERT INTO t VALUES (3)' }] })).status).toBe(
      403,
    );
  });

  it('a write key on a pattern writes matching databases only; admin and cluster are separate actions', async () => {
    const writer = await createKey(['ap*'], ['read', 'write']);
    const client = as(other, writer.secret);
    const insert = await client.request('POST', '/v1/databases/app/query', { statements: [{ sql: 'INSERT INTO t VALUES (4)' }] });
    expect(insert.status, JSON.stringify(insert.body)).toBe(200);
    expect((await client.request('POST', '/v1/databases/secret/query', { statements: [{ sql: 'SELECT 1' }] })).status).toBe(403);
    expect((await client.request('DELETE', '/v1/databases/app')).status).toBe(403);
    const admin = await createKey(['*'], ['admin', 'cluster', 'read']);
    const adminClient = as(primary, admin.secret);
    expect((await adminClient.request('GET', '/v1/cluster')).status).toBe(200);
    expect((await adminClient.request('POST', '/v1/databases', { name: 'made-by-admin' })).status).toBe(201);
    expect((await adminClient.request('GET', '/v1/keys')).status).toBe(200);
  });

  it('stores only a hash, lists no secrets, and revocation reaches every node within a second', async () => {
    const key = await createKey(['app'], ['read']);
    const files = readdirSync(path.join(primary.dataDir, 'cluster', 'keys'));
    for (const file of files) expect(readFileSync(path.join(primary.dataDir, 'cluster', 'keys', file), 'utf8')).not.toContain(key.secret);
    const listed = (await primary.request('GET', '/v1/keys')).body.keys;
    expect(JSON.stringify(listed)).not.toContain(key.secret);
    expect(listed.find((entry: { id: string }) => entry.id === key.id)).toMatchObject({ revokedAt: null });
    // Warm the other node's cache, then revoke on the first.
    expect((await as(other, key.secret).request('GET', '/v1/databases/app')).status).toBe(200);
    expect((await primary.request('DELETE', `/v1/keys/${key.id}`)).status).toBe(204);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    for (const node of [primary, other]) {
      const refused = await as(node, key.secret).request('GET', '/v1/databases/app');
      expect(refused.status).toBe(401);
      expect(refused.body.error.code).toBe('INVALID_KEY');
    }
    // A key that looks right but is not: same id, other secret.
    const forged = `${key.secret.slice(0, 16)}${'A'.repeat(key.secret.length - 16)}`;
    expect((await as(primary, forged).request('GET', '/v1/databases/app')).status).toBe(401);
  });

  it('refuses every route without a key or with a wrong one', async () => {
    const routes: Array<[string, string, unknown?]> = [
      ['GET', '/v1/databases'],
      ['POST', '/v1/databases', { name: 'x' }],
      ['GET', '/v1/databases/app'],
      ['DELETE', '/v1/databases/app'],
      ['POST', '/v1/databases/app/query', { statements: [{ sql: 'SELECT 1' }] }],
      ['POST', '/v1/databases/app/transactions', {}],
      ['GET', '/v1/cluster'],
      ['GET', '/v1/keys'],
      ['POST', '/v1/keys', { name: 'x', databases: ['*'], actions: ['admin'] }],
      ['GET', '/metrics'],
      ['GET', '/readyz'],
      ['POST', '/v1/ping', {}],
    ];
    for (const [method, url, body] of routes) {
      const none = await fetch(primary.url + url, {
        method,
        ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
      });
      expect(none.status, `${method} ${url}`).toBe(401);
      const wrong = await as(primary, 'lb_aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbb').request(method, url, body);
      expect(wrong.status, `${method} ${url}`).toBe(401);
    }
  });
});
