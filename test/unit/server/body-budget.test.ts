import { describe, expect, it } from 'vitest';
import { BodyBudget } from '../../../src/server/body-budget.js';

/** The budget of large request bodies in memory at once (src/server/body-budget.ts). */

const settled = async (promise: Promise<void>): Promise<boolean> => {
  let done = false;
  void promise.then(() => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
};

describe('BodyBudget', () => {
  it('admits bodies in order while they fit, and the next ones as shares come back', async () => {
    const budget = new BodyBudget(16);
    const a = budget.request(10);
    const b = budget.request(10);
    const c = budget.request(4);
    expect(await settled(a.admitted)).toBe(true);
    // b does not fit beside a; c waits behind b (in order), though it would fit.
    expect(await settled(b.admitted)).toBe(false);
    expect(await settled(c.admitted)).toBe(false);
    expect(budget.inUse).toBe(10);
    expect(budget.waiting).toBe(2);
    a.release();
    a.release(); // idempotent
    expect(await settled(b.admitted)).toBe(true);
    expect(await settled(c.admitted)).toBe(true);
    expect(budget.inUse).toBe(14);
    b.release();
    c.release();
    expect(budget.inUse).toBe(0);
  });

  it('admits a body larger than the budget alone, and forgets a request that leaves while it waits', async () => {
    const budget = new BodyBudget(16);
    const small = budget.request(8);
    const huge = budget.request(100);
    const after = budget.request(8);
    expect(await settled(huge.admitted)).toBe(false);
    huge.release(); // its connection closed while it waited
    expect(budget.waiting).toBe(0);
    expect(await settled(after.admitted)).toBe(true);
    small.release();
    after.release();
    const alone = budget.request(100);
    expect(await settled(alone.admitted)).toBe(true);
    expect(budget.inUse).toBe(100);
    const next = budget.request(1);
    expect(await settled(next.admitted)).toBe(false);
    alone.release();
    expect(await settled(next.admitted)).toBe(true);
  });

  it('admits everything at once with a budget of 0', async () => {
    const budget = new BodyBudget(0);
    const tickets = [budget.request(1 << 30), budget.request(1 << 30)];
    for (const ticket of tickets) expect(await settled(ticket.admitted)).toBe(true);
  });
});
