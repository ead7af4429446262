import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadArchiveIndex } from '../../../src/archive/archive-index.js';
import { indexKey } from '../../../src/archive/archive-keys.js';
import { openObjectStore } from '../../../src/storage/open-object-store.js';

/** The archive index (src/archive/archive-index.ts); its range checkpoints are tested with manifest-upload.test.ts. */
const ID = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';
const work = mkdtempSync(path.join(tmpdir(), 'litebase-archive-index-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('archive index', () => {
  it('reads an index written before range checkpoints', async () => {
    const store = openObjectStore(pathToFileURL(path.join(work, 'old')).href);
    const old = {
      format: 1,
      database: 'app',
      databaseId: ID,
      updatedAt: '2026-11-25T10:00:00.000Z',
      bundles: [],
      checkpoints: [
        {
          key: `databases/app/${ID}/checkpoints/00000000000000000120.ckpt`,
          position: '120',
          time: '2026-11-25T09:59:58.120Z',
          timeMs: 1795600798120,
          bytes: 81920,
          checksum: '83dd93cdeb2c22e3',
          pageSize: 4096,
          databaseSizePages: 20,
        },
      ],
    };
    await store.put(indexKey('app', ID), Buffer.from(JSON.stringify(old)));
    await store.put(`databases/app/${ID}/checkpoints/00000000000000000120.ckpt`, Buffer.alloc(81920));
    const loaded = await loadArchiveIndex(store, 'app', ID, {});
    expect(loaded.repaired).toBe(false);
    expect(loaded.index.ranges).toEqual([]);
    expect(loaded.index.checkpoints).toEqual([
      {
        key: `databases/app/${ID}/checkpoints/00000000000000000120.ckpt`,
        position: 120n,
        timeMs: 1795600798120,
        bytes: 81920,
        checksum: '83dd93cdeb2c22e3',
        pageSize: 4096,
        databaseSizePages: 20,
      },
    ]);
    await store.close();
  });
});
