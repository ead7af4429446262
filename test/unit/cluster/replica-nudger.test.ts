import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ReplicaNudger } from '../../../src/cluster/replica-nudger.js';

/** A send whose answers the test releases by hand. */
function manualSend() {
  const calls: Array<{ address: string; databases: string[]; settle: (ok: boolean, watching?: boolean) => void }> = [];
  const send = (address: string, databases: string[]) =>
    new Promise<{ watching: boolean }>((resolve, reject) => {
      calls.push({ address, databases, settle: (ok, watching = false) => (ok ? resolve({ watching }) : reject(new Error('refused'))) });
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
    nudger.nudge('one');
    expect(calls.map((call) => [call.address, call.databases])).toEqual([
      ['http://a', ['one']],
      ['http://b', ['one']],
    ]);
    for (const name of ['two', 'three', 'two']) nudger.nudge(name);
    expect(calls).toHaveLength(2);
    calls[0]!.settle(true);
    await flush();
    expect(calls.slice(2).map((call) => [call.address, call.databases])).toEqual([['http://a', ['two', 'three']]]);
  });

  it('leaves a peer that refused alone for the back-off, and forgets peers no longer listed', async () => {
    const { calls, send } = manualSend();
    const nudger = new ReplicaNudger({ send, logger: pino({ level: 'silent' }), backoffMs: 60_000 });
    nudger.setPeers([
      { nodeId: 'a', address: 'http://a' },
      { nodeId: 'b', address: 'http://b' },
    ]);
    nudger.nudge('one');
    calls[0]!.settle(false);
    calls[1]!.settle(true);
    await flush();
    nudger.nudge('two');
    expect(calls.slice(2).map((call) => call.address)).toEqual(['http://b']);
    calls[2]!.settle(true);
    await flush();
    nudger.setPeers([{ nodeId: 'c', address: 'http://c' }]);
    nudger.nudge('three');
    expect(calls.slice(3).map((call) => call.address)).toEqual(['http://c']);
  });

  it('leaves a peer alone for a while once it keeps answering that its watchers see the logs change', async () => {
    const { calls, send } = manualSend();
    const nudger = new ReplicaNudger({ send, logger: pino({ level: 'silent' }), redundantLimit: 3, redundantPauseMs: 60_000 });
    nudger.setPeers([
      { nodeId: 'watching', address: 'http://watching' },
      { nodeId: 'nfs', address: 'http://nfs' },
    ]);
    for (let position = 1n; position <= 3n; position++) {
      nudger.nudge('app');
      const sent = calls.slice(-2);
      expect(sent.map((call) => call.address)).toEqual(['http://watching', 'http://nfs']);
      sent[0]!.settle(true, true); // its watcher sees the Primary's writes (a local file system)
      sent[1]!.settle(true, false); // it cannot see them itself (NFS): nudges are its news
      await flush();
    }
    nudger.nudge('app');
    expect(calls.slice(6).map((call) => call.address)).toEqual(['http://nfs']);
  });

  it('starts afresh with a peer that restarted (it may no longer watch)', async () => {
    const { calls, send } = manualSend();
    const nudger = new ReplicaNudger({ send, logger: pino({ level: 'silent' }), redundantLimit: 2, redundantPauseMs: 60_000 });
    nudger.setPeers([{ nodeId: 'a', address: 'http://a', startedAt: 1 }]);
    for (let round = 0; round < 2; round++) {
      nudger.nudge('app');
      calls.at(-1)!.settle(true, true);
      await flush();
    }
    nudger.nudge('app');
    expect(calls).toHaveLength(2);
    nudger.setPeers([{ nodeId: 'a', address: 'http://a', startedAt: 1 }]);
    nudger.nudge('app');
    expect(calls).toHaveLength(2);
    nudger.setPeers([{ nodeId: 'a', address: 'http://a', startedAt: 2 }]);
    nudger.nudge('app');
    expect(calls).toHaveLength(3);
  });
});
