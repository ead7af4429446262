import { webcrypto } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signatureHeaders as nodeSignatureHeaders } from '../../../src/client/signing.js';
import {
  base64ToBytes,
  bytesToBase64,
  databaseOfUrl,
  LitebaseClient,
  LitebaseClientError,
  LitebaseSession,
  litebaseFetch,
  rowsAsObjects,
  signatureHeaders,
} from '../../../src/client/portable/index.js';
import { retryDelay, retryPolicy } from '../../../src/client/portable/retry.js';
import { transportError } from '../../../src/client/portable/errors.js';

/**
 * The portable client (`@litebase/client`) on a stub fetch: which node each try goes to, what is
 * retried and what is not, and the position headers of the libSQL fetch wrapper. The real-server
 * side is test/integration/client-package.test.ts.
 */

interface Sent {
  url: string;
  method: string;
  headers: Headers;
  body: unknown;
}

type Reply = Response | Error | ((sent: Sent) => Response | Error);

/** A fetch that records each request and answers from a script, by origin. */
function stubFetch(script: Record<string, Reply[]>): { fetch: typeof fetch; sent: Sent[] } {
  const sent: Sent[] = [];
  const stub = async (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const record: Sent = {
      url,
      method: init.method ?? 'GET',
      headers: new Headers(init.headers),
      body: typeof init.body === 'string' ? JSON.parse(init.body) : undefined,
    };
    sent.push(record);
    const queue = script[new URL(url).origin];
    const next = queue && queue.length > 1 ? queue.shift() : queue?.[0];
    if (next === undefined) throw new Error(`the stub has no answer for ${url}`);
    const reply = typeof next === 'function' ? next(record) : next;
    if (reply instanceof Error) throw reply;
    return reply.clone();
  };
  return { fetch: stub as typeof fetch, sent };
}

const json = (body: unknown, status = 200, headers: Record<string, string> = {}): Response =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
const refused = (): Error =>
  new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) });
const reset = (): Error => new TypeError('fetch failed', { cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }) });
const unavailable = (code: string, retryAfter = '0'): Response =>
  json({ error: { code, message: `${code} (stub)` } }, 503, { 'retry-after': retryAfter });
const answer = (position: string, node = 'n') =>
  json({ results: [{ columns: ['x'], rows: [[1]], rowsAffected: 0, lastInsertRowid: null }], position, node, role: 'primary' });

const A = 'http://a.test';
const B = 'http://b.test';
const C = 'http://c.test';

describe('values without Buffer', () => {
  it('round-trips every byte and large blobs through base64 as Node encodes it', () => {
    const every = Uint8Array.from({ length: 256 }, (_, index) => index);
    const large = Uint8Array.from({ length: 200_000 }, (_, index) => (index * 7919) % 251);
    for (const bytes of [new Uint8Array(), every, large]) {
      expect(bytesToBase64(bytes)).toBe(Buffer.from(bytes).toString('base64'));
      // Buffer.equals: vitest's deep equality walks 200 000 elements one by one.
      expect(Buffer.from(base64ToBytes(bytesToBase64(bytes))).equals(bytes)).toBe(true);
    }
  });
});

describe('signing with Web Crypto', () => {
  it('gives byte for byte the headers of the server-side (node:crypto) signer', async () => {
    const date = new Date('2026-12-06T20:00:00.000Z');
    const cases = [
      {
        key: 'lb_abcdef012345_' + 'x'.repeat(43),
        method: 'POST',
        url: 'https://n:8080/v1/databases/app/query?b=2&a=1',
        body: '{"sql":"SELECT \'é ✓\'"}',
      },
      { key: 'the root key', method: 'GET', url: 'http://n/v1/databases/a%20b', body: undefined },
      { key: 'lb_root_whatever', keyId: 'root', method: 'delete', url: 'http://n/v1/keys/k1', body: '' },
    ];
    for (const input of cases) {
      const web = await signatureHeaders({ ...input, date });
      expect(web).toEqual(nodeSignatureHeaders({ ...input, date }));
      // Node 18 has no global Web Crypto: the same with node:crypto's, given explicitly.
      expect(await signatureHeaders({ ...input, date, subtle: webcrypto.subtle })).toEqual(web);
    }
  });
});

describe('session', () => {
  it('keeps the highest position per database, ignores malformed ones, and survives toJSON', () => {
    const session = new LitebaseSession();
    expect(session.position('app')).toBeUndefined();
    expect(session.minPosition('app')).toBeUndefined();
    expect(session.minPosition('app', 5n)).toBe('5');
    session.observe('app', '18446744073709551615');
    session.observe('app', '7');
    session.observe('app', 'nope');
    session.observe('other', 3n);
    session.observe('other', undefined);
    expect(session.position('app')).toBe('18446744073709551615');
    expect(session.minPosition('other', '2')).toBe('3');
    expect(session.minPosition('other', '9')).toBe('9');
    const copy = new LitebaseSession(JSON.parse(JSON.stringify(session)) as Record<string, string>);
    expect(copy.toJSON()).toEqual({ app: '18446744073709551615', other: '3' });
  });
});

describe('retry decisions', () => {
  const policy = retryPolicy(undefined);
  const error503 = (code: string, retryAfter?: number) =>
    new LitebaseClientError(code, code, { status: 503, ...(retryAfter === undefined ? {} : { retryAfter }) });

  it('waits Retry-After for a 503 (1 s when absent, capped), up to the attempts', () => {
    expect(retryDelay({ error: error503('PRIMARY_UNAVAILABLE', 2), attempt: 1, reachableNodes: 1, idempotent: false }, policy)).toBe(2000);
    expect(retryDelay({ error: error503('WRITE_LOCK_TIMEOUT'), attempt: 1, reachableNodes: 1, idempotent: false }, policy)).toBe(1000);
    expect(retryDelay({ error: error503('PRIMARY_UNAVAILABLE', 3600), attempt: 1, reachableNodes: 1, idempotent: false }, policy)).toBe(
      10_000,
    );
    expect(
      retryDelay({ error: error503('PRIMARY_UNAVAILABLE', 1), attempt: 5, reachableNodes: 1, idempotent: false }, policy),
    ).toBeUndefined();
    expect(
      retryDelay({ error: error503('PRIMARY_UNAVAILABLE', 1), attempt: 1, reachableNodes: 1, idempotent: false }, retryPolicy(false)),
    ).toBeUndefined();
  });

  it('sends nothing twice whose first try may have been applied, unless it is idempotent', () => {
    for (const code of ['PRIMARY_CHANGED', 'LOG_UNAVAILABLE']) {
      expect(retryDelay({ error: error503(code, 1), attempt: 1, reachableNodes: 1, idempotent: false }, policy)).toBeUndefined();
      expect(retryDelay({ error: error503(code, 1), attempt: 1, reachableNodes: 1, idempotent: true }, policy)).toBe(1000);
    }
    const cut = transportError(reset(), 'POST', A, 1000);
    expect(retryDelay({ error: cut, attempt: 1, reachableNodes: 1, idempotent: false }, policy)).toBeUndefined();
    expect(retryDelay({ error: cut, attempt: 1, reachableNodes: 1, idempotent: true }, policy)).toBe(0);
    const notSent = transportError(refused(), 'POST', A, 1000);
    expect(retryDelay({ error: notSent, attempt: 1, reachableNodes: 1, idempotent: false }, policy)).toBe(0);
    // Every node failed to connect: give up rather than wait for nodes that are down.
    expect(retryDelay({ error: notSent, attempt: 2, reachableNodes: 0, idempotent: false }, policy)).toBeUndefined();
    expect(
      retryDelay(
        { error: new LitebaseClientError('SQL_ERROR', 'x', { status: 400 }), attempt: 1, reachableNodes: 1, idempotent: true },
        policy,
      ),
    ).toBeUndefined();
  });

  it('refuses a nonsensical policy', () => {
    expect(() => retryPolicy({ attempts: 0 })).toThrow(LitebaseClientError);
  });
});

describe('several nodes', () => {
  it('fails over from a node that refuses connections and keeps going to the one that answered', async () => {
    const { fetch, sent } = stubFetch({ [A]: [refused()], [B]: [answer('4')] });
    const client = new LitebaseClient({ urls: [A, B], key: 'k', fetch });
    expect((await client.query('app', 'INSERT INTO t VALUES (1)')).position).toBe('4');
    await client.query('app', 'SELECT 1');
    expect(sent.map((request) => new URL(request.url).origin)).toEqual([A, B, B]);
    expect(sent[1]?.headers.get('authorization')).toBe('Bearer k');
  });

  it('retries a 503 on the next node after Retry-After, and every node when needed', async () => {
    const { fetch, sent } = stubFetch({
      [A]: [unavailable('POSITION_NOT_REACHED')],
      [B]: [unavailable('PRIMARY_UNAVAILABLE')],
      [C]: [answer('9')],
    });
    const client = new LitebaseClient({ urls: [A, B, C], fetch });
    expect((await client.query('app', 'SELECT 1')).position).toBe('9');
    expect(sent.map((request) => new URL(request.url).origin)).toEqual([A, B, C]);
  });

  it('goes on past a dead node while a live one answers 503 (a Primary died, its Replica takes over)', async () => {
    const { fetch, sent } = stubFetch({
      [A]: [unavailable('PRIMARY_UNAVAILABLE'), unavailable('PRIMARY_UNAVAILABLE'), answer('3')],
      [B]: [refused()],
    });
    const client = new LitebaseClient({ urls: [A, B], fetch });
    expect((await client.query('app', 'INSERT INTO t VALUES (1)')).position).toBe('3');
    expect(sent.map((request) => new URL(request.url).origin)).toEqual([A, B, A, B, A]);
  });

  it('gives up after the attempts with the last 503', async () => {
    const { fetch, sent } = stubFetch({ [A]: [unavailable('PRIMARY_UNAVAILABLE')] });
    const client = new LitebaseClient({ url: A, fetch, retry: { attempts: 3 } });
    const error = await client.query('app', 'INSERT INTO t VALUES (1)').catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'PRIMARY_UNAVAILABLE', status: 503, retryAfter: 0 });
    expect(sent).toHaveLength(3);
  });

  it('does not send a write again after PRIMARY_CHANGED or a cut connection, but does when told it is idempotent', async () => {
    const changed = stubFetch({ [A]: [unavailable('PRIMARY_CHANGED')], [B]: [answer('1')] });
    const client = new LitebaseClient({ urls: [A, B], fetch: changed.fetch });
    expect(await client.query('app', 'INSERT INTO t VALUES (1)').catch((caught: unknown) => caught)).toMatchObject({
      code: 'PRIMARY_CHANGED',
    });
    expect(changed.sent).toHaveLength(1);
    expect((await client.query('app', 'INSERT OR REPLACE INTO t VALUES (1)', { idempotent: true })).position).toBe('1');

    const cut = stubFetch({ [A]: [reset()], [B]: [answer('1')] });
    const other = new LitebaseClient({ urls: [A, B], fetch: cut.fetch });
    expect(await other.query('app', 'INSERT INTO t VALUES (1)').catch((caught: unknown) => caught)).toMatchObject({
      code: 'CONNECTION_FAILED',
      status: 0,
    });
    expect(cut.sent).toHaveLength(1);
    // A GET is idempotent by its method.
    const list = stubFetch({ [A]: [reset()], [B]: [json({ databases: [] })] });
    expect(await new LitebaseClient({ urls: [A, B], fetch: list.fetch }).listDatabases()).toEqual([]);
  });

  it('signs every try afresh for the node it goes to', async () => {
    const { fetch, sent } = stubFetch({ [A]: [refused()], [B]: [answer('1')] });
    const client = new LitebaseClient({ urls: [A, B], key: 'lb_abcdef012345_' + 'y'.repeat(43), sign: true, fetch });
    await client.query('app', 'SELECT 1');
    expect(sent.every((request) => request.headers.get('authorization') === null)).toBe(true);
    const last = sent[1];
    expect(last?.headers.get('x-litebase-key-id')).toBe('abcdef012345');
    const expected = nodeSignatureHeaders({
      key: 'lb_abcdef012345_' + 'y'.repeat(43),
      method: 'POST',
      url: last?.url ?? '',
      body: JSON.stringify(last?.body),
      date: new Date(last?.headers.get('x-litebase-date') ?? ''),
    });
    expect(last?.headers.get('x-litebase-signature')).toBe(expected['x-litebase-signature']);
  });

  it('keeps an interactive transaction on the node that opened it, and never retries inside it', async () => {
    const { fetch, sent } = stubFetch({
      [A]: [refused()],
      [B]: [json({ transaction: { id: 'tx1', expiresAt: '2026-12-06T20:00:05.000Z' } }), answer('0'), unavailable('LEASE_LOST')],
    });
    const client = new LitebaseClient({ urls: [A, B], fetch });
    const transaction = await client.beginTransaction('app');
    expect(transaction.node).toBe(B);
    await transaction.execute('INSERT INTO t VALUES (?)', [1]);
    expect(await transaction.commit().catch((caught: unknown) => caught)).toMatchObject({ code: 'LEASE_LOST' });
    expect(sent.map((request) => request.url)).toEqual([
      `${A}/v1/databases/app/transactions`,
      `${B}/v1/databases/app/transactions`,
      `${B}/v1/databases/app/transactions/tx1/query`,
      `${B}/v1/databases/app/transactions/tx1/commit`,
    ]);
  });
});

describe('database handle and session', () => {
  it('sends the session position as minPosition and remembers each answer', async () => {
    const { fetch, sent } = stubFetch({
      [A]: [
        answer('10'),
        answer('8'),
        json({ transaction: { id: 't', expiresAt: 'x' } }),
        answer('0'),
        json({ position: '12', node: 'n' }),
        answer('12'),
      ],
    });
    const client = new LitebaseClient({ url: A, fetch });
    const session = client.session();
    const db = client.database('app', { session });
    expect(await db.execute('INSERT INTO t VALUES (?)', [1])).toMatchObject({ columns: ['x'] });
    expect(await db.batch([{ sql: 'SELECT 1' }], { mode: 'independent' })).toHaveLength(1);
    expect(await db.transaction(async (tx) => (await tx.execute('UPDATE t SET x = 2')).rowsAffected)).toBe(0);
    await db.execute('SELECT * FROM t');
    expect(sent.map((request) => (request.body as { minPosition?: string } | undefined)?.minPosition)).toEqual([
      undefined,
      '10',
      undefined,
      undefined,
      undefined,
      '12',
    ]);
    expect((sent[1]?.body as { mode?: string }).mode).toBe('independent');
    expect(session.toJSON()).toEqual({ app: '12' });
  });

  it('rolls a transaction back when its work throws, and throws the work error', async () => {
    const { fetch, sent } = stubFetch({ [A]: [json({ transaction: { id: 't', expiresAt: 'x' } }), json({})] });
    const db = new LitebaseClient({ url: A, fetch }).database('app');
    const failure = new Error('work failed');
    await expect(
      db.transaction(async () => {
        throw failure;
      }),
    ).rejects.toBe(failure);
    expect(sent.map((request) => new URL(request.url).pathname)).toEqual([
      '/v1/databases/app/transactions',
      '/v1/databases/app/transactions/t/rollback',
    ]);
  });

  it('gives rows as objects', () => {
    expect(
      rowsAsObjects({
        columns: ['a', 'b'],
        rows: [
          [1, 'x'],
          [2, null],
        ],
      }),
    ).toEqual([
      { a: 1, b: 'x' },
      { a: 2, b: null },
    ]);
  });
});

describe('litebaseFetch (for @libsql/client)', () => {
  const url = (db: string) => `${A}/v1/databases/${db}/v2/pipeline`;

  it('remembers x-litebase-position per database and sends x-litebase-min-position', async () => {
    const seen: Array<string | null> = [];
    const positions: Record<string, string> = { app: '5', 'my db': '2' };
    const { fetch } = stubFetch({
      [A]: [
        (sent) => {
          seen.push(sent.headers.get('x-litebase-min-position'));
          return json({ results: [] }, 200, { 'x-litebase-position': positions[databaseOfUrl(sent.url)] ?? '0' });
        },
      ],
    });
    const wrapped = litebaseFetch({ fetch });
    await wrapped(url('app'), { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    await wrapped(url('app'), { method: 'POST', body: '{}' });
    positions.app = '3'; // an answer behind the session does not move it back
    await wrapped(new URL(url('app')), { method: 'POST', body: '{}' });
    await wrapped(url('app'), { method: 'POST', body: '{}' });
    await wrapped(url('my%20db'), { method: 'POST', body: '{}' });
    expect(seen).toEqual([null, '5', '5', '5', null]);
    expect(wrapped.session.toJSON()).toEqual({ app: '5', 'my db': '2' });
  });

  it('keeps the request headers, a Request object, and a min position the caller set', async () => {
    const session = new LitebaseSession({ app: '7' });
    const { fetch, sent } = stubFetch({ [A]: [json({}, 200, { 'x-litebase-position': '8' })] });
    const wrapped = litebaseFetch({ fetch, session });
    await wrapped(new Request(url('app'), { method: 'POST', body: '{}', headers: { authorization: 'Bearer k' } }));
    expect(sent[0]?.headers.get('authorization')).toBe('Bearer k');
    expect(sent[0]?.headers.get('x-litebase-min-position')).toBe('7');
    await wrapped(url('app'), { headers: { 'x-litebase-min-position': '1', authorization: 'Bearer k' } });
    expect(sent[1]?.headers.get('x-litebase-min-position')).toBe('1');
    expect(session.position('app')).toBe('8');
  });

  it('shares one session with the Litebase client', async () => {
    const { fetch, sent } = stubFetch({ [A]: [answer('20')], [B]: [json({}, 200, { 'x-litebase-position': '20' })] });
    const client = new LitebaseClient({ url: A, fetch });
    const session = client.session();
    await client.database('app', { session }).execute('INSERT INTO t VALUES (1)');
    await litebaseFetch({ fetch, session })(`${B}/v1/databases/app/v3/pipeline`, { method: 'POST', body: '{}' });
    expect(sent[1]?.headers.get('x-litebase-min-position')).toBe('20');
  });
});
