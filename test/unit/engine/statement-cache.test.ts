import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { StatementCache } from '../../../src/engine/executor.js';

/** The prepared-statement cache (src/engine/executor.ts): hits, and second-chance eviction. */
describe('StatementCache', () => {
  it('keeps statements that were used since they were cached, and evicts the oldest unused one', () => {
    const db = new Database(':memory:');
    const cache = new StatementCache(db, undefined, 3);
    const a = cache.prepare('SELECT 1', 0, false);
    const b = cache.prepare('SELECT 2', 0, false);
    const c = cache.prepare('SELECT 3', 0, false);
    expect(cache.prepare('SELECT 1', 0, false)).toBe(a);
    cache.prepare('SELECT 4', 0, false);
    // a was used: it gets a second chance; b, the oldest unused, goes.
    expect(cache.prepare('SELECT 1', 0, false)).toBe(a);
    expect(cache.prepare('SELECT 3', 0, false)).toBe(c);
    expect(cache.prepare('SELECT 2', 0, false)).not.toBe(b);
    db.close();
  });

  it('evicts even when every statement was used', () => {
    const db = new Database(':memory:');
    const cache = new StatementCache(db, undefined, 2);
    const a = cache.prepare('SELECT 1', 0, false);
    const b = cache.prepare('SELECT 2', 0, false);
    cache.prepare('SELECT 1', 0, false);
    cache.prepare('SELECT 2', 0, false);
    const c = cache.prepare('SELECT 3', 0, false);
    expect(cache.prepare('SELECT 3', 0, false)).toBe(c);
    const kept = [cache.prepare('SELECT 1', 0, false) === a, cache.prepare('SELECT 2', 0, false) === b];
    expect(kept.filter(Boolean).length).toBeLessThanOrEqual(1);
    db.close();
  });
});
