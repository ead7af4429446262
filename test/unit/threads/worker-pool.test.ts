import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { affinitySlot, startModuleWorker, WorkerPool } from '../../../src/threads/worker-pool.js';
import type { TestReply, TestRequest } from '../../support/pool-test-thread.js';

/** src/threads/worker-pool.ts: the one way threads are started, with real threads running real modules. */

function firstError(worker: ReturnType<typeof startModuleWorker>): Promise<Error> {
  return new Promise((resolve) => worker.once('error', resolve));
}

describe('WorkerPool', () => {
  it('sends the requests of one affinity key to one thread, in the order they were sent', async () => {
    const pool = new WorkerPool<TestRequest, TestReply>(import.meta.url, '../../support/pool-test-thread.js', 4);
    const keys = ['db-a', 'db-b', 'db-c', 'db-d', 'db-e'];
    const sent = keys.flatMap((key) =>
      Array.from({ length: 20 }, () => ({ key, reply: pool.request({ kind: 'who' }, { affinity: key }) })),
    );
    const replies = await Promise.all(sent.map(async ({ key, reply }) => ({ key, ...(await reply) })));
    for (const key of keys) {
      const own = replies.filter((reply) => reply.key === key);
      // One thread for the key...
      expect(new Set(own.map((reply) => reply.threadId)).size).toBe(1);
      // ...which answered its requests in the order they were sent.
      const order = own.map((reply) => reply.answered);
      expect(order).toEqual([...order].sort((a, b) => a - b));
    }
    // Keys that hash to different slots land on different threads.
    const slotOf = new Map(keys.map((key) => [key, affinitySlot(key, 4)]));
    const threadOf = new Map(replies.map((reply) => [reply.key, reply.threadId]));
    for (const a of keys) for (const b of keys) expect(slotOf.get(a) === slotOf.get(b)).toBe(threadOf.get(a) === threadOf.get(b));
  });

  it('takes turns without a key', async () => {
    const pool = new WorkerPool<TestRequest, TestReply>(import.meta.url, '../../support/pool-test-thread.js', 2);
    const replies = await Promise.all([1, 2, 3, 4].map(() => pool.request({ kind: 'who' })));
    expect(new Set(replies.map((reply) => reply.threadId)).size).toBe(2);
  });

  it("fails a request whose thread threw, with a stack trace that names the thread's file, and starts the thread afresh", async () => {
    const pool = new WorkerPool<TestRequest, TestReply>(import.meta.url, '../../support/pool-test-thread.js', 1);
    const before = await pool.request({ kind: 'who' });
    const error = await pool.request({ kind: 'throw', message: 'thrown on purpose' }).then(
      () => undefined,
      (caught: unknown) => caught as Error,
    );
    expect(error?.message).toBe('thrown on purpose');
    expect(error?.stack).toContain('pool-test-thread.ts');
    const after = await pool.request({ kind: 'who' });
    expect(after.threadId).not.toBe(before.threadId);
    expect(after.answered).toBe(0);
  });
});

describe('WorkerPool with idleStopMs', () => {
  it('stops a thread once it has had no request for that long, and starts a new one for the next request', async () => {
    const pool = new WorkerPool<TestRequest, TestReply>(import.meta.url, '../../support/pool-test-thread.js', 1, 'idle-test', 1000);
    const first = await pool.request({ kind: 'who' });
    // Requests closer together than the idle time keep the same thread.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const second = await pool.request({ kind: 'who' });
    expect(second.threadId).toBe(first.threadId);
    expect(second.answered).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const third = await pool.request({ kind: 'who' });
    expect(third.threadId).not.toBe(first.threadId);
    expect(third.answered).toBe(0);
  });

  it('never stops a thread that still has a request to answer', async () => {
    const pool = new WorkerPool<TestRequest, TestReply>(import.meta.url, '../../support/pool-test-thread.js', 1, 'idle-busy', 1);
    // Many requests in flight at once: each settles while others are pending on the same thread.
    const replies = await Promise.all(Array.from({ length: 50 }, () => pool.request({ kind: 'who' })));
    expect(new Set(replies.map((reply) => reply.threadId)).size).toBe(1);
    expect(replies.map((reply) => reply.answered)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });
});

describe('startModuleWorker', () => {
  it("runs a project thread from the TypeScript sources, and an error there names the thread's .ts file", async () => {
    // The watchdog thread without its workerData fails at once, where it reads it.
    const worker = startModuleWorker(new URL('../../../src/server/event-loop-watchdog.ts', import.meta.url).href, './watchdog-thread.js', {
      name: 'no-data',
    });
    const error = await firstError(worker);
    expect(error.stack).toContain(fileURLToPath(new URL('../../../src/server/watchdog-thread.ts', import.meta.url)));
  });

  it('runs the compiled thread beside a compiled caller (npm test builds first), named by its .js file', async () => {
    const worker = startModuleWorker(
      new URL('../../../dist/src/server/event-loop-watchdog.js', import.meta.url).href,
      './watchdog-thread.js',
    );
    const error = await firstError(worker);
    expect(error.stack).toContain(fileURLToPath(new URL('../../../dist/src/server/watchdog-thread.js', import.meta.url)));
  });

  it('passes workerData and a name to the thread', async () => {
    const buffer = new SharedArrayBuffer(8);
    const worker = startModuleWorker(
      new URL('../../../src/engine/read-sandbox-child.ts', import.meta.url).href,
      './orphan-guard-thread.js',
      {
        workerData: { buffer, parent: process.ppid },
        name: 'orphan-guard-test',
      },
    );
    // Running, with its data (it would have failed at once without): the guard only watches.
    const outcome = await Promise.race([
      firstError(worker),
      new Promise<'running'>((resolve) => setTimeout(() => resolve('running'), 1500)),
    ]);
    expect(outcome).toBe('running');
    expect(worker.threadId).toBeGreaterThan(0);
    await worker.terminate();
  });
});
