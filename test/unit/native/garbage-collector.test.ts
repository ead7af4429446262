import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { collectGarbage } from '../../../src/native/garbage-collector.js';

/** V8's full collection, run on purpose after heavy work (src/native/garbage-collector.ts). */
describe('collectGarbage', () => {
  it('collects a dropped buffer now, not when V8 would have come by itself', async () => {
    // A WeakRef tells whether this very buffer is gone; the process's memory counters would also
    // count what other test files, running in the same process, allocate meanwhile.
    const dropped = droppedBuffer();
    // A WeakRef's target is kept alive until the end of the turn that made or read it.
    await nextTurn();
    expect(collectGarbage()).toBe(true);
    expect(dropped.deref()).toBeUndefined();
  });

  it('leaves a buffer still in use alone', async () => {
    const kept = Buffer.alloc(1024, 7);
    const ref = new WeakRef(kept);
    await nextTurn();
    expect(collectGarbage()).toBe(true);
    expect(ref.deref()).toBe(kept);
    expect(kept[1023]).toBe(7);
  });
});

function droppedBuffer(): WeakRef<Buffer> {
  return new WeakRef(Buffer.alloc(32 * 1024 * 1024, 1));
}
