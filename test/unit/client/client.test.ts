import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LitebaseClient, LitebaseClientError } from '../../../src/client/index.js';
import { freePort } from '../../support/server.js';

/** A tiny fake of the HTTP contract (docs/API.md): it records requests and answers what a test says. */
interface Recorded {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: unknown;
}

interface Answer {
  status?: number;
  body?: unknown;
  /** Sent as is, instead of JSON. */
  text?: string;
  headers?: Record<string, string>;
  /** Never answer (for timeouts). */
  hang?: boolean;
}

let server: Server;
let baseUrl: string;
let requests: Recorded[] = [];
let answer: (request: Recorded) => Answer = () => ({ status: 200, body: {} });
const hanging = new Set<ServerResponse>();

beforeAll(async () => {
  server = createServer((request, response) => {
    let raw = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (raw += chunk));
    request.on('end', () => {
      const recorded: Recorded = {
        method: request.method ?? '',
        url: request.url ?? '',
        headers: request.headers,
        body: raw === '' ? undefined : (JSON.parse(raw) as unknown),
      };
      requests.push(recorded);
      const reply = answer(recorded);
      if (reply.hang) {
        hanging.add(response);
        return;
      }
      const status = reply.status ?? 200;
      if (reply.text !== undefined) {
        response.writeHead(status, { 'content-type': 'text/html', ...reply.headers });
        response.end(reply.text);
      } else if (reply.body === undefined) {
        response.writeHead(status, reply.headers);
        response.end();
      } else {
        response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...reply.headers });
        response.end(JSON.stringify(reply.body));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const response of hanging) response.destroy();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  requests = [];
  answer = () => ({ status: 200, body: {} });
});

const client = (options: { key?: string; timeoutMs?: number; url?: string } = {}) =>
  new LitebaseClient({
    url: options.url ?? baseUrl,
    key: options.key ?? 'secret-key',
    ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
  });

async function caught(promise: Promise<unknown>): Promise<LitebaseClientError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(LitebaseClientError);
    return error as LitebaseClientError;
  }
  throw new Error('expected a LitebaseClientError');
}

const queryAnswer = {
  results: [
    {
      columns: ['a', 'b', 'c', 'd', 'e'],
      rows: [
        [1, 'text ✓', 1.5, { $blob: Buffer.from([0, 1, 254, 255]).toString('base64') }, { $int: '9223372036854775807' }],
        [2, null, -0.25, null, { $int: '-9007199254740993' }],
      ],
      rowsAffected: 0,
      lastInsertRowid: null,
    },
    { columns: [], rows: [], rowsAffected: 1, lastInsertRowid: { $int: '9007199254740993' } },
    { columns: [], rows: [], rowsAffected: 1, lastInsertRowid: 7 },
  ],
  position: '18446744073709551615',
  node: 'n1',
  role: 'primary',
};

describe('query', () => {
  it('encodes params, sends the key and options, and decodes every value type', async () => {
    answer = () => ({ body: queryAnswer });
    const response = await client().query(
      'app',
      [
        { sql: 'INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)', params: [1, 'x', 1.5, null, 2n ** 63n - 1n, Buffer.from([0, 255]), true] },
        { sql: 'SELECT :a, :b', params: { a: -(2n ** 60n), b: new Uint8Array([1, 2, 3]) } },
        { sql: 'SELECT 1' },
      ],
      { mode: 'independent', minPosition: 12n },
    );

    expect(requests).toHaveLength(1);
    const [sent] = requests;
    expect(sent?.method).toBe('POST');
    expect(sent?.url).toBe('/v1/databases/app/query');
    expect(sent?.headers.authorization).toBe('Bearer secret-key');
    expect(sent?.headers['content-type']).toBe('application/json');
    expect(sent?.body).toEqual({
      statements: [
        {
          sql: 'INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)',
          params: [1, 'x', 1.5, null, { $int: '9223372036854775807' }, { $blob: 'AP8=' }, true],
        },
        { sql: 'SELECT :a, :b', params: { a: { $int: '-1152921504606846976' }, b: { $blob: 'AQID' } } },
        { sql: 'SELECT 1' },
      ],
      mode: 'independent',
      minPosition: '12',
    });

    expect(response.position).toBe('18446744073709551615');
    expect(response.node).toBe('n1');
    expect(response.role).toBe('primary');
    const [rows, insertBig, insertSmall] = response.results;
    expect(rows?.columns).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(rows?.rows).toEqual([
      [1, 'text ✓', 1.5, new Uint8Array([0, 1, 254, 255]), 9223372036854775807n],
      [2, null, -0.25, null, -9007199254740993n],
    ]);
    expect(rows?.rows[0]?.[3]).toBeInstanceOf(Uint8Array);
    expect(rows?.lastInsertRowid).toBeNull();
    expect(insertBig).toEqual({ columns: [], rows: [], rowsAffected: 1, lastInsertRowid: 9007199254740993n });
    expect(insertSmall?.lastInsertRowid).toBe(7);
  });

  it('sends a string as one statement without params and no options it was not given', async () => {
    answer = () => ({ body: { results: [], position: '0', node: 'n1', role: 'primary' } });
    await client().query('app', 'SELECT 1');
    expect(requests[0]?.body).toEqual({ statements: [{ sql: 'SELECT 1' }] });
  });

  it('keeps the wire encoding in queryRaw', async () => {
    answer = () => ({ body: queryAnswer });
    expect(await client().queryRaw('app', 'SELECT 1')).toEqual(queryAnswer);
  });

  it('refuses NaN and Infinity instead of sending null', async () => {
    for (const value of [Number.NaN, Number.POSITIVE_INFINITY]) {
      const error = await caught(client().query('app', [{ sql: 'SELECT ?', params: [value] }]));
      expect(error.code).toBe('INVALID_VALUE');
      expect(error.status).toBe(0);
    }
    expect(requests).toHaveLength(0);
  });

  it('escapes database names in paths and keeps a URL path prefix', async () => {
    answer = () => ({ body: { database: { name: 'x', id: 'i', createdAt: 't', position: '0' } } });
    await client({ url: `${baseUrl}/prefix/` }).getDatabase('a/../b');
    expect(requests[0]?.url).toBe('/prefix/v1/databases/a%2F..%2Fb');
  });
});

describe('databases', () => {
  it('creates, lists, gets and drops with the right methods and paths', async () => {
    const database = { name: 'app', id: 'id-1', createdAt: '2026-11-25T00:00:00.000Z', position: '0', pageSize: 4096 };
    answer = (request) => {
      if (request.method === 'POST') return { status: 201, body: { database } };
      if (request.method === 'DELETE') return { status: 204 };
      if (request.url === '/v1/databases') return { body: { databases: [database] } };
      return { body: { database } };
    };
    const api = client();
    expect(await api.createDatabase('app')).toEqual(database);
    expect(await api.listDatabases()).toEqual([database]);
    expect(await api.getDatabase('app')).toEqual(database);
    await expect(api.dropDatabase('app')).resolves.toBeUndefined();
    expect(requests.map((request) => `${request.method} ${request.url}`)).toEqual([
      'POST /v1/databases',
      'GET /v1/databases',
      'GET /v1/databases/app',
      'DELETE /v1/databases/app',
    ]);
    expect(requests[0]?.body).toEqual({ name: 'app' });
  });

  it('sends no Authorization header without a key', async () => {
    answer = () => ({ body: { databases: [] } });
    await new LitebaseClient({ url: baseUrl }).listDatabases();
    expect(requests[0]?.headers.authorization).toBeUndefined();
  });
});

describe('transactions', () => {
  it('begins, queries, commits and rolls back on the transaction paths', async () => {
    const id = '0b7d4c2e-8f51-4a34-9a5e-1d0f6f4c7a11';
    answer = (request) => {
      if (request.url.endsWith('/transactions'))
        return { status: 201, body: { transaction: { id, expiresAt: '2026-11-25T00:00:05.000Z' } } };
      if (request.url.endsWith('/query')) return { body: queryAnswer };
      if (request.url.endsWith('/commit')) return { body: { position: '9007199254740993', node: 'n1' } };
      return { body: { rolledBack: true } };
    };
    const transaction = await client().beginTransaction('app', { timeoutMs: 5000 });
    expect(transaction.id).toBe(id);
    expect(transaction.expiresAt).toBe('2026-11-25T00:00:05.000Z');
    const response = await transaction.query([{ sql: 'SELECT ?', params: [2n ** 62n] }]);
    expect(response.results[0]?.rows[0]?.[4]).toBe(9223372036854775807n);
    expect(await transaction.commit()).toEqual({ position: '9007199254740993', node: 'n1' });
    await transaction.rollback();
    expect(requests.map((request) => `${request.method} ${request.url}`)).toEqual([
      'POST /v1/databases/app/transactions',
      `POST /v1/databases/app/transactions/${id}/query`,
      `POST /v1/databases/app/transactions/${id}/commit`,
      `POST /v1/databases/app/transactions/${id}/rollback`,
    ]);
    expect(requests[0]?.body).toEqual({ timeoutMs: 5000 });
    expect(requests[1]?.body).toEqual({ statements: [{ sql: 'SELECT ?', params: [{ $int: '4611686018427387904' }] }] });
  });
});

describe('errors', () => {
  it('maps the error body to code, status, message and details', async () => {
    answer = () => ({
      status: 400,
      body: { error: { code: 'SQLITE_CONSTRAINT_UNIQUE', message: 'UNIQUE constraint failed: u.k', statement: 1 } },
    });
    const error = await caught(client().query('app', 'INSERT INTO u VALUES (1)'));
    expect(error.code).toBe('SQLITE_CONSTRAINT_UNIQUE');
    expect(error.status).toBe(400);
    expect(error.message).toBe('UNIQUE constraint failed: u.k');
    expect(error.details).toEqual({ statement: 1 });
    expect(error.retryAfter).toBeUndefined();
  });

  it('maps 401 and 404', async () => {
    answer = () => ({ status: 401, body: { error: { code: 'INVALID_KEY', message: 'the access key is not valid' } } });
    expect(await caught(client().listDatabases())).toMatchObject({ code: 'INVALID_KEY', status: 401 });
    answer = () => ({ status: 404, body: { error: { code: 'DATABASE_NOT_FOUND', message: 'database nope does not exist' } } });
    expect(await caught(client().getDatabase('nope'))).toMatchObject({ code: 'DATABASE_NOT_FOUND', status: 404 });
  });

  it('keeps Retry-After from a 503', async () => {
    answer = () => ({
      status: 503,
      headers: { 'retry-after': '3' },
      body: { error: { code: 'LOG_UNAVAILABLE', message: 'the log cannot be written' } },
    });
    const error = await caught(client().query('app', 'INSERT INTO t VALUES (1)'));
    expect(error).toMatchObject({ code: 'LOG_UNAVAILABLE', status: 503, retryAfter: 3 });
    expect(requests).toHaveLength(1); // no automatic retry
  });

  it('reports an answer that is not the API error shape as HTTP_<status>', async () => {
    answer = () => ({ status: 502, text: '<html>Bad Gateway</html>' });
    const error = await caught(client().listDatabases());
    expect(error.code).toBe('HTTP_502');
    expect(error.status).toBe(502);
    expect(error.message).toContain('Bad Gateway');
  });

  it('reports a success answer that is not JSON as INVALID_RESPONSE', async () => {
    answer = () => ({ status: 200, text: 'hello' });
    expect((await caught(client().listDatabases())).code).toBe('INVALID_RESPONSE');
  });

  it('reports an unreachable node as CONNECTION_FAILED', async () => {
    const port = await freePort();
    const error = await caught(client({ url: `http://127.0.0.1:${port}` }).listDatabases());
    expect(error.code).toBe('CONNECTION_FAILED');
    expect(error.status).toBe(0);
    expect(error.message).toContain('ECONNREFUSED');
  });

  it('reports a node that does not answer in time as TIMEOUT', async () => {
    answer = () => ({ hang: true });
    const error = await caught(client({ timeoutMs: 200 }).listDatabases());
    expect(error.code).toBe('TIMEOUT');
  });

  it('refuses a URL that is not http(s)', () => {
    expect(() => new LitebaseClient({ url: 'not a url' })).toThrow(LitebaseClientError);
    expect(() => new LitebaseClient({ url: 'ftp://example.com' })).toThrow(/http/);
  });
});

describe('node endpoints', () => {
  it('reads health, readiness (503 while recovering is an answer), metrics and cluster', async () => {
    let recovering = true;
    answer = (request) => {
      if (request.url === '/healthz') return { body: { status: 'ok' } };
      if (request.url === '/readyz') return recovering ? { status: 503, body: { status: 'recovering' } } : { body: { status: 'ready' } };
      if (request.url === '/metrics') return { text: '# HELP x\nx 1\n', headers: { 'content-type': 'text/plain; version=0.0.4' } };
      return { body: { term: '3', primary: 'n1', nodes: [] } };
    };
    const api = client();
    expect(await api.health()).toEqual({ status: 'ok' });
    expect(await api.ready()).toEqual({ ready: false, status: 'recovering' });
    recovering = false;
    expect(await api.ready()).toEqual({ ready: true, status: 'ready' });
    expect(await api.metrics()).toBe('# HELP x\nx 1\n');
    expect(await api.cluster()).toEqual({ term: '3', primary: 'n1', nodes: [] });
    expect(requests.at(-1)?.url).toBe('/v1/cluster');
  });
});
