import { describe, expect, it } from 'vitest';
import { keeperSource } from '../../../src/cluster/lease-worker.js';

/** The lease keeper's worker program (src/cluster/lease-worker.ts), built as source text. */

describe('the keeper program', () => {
  it('is plain JavaScript built from these same functions', () => {
    const source = keeperSource();
    expect(() => new Function(source)).not.toThrow();
    expect(source).toContain('function decide(');
    expect(source).toContain('class LeaseStore');
    expect(source).toContain('function runKeeper(');
    // Nothing the test runner's module system injected (an import binding would not exist there).
    expect(source).not.toMatch(/__vi_|__vite_ssr|import\s*\(|\brequire\(['"](?!node:)/);
  });
});
