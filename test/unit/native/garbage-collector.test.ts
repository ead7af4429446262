import { describe, expect, it } from 'vitest';
import { collectGarbage } from '../../../src/native/garbage-collector.js';

/** V8's full collection, run on purpose after heavy work (src/native/garbage-collector.ts). */
describe('collectGarbage', () => {
  it('frees a dropped buffer now, not when V8 would have come by itself', () => {
    expect(collectGarbage()).toBe(true);
    const before = process.memoryUsage().arrayBuffers;
    let dropped: Buffer | undefined = Buffer.alloc(32 * 1024 * 1024, 1);
    expect(process.memoryUsage().arrayBuffers).toBeGreaterThanOrEqual(before + dropped.length);
    dropped = undefined;
    expect(collectGarbage()).toBe(true);
    expect(process.memoryUsage().arrayBuffers).toBeLessThan(before + 16 * 1024 * 1024);
    expect(dropped).toBeUndefined();
  });
});
