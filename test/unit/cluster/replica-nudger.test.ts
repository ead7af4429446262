import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ReplicaNudger } from '../../../src/cluster/replica-nudger.js';
import type { NudgeEntry } from '../../../src/format/nudge-codec.js';

/** A send whose answers the test releases by hand. */
function manualSend() {
  const calls: Array<{
    address: string;
    databases: string[];
    entries: NudgeEntry[];
    settle: (ok: boolean, watching?: boolean) => void;
  }> = [];
  const send = (address: string, entries: NudgeEntry[]) =>
    new Promise<{ watching: boolean }>((resolve, reject) => {
      calls.push({
        address,
        databases: entries.map((entry) => entry.database),
        entries,
        settle: (ok, watching = false) => (ok ? resolve({ watching }) : reject(new Error('refused'))),
      });
    });
  return { calls, send };
}

const segment = (fill: number, bytes = 100): Buffer => Buffer.alloc(bytes, fill);

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

  it('carries the segments made durable since the last nudge, in order, one batch per peer', async () => {
    const { calls, send } = manualSend();
    const nudger = new ReplicaNudger({ send, logger: pino({ level: 'silent' }) });
    expect(nudger.wantsSegments()).toBe(false); // no peer: no copies
    nudger.setPeers([{ nodeId: 'a', address: 'http://a' }]);
    expect(nudger.wantsSegments()).toBe(true);
    nudger.nudge('app', [segment(1)]);
    expect(calls[0]!.entries).toEqual([{ database: 'app', segments: [segment(1)] }]);
    nudger.nudge('app', [segment(2)]);
    nudger.nudge('other', [segment(9)]);
    nudger.nudge('app', [segment(3), segment(4)]);
    calls[0]!.settle(true);
    await flush();
    expect(calls[1]!.entries).toEqual([
      { database: 'app', segments: [segment(2), segment(3), segment(4)] },
      { database: 'other', segments: [segment(9)] },
    ]);
  });

  it('sends no segment of a batch once one is missing or they pass the byte limit: the peer reads the log', async () => {
    const { calls, send } = manualSend();
    const nudger = new ReplicaNudger({ send, logger: pino({ level: 'silent' }), maxSegmentBytes: 250 });
    nudger.setPeers([{ nodeId: 'a', address: 'http://a' }]);
    nudger.nudge('app', [segment(1)]);
    nudger.nudge('app', [segment(2)]);
    nudger.nudge('app', undefined); // a large segment, or one not copied
    nudger.nudge('app', [segment(3)]);
    calls[0]!.settle(true);
    await flush();
    expect(calls[1]!.entries).toEqual([{ database: 'app', segments: [] }]);
    nudger.nudge('app', [segment(4), segment(5)]);
    nudger.nudge('app', [segment(6), segment(7)]); // 400 bytes in all: past the limit
    calls[1]!.settle(true);
    await flush();
    expect(calls[2]!.entries).toEqual([{ database: 'app', segments: [] }]);
  });

  it('carries no segment when told not to', () => {
    const { calls, send } = manualSend();
    const nudger = new ReplicaNudger({ send, logger: pino({ level: 'silent' }), carrySegments: false });
    nudger.setPeers([{ nodeId: 'a', address: 'http://a' }]);
    expect(nudger.wantsSegments()).toBe(false);
    nudger.nudge('app', [segment(1)]);
    expect(calls[0]!.entries).toEqual([{ database: 'app', segments: [] }]);
  });
});
