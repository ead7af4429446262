import { describe, expect, it } from 'vitest';
import { LitebaseError } from '../../../src/errors.js';
import { parseSignatureDate, ReplayCache } from '../../../src/server/request-signing.js';

/** The pure parts of checking signed requests (docs/SECURITY.md): the date header and the replay cache. */
describe('signature dates', () => {
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
