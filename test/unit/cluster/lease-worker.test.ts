import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseHeartbeat, parseLease } from '../../../src/cluster/lease-store.js';
import { SHARED_STATE_BYTES, sendToKeeper, sharedState, startKeeper, type KeeperEvent } from '../../../src/cluster/lease-worker.js';

/** The lease keeper (src/cluster/lease-keeper-thread.ts), run as the node runs it: a worker thread on a real folder. */
describe('the lease keeper thread', () => {
  it('wins the first term of an empty cluster folder, opens the write fence, and releases the lease when stopped', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'litebase-keeper-'));
    const shared = new SharedArrayBuffer(SHARED_STATE_BYTES);
    const worker = startKeeper({
      dataDir,
      nodeId: 'n1',
      address: 'http://n1',
      leaseTtlMs: 3000,
      clockSkewMs: 100,
      heartbeatMs: 200,
      pollMs: 100,
      shared,
    });
    const events: KeeperEvent[] = [];
    const seen = (test: (event: KeeperEvent) => boolean): Promise<KeeperEvent> =>
      new Promise((resolve, reject) => {
        const found = events.find(test);
        if (found) return resolve(found);
        const listener = (event: KeeperEvent): void => {
          if (!test(event)) return;
          worker.off('message', listener);
          resolve(event);
        };
        worker.on('message', listener);
        worker.once('error', reject);
      });
    worker.on('message', (event: KeeperEvent) => events.push(event));
    try {
      const primary = await seen((event) => event.type === 'state' && event.role === 'primary');
      expect(primary).toMatchObject({ type: 'state', role: 'primary', term: 1n, primary: { nodeId: 'n1', address: 'http://n1' } });
      expect(sharedState(shared).canWrite()).toBe(true);
      expect(JSON.parse(readFileSync(path.join(dataDir, 'cluster', 'terms', '1'), 'utf8'))).toMatchObject({ nodeId: 'n1' });
      expect(parseLease(readFileSync(path.join(dataDir, 'cluster', 'lease.json'), 'utf8'))).toMatchObject({ term: 1n, nodeId: 'n1' });

      sendToKeeper(worker, { type: 'stop', release: true });
      await seen((event) => event.type === 'stopped');
      expect(sharedState(shared).canWrite()).toBe(false);
      expect(parseLease(readFileSync(path.join(dataDir, 'cluster', 'lease.json'), 'utf8'))).toMatchObject({ term: 1n, expiresAt: 0 });
      expect(parseHeartbeat(readFileSync(path.join(dataDir, 'cluster', 'nodes', 'n1.json'), 'utf8'))).toMatchObject({
        nodeId: 'n1',
        role: 'replica',
      });
    } finally {
      await worker.terminate();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
