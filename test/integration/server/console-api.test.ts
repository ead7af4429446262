import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePrometheusText } from '../../../console/src/prometheus.js';
import { TestServer } from '../../support/server.js';

/**
 * The server side of the web console (docs/CONSOLE.md) against a real server process: its files
 * without a key, GET /v1/keys/self for the root key and a limited one, and the two series the
 * console charts.
 */
describe('console API', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await TestServer.start();
    expect((await server.request('POST', '/v1/databases', { name: 'app' })).status).toBe(201);
    expect((await server.request('POST', '/v1/databases', { name: 'tenant-a' })).status).toBe(201);
    expect((await server.request('POST', '/v1/databases', { name: 'other' })).status).toBe(201);
  });

  afterAll(async () => {
    await server?.stop();
    server?.cleanup();
  });

  it('serves the console files without a key, with a same-origin content security policy', async () => {
    const redirect = await fetch(`${server.url}/console`, { redirect: 'manual' });
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get('location')).toBe('/console/');
    const index = await fetch(`${server.url}/console/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toContain('text/html');
    expect(index.headers.get('content-security-policy')).toMatch(/default-src 'self'.*connect-src 'self'/);
    const html = await index.text();
    expect(html).toContain('src="app.js"');
    // Everything the page loads is a relative URL on the node.
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    const script = await fetch(`${server.url}/console/app.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toContain('javascript');
    expect((await fetch(`${server.url}/console/missing.js`)).status).toBe(404);
    // The files are public; the API is not.
    expect((await fetch(`${server.url}/v1/keys/self`)).status).toBe(401);
    expect((await fetch(`${server.url}/consoleish`)).status).toBe(401);
  });

  it('tells the root key it may do everything', async () => {
    const { status, body } = await server.request('GET', '/v1/keys/self');
    expect(status).toBe(200);
    expect(body).toEqual({
      key: { id: 'root', name: 'root', root: true, databases: ['*'], actions: ['read', 'write', 'admin', 'restore', 'cluster'] },
      global: ['read', 'write', 'admin', 'restore', 'cluster'],
      perDatabase: {
        app: ['read', 'write', 'admin', 'restore', 'cluster'],
        other: ['read', 'write', 'admin', 'restore', 'cluster'],
        'tenant-a': ['read', 'write', 'admin', 'restore', 'cluster'],
      },
    });
  });

  it('tells a limited key its own patterns and actions, naming only the databases it covers', async () => {
    const created = await server.request('POST', '/v1/keys', {
      name: 'reporting',
      databases: ['app', 'tenant-*'],
      actions: ['read', 'restore'],
    });
    expect(created.status).toBe(201);
    const { id, secret } = created.body.key as { id: string; secret: string };
    const response = await fetch(`${server.url}/v1/keys/self`, { headers: { authorization: `Bearer ${secret}` } });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      key: { id, name: 'reporting', root: false, databases: ['app', 'tenant-*'], actions: ['read', 'restore'] },
      global: [],
      perDatabase: { app: ['read', 'restore'], 'tenant-a': ['read', 'restore'] },
    });

    expect((await server.request('DELETE', `/v1/keys/${id}`)).status).toBe(204);
    await expect
      .poll(async () => (await fetch(`${server.url}/v1/keys/self`, { headers: { authorization: `Bearer ${secret}` } })).status)
      .toBe(401);
  });

  it('exports request durations by route and replica lag per node and database', async () => {
    for (let i = 0; i < 3; i++) {
      expect((await server.request('POST', '/v1/databases/app/query', { statements: [{ sql: 'SELECT 1' }] })).status).toBe(200);
    }
    const metrics = await server.request('GET', '/metrics');
    const samples = parsePrometheusText(metrics.body as string);
    const queryCount = samples.find(
      (sample) => sample.name === 'litebase_http_request_duration_seconds_count' && sample.labels.route === '/v1/databases/:db/query',
    );
    expect(queryCount?.value).toBeGreaterThanOrEqual(3);
    const lag = samples.filter((sample) => sample.name === 'litebase_replica_lag_positions');
    expect(lag.map((sample) => `${sample.labels.node}/${sample.labels.database}=${sample.value}`).sort()).toEqual([
      'n1/app=0',
      'n1/other=0',
      'n1/tenant-a=0',
    ]);
  });
});
