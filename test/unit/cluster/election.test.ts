import { describe, expect, it } from 'vitest';
import {
  backoffMs,
  canWriteWindowMs,
  decide,
  defaultPollMs,
  initialMemory,
  previousLifeGone,
  renewalAccepted,
  renewIntervalMs,
  type DecisionInput,
  type ElectionMemory,
  type HeldLease,
  type LeaseHolder,
  type LeaseRecord,
  type TermClaim,
} from '../../../src/cluster/election.js';

/** The election's decisions (src/cluster/election.ts), without a disk or a clock. */

const TTL = 1000;
const SKEW = 200;
const NOW = 1_800_000_000_000;
const settings = { leaseTtlMs: TTL, clockSkewMs: SKEW, pollMs: 300 };

function lease(term: bigint, nodeId: string, expiresAt: number): LeaseRecord {
  return { term, nodeId, address: `http://${nodeId}`, expiresAt, renewedAt: expiresAt - TTL };
}

function claim(term: bigint, nodeId: string | undefined, createdAt: number | undefined): TermClaim {
  return { term, nodeId, address: nodeId === undefined ? undefined : `http://${nodeId}`, createdAt };
}

function input(overrides: Partial<DecisionInput>): DecisionInput {
  return {
    nodeId: 'me',
    settings,
    now: NOW,
    localNow: 5_000,
    lease: undefined,
    highest: undefined,
    held: undefined,
    memory: initialMemory(),
    ...overrides,
  };
}

describe('a node that is not the Primary', () => {
  it('stands for term 1 at once when there is no lease and no term at all', () => {
    const result = decide(input({}));
    expect(result.decision).toEqual({ action: 'stand', term: 1n });
    expect(result.primary).toBeUndefined();
  });

  it('follows a live Primary and looks again when its lease expired by the skew allowance', () => {
    const result = decide(input({ lease: lease(4n, 'a', NOW + 600), highest: claim(4n, 'a', NOW - 5000) }));
    expect(result.decision).toEqual({ action: 'follow', role: 'replica', checkAt: NOW + 600 + SKEW });
    expect(result.primary).toEqual({ term: 4n, nodeId: 'a', address: 'http://a', expiresAt: NOW + 600 });
    expect(result.memory.highestSeen).toBe(4n);
  });

  it('does not stand while the lease is expired by less than the skew allowance', () => {
    const expired = lease(4n, 'a', NOW - SKEW + 1);
    const result = decide(input({ lease: expired, highest: claim(4n, 'a', NOW - 5000) }));
    expect(result.decision).toEqual({ action: 'follow', role: 'candidate', checkAt: NOW + 1 });
    const later = decide(input({ now: NOW + 1, lease: expired, highest: claim(4n, 'a', NOW - 5000) }));
    expect(later.decision).toEqual({ action: 'stand', term: 5n });
  });

  it('stands above the highest term in cluster/terms, not above lease.json alone', () => {
    const result = decide(input({ lease: lease(2n, 'a', NOW - 10_000), highest: claim(7n, 'b', NOW - 60_000) }));
    // Term 7 has no lease: it is given a full TTL from when this node first saw it.
    expect(result.decision).toEqual({ action: 'follow', role: 'replica', checkAt: NOW + TTL + SKEW });
    expect(result.memory.unleased).toEqual({ term: 7n, since: NOW });
    const later = decide(
      input({ now: NOW + TTL + SKEW, lease: lease(2n, 'a', NOW - 10_000), highest: claim(7n, 'b', NOW - 60_000), memory: result.memory }),
    );
    expect(later.decision).toEqual({ action: 'stand', term: 8n });
  });

  it('never stands at or below a term it has seen before, even if a listing shows less', () => {
    const memory: ElectionMemory = { ...initialMemory(), highestSeen: 9n };
    const result = decide(input({ lease: lease(3n, 'a', NOW - 10_000), highest: claim(3n, 'a', NOW - 20_000), memory }));
    expect(result.memory.highestSeen).toBe(9n);
    const later = decide(
      input({ now: NOW + TTL + SKEW, lease: lease(3n, 'a', NOW - 10_000), highest: claim(3n, 'a', NOW - 20_000), memory: result.memory }),
    );
    expect(later.decision).toEqual({ action: 'stand', term: 10n });
  });

  it('gives a term just won (its lease not yet written) a full TTL from its creation', () => {
    const result = decide(input({ lease: lease(3n, 'a', NOW - 5000), highest: claim(4n, 'b', NOW + 50) }));
    expect(result.decision).toEqual({ action: 'follow', role: 'replica', checkAt: NOW + 50 + TTL + SKEW });
    expect(result.primary).toEqual({ term: 4n, nodeId: 'b', address: 'http://b', expiresAt: NOW + 50 + TTL });
  });

  it('treats a term file without content (writer died) as a claim of unknown holder', () => {
    const first = decide(input({ highest: claim(1n, undefined, undefined) }));
    expect(first.decision).toEqual({ action: 'follow', role: 'candidate', checkAt: NOW + TTL + SKEW });
    const later = decide(input({ now: NOW + TTL + SKEW, highest: claim(1n, undefined, undefined), memory: first.memory }));
    expect(later.decision).toEqual({ action: 'stand', term: 2n });
  });

  it('restarts the unleased wait when a higher term appears', () => {
    const first = decide(input({ highest: claim(4n, 'b', NOW - 60_000) }));
    const second = decide(input({ now: NOW + 900, highest: claim(5n, 'c', NOW - 60_000), memory: first.memory }));
    expect(second.memory.unleased).toEqual({ term: 5n, since: NOW + 900 });
    expect(second.decision).toEqual({ action: 'follow', role: 'replica', checkAt: NOW + 900 + TTL + SKEW });
  });

  it('stands at once after the Primary released its lease (expiresAt 0)', () => {
    const result = decide(input({ lease: lease(6n, 'a', 0), highest: claim(6n, 'a', NOW - 5000) }));
    expect(result.decision).toEqual({ action: 'stand', term: 7n });
  });

  it('waits out its own unexpired lease from a previous life as a candidate', () => {
    const result = decide(input({ lease: lease(2n, 'me', NOW + 400), highest: claim(2n, 'me', NOW - 600) }));
    expect(result.decision).toEqual({ action: 'follow', role: 'candidate', checkAt: NOW + 400 + SKEW });
  });

  it('does not stand during its hold-off after a step-down', () => {
    const memory: ElectionMemory = { ...initialMemory(), holdOffUntil: NOW + 700 };
    const result = decide(input({ lease: lease(2n, 'me', NOW - 5000), highest: claim(2n, 'me', NOW - 9000), memory }));
    expect(result.decision).toEqual({ action: 'follow', role: 'candidate', checkAt: NOW + 700 });
    const empty = decide(input({ memory }));
    expect(empty.decision).toEqual({ action: 'follow', role: 'candidate', checkAt: NOW + 700 });
  });
});

describe('the Primary', () => {
  const held: HeldLease = { term: 5n, leaseEndLocal: 5_600 };
  const mine = lease(5n, 'me', NOW + 600);

  it('renews while lease.json and cluster/terms show its term', () => {
    const result = decide(input({ held, lease: mine, highest: claim(5n, 'me', NOW - 9000) }));
    expect(result.decision).toEqual({ action: 'renew', term: 5n, repair: false });
  });

  it('steps down when a higher term exists in cluster/terms', () => {
    const result = decide(input({ held, lease: mine, highest: claim(6n, 'b', NOW - 10) }));
    expect(result.decision).toEqual({ action: 'step-down', reason: 'term 6 was won by b' });
    expect(result.memory.highestSeen).toBe(6n);
  });

  it('steps down when lease.json shows a higher term', () => {
    const result = decide(input({ held, lease: lease(6n, 'b', NOW + 900), highest: claim(5n, 'me', NOW - 9000) }));
    expect(result.decision.action).toBe('step-down');
  });

  it('steps down when lease.json shows its term held by another node', () => {
    const result = decide(input({ held, lease: lease(5n, 'b', NOW + 900), highest: claim(5n, 'me', NOW - 9000) }));
    expect(result.decision).toEqual({ action: 'step-down', reason: 'lease.json shows term 5 held by b' });
  });

  it('steps down when its own lease ran out before it could renew it (stopped process, slow disk)', () => {
    const result = decide(input({ held, localNow: 5_600, lease: mine, highest: claim(5n, 'me', NOW - 9000) }));
    expect(result.decision).toEqual({ action: 'step-down', reason: 'the lease of term 5 ran out before it was renewed' });
  });

  it("rewrites a lease.json of a lower term (a deposed Primary's late write) instead of stepping down", () => {
    const stale = decide(input({ held, lease: lease(4n, 'old', NOW + 5000), highest: claim(5n, 'me', NOW - 9000) }));
    expect(stale.decision).toEqual({ action: 'renew', term: 5n, repair: true });
    const missing = decide(input({ held, highest: claim(5n, 'me', NOW - 9000) }));
    expect(missing.decision).toEqual({ action: 'renew', term: 5n, repair: true });
  });
});

describe('timing rules', () => {
  it('writes only within TTL less a quarter after a renewal started, and renews every third', () => {
    expect(canWriteWindowMs(5000)).toBe(3750);
    expect(canWriteWindowMs(600)).toBe(450);
    expect(renewIntervalMs(5000)).toBe(1666);
    expect(renewIntervalMs(600)).toBe(200);
    // The write window closes before the next-but-one renewal would be due: one renewal may fail.
    expect(canWriteWindowMs(600)).toBeGreaterThan(2 * renewIntervalMs(600));
  });

  it('accepts a renewal only if it landed before the lease it extends ran out', () => {
    expect(renewalAccepted(999, 1000)).toBe(true);
    expect(renewalAccepted(1000, 1000)).toBe(false);
    expect(renewalAccepted(4000, 1000)).toBe(false);
  });

  it('keeps the random back-off small and bounded', () => {
    expect(backoffMs(settings, 0)).toBe(0);
    expect(backoffMs(settings, 0.999)).toBeLessThan(100);
    expect(backoffMs({ ...settings, leaseTtlMs: 60_000 }, 1)).toBe(250);
    expect(backoffMs(settings, 7)).toBe(100);
    expect(defaultPollMs(5000, 1000)).toBe(1000);
    expect(defaultPollMs(600, 1000)).toBe(200);
  });
});

describe('instant restart: a lease left by an exited process of this same node', () => {
  const before: LeaseHolder = { host: 'machine/host', instance: 'folder-1', life: 'life-1', pid: 10, boot: 'boot-1' };
  const self: LeaseHolder = { ...before, life: 'life-2', pid: 11 };
  const ownLease = (holder: LeaseHolder | undefined, nodeId = 'me'): LeaseRecord => ({
    ...lease(7n, nodeId, NOW + 800),
    ...(holder ? { holder } : {}),
  });

  it('stands for the next term at once, before the lease runs out', () => {
    const result = decide(input({ lease: ownLease(before), highest: claim(7n, 'me', NOW - 100), self }));
    expect(result.decision).toEqual({ action: 'stand', term: 8n, takeover: true });
  });

  it('also within the skew allowance after the lease ran out', () => {
    const result = decide(input({ lease: { ...ownLease(before), expiresAt: NOW - 50 }, highest: claim(7n, 'me', NOW - 100), self }));
    expect(result.decision).toEqual({ action: 'stand', term: 8n, takeover: true });
  });

  it('waits the lease out when anything does not prove the holder gone', () => {
    const waits: Array<[string, Partial<DecisionInput>]> = [
      ['no lock held (no self)', { lease: ownLease(before) }],
      ['a lease of an older node, without a holder', { lease: ownLease(undefined), self }],
      ['another node id', { lease: ownLease(before, 'other'), self }],
      ['another host', { lease: ownLease({ ...before, host: 'machine/other' }), self }],
      ['another local folder', { lease: ownLease({ ...before, instance: 'folder-2' }), self }],
      ['this very process (it stepped down itself)', { lease: ownLease(self), self }],
      ['a step-down hold-off of this process', { lease: ownLease(before), self, memory: { ...initialMemory(), holdOffUntil: NOW + 5000 } }],
    ];
    for (const [why, overrides] of waits) {
      const result = decide(input({ highest: claim(7n, 'me', NOW - 100), ...overrides }));
      expect(result.decision.action, why).toBe('follow');
    }
  });

  it('does not take over when a higher term than the lease exists (its winner has not written the lease yet)', () => {
    const result = decide(input({ lease: ownLease(before), highest: claim(8n, 'other', NOW - 10), self }));
    expect(result.decision.action).toBe('follow');
  });

  it('previousLifeGone needs the same node, host and folder, and another life', () => {
    expect(previousLifeGone(ownLease(before), 'me', self)).toBe(true);
    expect(previousLifeGone(ownLease(before), 'me', undefined)).toBe(false);
    expect(previousLifeGone(ownLease(before), 'you', self)).toBe(false);
  });
});
