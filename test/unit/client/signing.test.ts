import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalQuery, canonicalRequest, keyIdOf, signatureHeaders } from '../../../src/client/signing.js';

/** Request signing as the client does it (docs/SECURITY.md): the canonical request and the signature. */
describe('signing scheme v1', () => {
  const key = 'lb_abcdef012345_' + 'x'.repeat(43);

  it('builds the canonical request as documented', () => {
    expect(canonicalQuery('')).toBe('');
    expect(canonicalQuery('b=2&a=1&&a=0')).toBe('a=0&a=1&b=2');
    expect(
      canonicalRequest({
        method: 'post',
        path: '/v1/databases/app/query',
        query: 'b=2&a=1',
        keyId: 'abcdef012345',
        date: 'D',
        bodySha256: 'H',
      }),
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
});
