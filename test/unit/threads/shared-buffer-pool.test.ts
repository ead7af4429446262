import { describe, expect, it } from 'vitest';
import { SharedBufferPool } from '../../../src/threads/shared-buffer-pool.js';

const MiB = 1024 * 1024;

describe('SharedBufferPool', () => {
  it('gives buffers of exactly the asked size at the start of shared memory rounded up to the granule', () => {
    const pool = new SharedBufferPool(2);
    const buffer = pool.take(3 * MiB + 5);
    expect(buffer.byteLength).toBe(3 * MiB + 5);
    expect(buffer.byteOffset).toBe(0);
    expect(buffer.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(buffer.buffer.byteLength).toBe(4 * MiB);
  });

  it('reuses memory given back for a read that fits, the smallest that fits first', () => {
    const pool = new SharedBufferPool(4);
    const large = pool.take(8 * MiB);
    const small = pool.take(2 * MiB);
    pool.give(large);
    pool.give(small);
    const again = pool.take(MiB + 1);
    expect(again.buffer).toBe(small.buffer);
    expect(again.byteLength).toBe(MiB + 1);
    // The small one is taken now: a read of 3 MiB gets the large one, one of 9 MiB new memory.
    expect(pool.take(3 * MiB).buffer).toBe(large.buffer);
    const fresh = pool.take(9 * MiB);
    expect(fresh.buffer).not.toBe(large.buffer);
    expect(fresh.buffer).not.toBe(small.buffer);
  });

  it('keeps at most `keep` free buffers, the largest, and ignores what it did not give or got twice', () => {
    const pool = new SharedBufferPool(2);
    const buffers = [1, 4, 2].map((mib) => pool.take(mib * MiB));
    for (const buffer of buffers) pool.give(buffer);
    pool.give(buffers[1] as Buffer);
    pool.give(Buffer.alloc(16));
    // Kept: the 4 MiB and the 2 MiB ones; the 1 MiB one was dropped.
    const first = pool.take(MiB);
    const second = pool.take(MiB);
    const third = pool.take(MiB);
    expect(first.buffer).toBe(buffers[2]?.buffer);
    expect(second.buffer).toBe(buffers[1]?.buffer);
    expect([buffers[0]?.buffer, buffers[1]?.buffer, buffers[2]?.buffer]).not.toContain(third.buffer);
  });
});
