import { describe, expect, it } from 'vitest';
import { isJsonNudge } from '../../../src/server/routes/cluster.js';

/** The JSON form of POST /v1/cluster/nudge (docs/API.md): `{"databases": [names]}` and nothing else. */
describe('a JSON nudge body', () => {
  it('accepts a list of database names, empty or not', () => {
    expect(isJsonNudge({ databases: [] })).toBe(true);
    expect(isJsonNudge({ databases: ['app', 'b'.repeat(64)] })).toBe(true);
    expect(isJsonNudge({ databases: Array.from({ length: 10_000 }, (_, i) => `db${i}`) })).toBe(true);
  });

  it('refuses anything else', () => {
    for (const body of [
      null,
      'app',
      ['app'],
      {},
      { databases: 'app' },
      { databases: [1] },
      { databases: ['c'.repeat(65)] },
      { databases: Array.from({ length: 10_001 }, (_, i) => `db${i}`) },
      { databases: [], more: true },
    ]) {
      expect(isJsonNudge(body), JSON.stringify(body)?.slice(0, 80)).toBe(false);
    }
  });
});
