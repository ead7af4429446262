import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ReplicaNudger, type Growth } from '../../src/cluster/replica-nudger.js';

/** A send whose answers the test releases by hand. */
function manualSend() {
  const calls: Array<{ address: string; databases: string[]; positions: bigint[]; settle: (ok: boolean, alreadyApplied?: boolean) => void }> = [];
  const send = (address: string, growth: Growth[]) =>
    new Promise<{ alreadyApplied: boolean }>((resolve, reject) => {
      calls.push({
        address,
        databases: growth.map((item) => item.database),
        positions: growth.map((item) => item.position),
        settle: (ok, alreadyApplied = false) => (ok ? resolve({ alreadyApplied }) : reject(new Error('refused'))),
      });
    });
  return { calls, send };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe('ReplicaNudger', () => {
  it('keeps one nudge per peer on its way and merges what comes meanwhile into the next', async () => {
    const { calls, send } = manualSend();
    const nudger = new ReplicaNudger({ send, logger: pino({ level: 'silent' }) });
    nudger.setPeers([
      { nodeId: 'a', address: 'http://a' },
      { nodeId: 'b', address: 'http://b' },
    ]);
    nudger.nudge('one', 1n);
    expect(calls.map((call) => [call.address, call.databases])).toEqual([
      ['http://a', ['one']],
      ['http://b', ['one']],
    ]);
    for (const [name, position] of [['two', 5n], ['three', 6n], ['two', 7n]] as const) nudger.nudge(name, position);
    expect(calls).toHaveLength(2);
    calls[0]!.settle(true);
    await flush();
    expect(calls.slice(2).map((call) => [call.address, call.databases, call.positions])).toEqual([['http://a', ['two', 'three'], [7n, 6n]]]);
  });

  it('leaves a peer that refused alone for the back-off, and forgets peers no longer listed', async () => {
    const { calls, send } = manualSend();
    const nudger = new ReplicaNudger({ send, logger: pino({ level: 'silent' }), backoffMs: 60_000 });
    nudger.setPeers([
      { nodeId: 'a', address: 'http://a' },
      { nodeId: 'b', address: 'http://b' },
    ]);
    nudger.nudge('one', 1n);
    calls[0]!.settle(false);
    calls[1]!.settle(true);
    await flush();
    nudger.nudge('two', 1n);
    expect(calls.slice(2).map((call) => call.address)).toEqual(['http://b']);
    calls[2]!.settle(true);
    await flush();
    nudger.setPeers([{ nodeId: 'c', address: 'http://c' }]);
    nudger.nudge('three', 1n);
    expect(calls.slice(3).map((call) => call.address)).toEqual(['http://c']);
  });

  it('leaves a peer alone for a while once it keeps answering that it had the positions already', async () => {
    const { calls, send } = manualSend();
    const nudger = new ReplicaNudger({ send, logger: pino({ level: 'silent' }), redundantLimit: 3, redundantPauseMs: 60_000 });
    nudger.setPeers([
      { nodeId: 'watching', address: 'http://watching' },
      { nodeId: 'nfs', address: 'http://nfs' },
    ]);
    for (let position = 1n; position <= 3n; position++) {
      nudger.nudge('app', position);
      const sent = calls.slice(-2);
      expect(sent.map((call) => call.address)).toEqual(['http://watching', 'http://nfs']);
      sent[0]!.settle(true, true); // applied already: its watcher was first
      sent[1]!.settle(true, false); // the nudge was news: it cannot see the change itself
      await flush();
    }
    nudger.nudge('app', 4n);
    expect(calls.slice(6).map((call) => call.address)).toEqual(['http://nfs']);
  });
});
