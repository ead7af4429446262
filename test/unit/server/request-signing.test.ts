import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalQuery, canonicalRequest, keyIdOf, signatureHeaders } from '../../../src/client/signing.js';
import { LitebaseError } from '../../../src/errors.js';
import { parseSignatureDate, ReplayCache } from '../../../src/server/request-signing.js';

/** The pure parts of request signing (docs/SECURITY.md): the canonical request and the replay cache. */
describe('signing scheme v1', () => {
  const key = 'lb_abcdef012345_' + 'x'.repeat(43);

  it('builds the canonical request as documented', () => {
    expect(canonicalQuery('')).toBe('');
    expect(canonicalQuery('b=2&a=1&&a=0')).toBe('a=0&a=1&b=2');
    expect(
      canonicalRequest({ method: 'post', path: '/v1/databases/app/query', query: 'b=2&a=1', keyId: 'abcdef012345', date: 'D', bodySha256: 'H' }),
    ).toBe('v1\nPOST\n/v1/databases/app/query\na=1&b=2\nabcdef012345\nD\nH');
    expect(keyIdOf(key)).toBe('abcdef012345');
    expect(keyIdOf('lb_root_whatever')).toBe('root');
    expect(keyIdOf('any root key')).toBe('root');
  });

  it('signs with HMAC-SHA256 under HMAC-SHA256(SHA-256(key), label), as an independent implementation does', () => {
    const body = '{"statements":[{"sql":"SELECT 1"}]}';
    const date = new Date('2026-11-25T10:00:00.000Z');
    const headers = signatureHeaders({ key, method: 'POST', url: 'https://node:8080/v1/databases/app/query?b=2&a=1', body, date });
    const signingKey = createHmac('sha256', createHash('sha256').update(key).digest()).update('litebase-request-signing-v1').digest();
    const canonical = [
      'v1',
      'POST',
      '/v1/databases/app/query',
      'a=1&b=2',
      'abcdef012345',
      '2026-11-25T10:00:00.000Z',
      createHash('sha256').update(body).digest('hex'),
    ].join('\n');
    expect(headers).toEqual({
      'x-litebase-key-id': 'abcdef012345',
      'x-litebase-date': '2026-11-25T10:00:00.000Z',
      'x-litebase-signature': `v1=${createHmac('sha256', signingKey).update(canonical).digest('hex')}`,
    });
    // The path is signed as fetch sends it: normalized by the URL parser.
    const normalized = signatureHeaders({ key, method: 'GET', url: 'http://node/v1/x/../databases/a%20b', date });
    expect(normalized).toEqual(signatureHeaders({ key, method: 'GET', url: 'http://node/v1/databases/a%20b', date }));
  });

  it('reads RFC 3339 and Unix millisecond dates, nothing else', () => {
    expect(parseSignatureDate('2026-11-25T10:00:00.000Z')).toBe(Date.UTC(2026, 10, 25, 10));
    expect(parseSignatureDate('2026-11-25T11:00:00+01:00')).toBe(Date.UTC(2026, 10, 25, 10));
    expect(parseSignatureDate('1795600800000')).toBe(1795600800000);
    for (const bad of ['', 'yesterday', '2026-11-25', 'Wed, 25 Nov 2026 10:00:00 GMT', '-1', '1e12']) {
      expect(parseSignatureDate(bad), bad).toBeNaN();
    }
  });
});

describe('ReplayCache', () => {
  it('accepts a signature once until it expires, then forgets it', () => {
    const cache = new ReplayCache(10, 1000);
    expect(cache.remember('a', 5_000, 0)).toBe(true);
    expect(cache.remember('a', 5_000, 100)).toBe(false);
    expect(cache.remember('b', 5_000, 100)).toBe(true);
    expect(cache.size).toBe(2);
    // Past its expiry the date check refuses the request anyway; the entry can go.
    expect(cache.remember('c', 9_000, 6_000)).toBe(true);
    expect(cache.size).toBe(1);
  });

  it('refuses with 503 when full of live entries rather than forget one', () => {
    const cache = new ReplayCache(2, 1000);
    cache.remember('a', 5_000, 0);
    cache.remember('b', 7_000, 0);
    let refusal: unknown;
    try {
      cache.remember('c', 7_000, 10);
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(LitebaseError);
    expect((refusal as LitebaseError).code).toBe('SIGNATURE_CACHE_FULL');
    expect((refusal as LitebaseError).status).toBe(503);
    expect((refusal as LitebaseError).retryAfterSeconds).toBe(6);
    // A replay is still told apart while full.
    expect(cache.remember('a', 5_000, 10)).toBe(false);
    // Once the first expires there is room again.
    expect(cache.remember('c', 7_000, 6_000)).toBe(true);
  });
});
