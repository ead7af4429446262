import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, closeSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpointIntoFile, writeLegacyCheckpointFromFile } from '../../../src/replay/checkpoints.js';
import { scanPageHashes } from '../../../src/replay/local-copy.js';

/**
 * Invariant 6 (bounded memory) for checkpoints: writing a checkpoint of a database and loading it
 * again stream the file a chunk at a time. A 128 MiB database goes through both while the process's
 * resident memory is sampled; it must stay far below the size of the database.
 */
const MiB = 1024 * 1024;
const PAGE = 4096;
const work = mkdtempSync(path.join(tmpdir(), 'litebase-compact-memory-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('checkpoint memory', () => {
  it('writes and loads a 128 MiB checkpoint without holding it in memory', async () => {
    const database = path.join(work, 'db.sqlite');
    const pages = (128 * MiB) / PAGE;
    const fd = openSync(database, 'w');
    try {
      // Pages that are partly random (so the checksum sees every page) and partly zeros (so LZ4 has work).
      for (let first = 0; first < pages; first += 256) {
        const chunk = Buffer.alloc(256 * PAGE);
        for (let i = 0; i < 256; i++) randomBytes(512).copy(chunk, i * PAGE);
        writeSync(fd, chunk);
      }
    } finally {
      closeSync(fd);
    }
    const hashes = await scanPageHashes(database, PAGE);
    expect(hashes.databaseSizePages).toBe(pages);

    global.gc?.();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 5);
    try {
      const checkpoint = path.join(work, 'db.ckpt');
      const written = await writeLegacyCheckpointFromFile(
        checkpoint,
        database,
        {
          databaseId: '3f2504e0-4f89-41d3-9a0c-0305e82c3301',
          term: 1n,
          position: 77n,
          commitTimeMs: Date.now(),
          pageSize: PAGE,
          databaseSizePages: pages,
          checksum: hashes.checksum,
        },
        hashes,
      );
      expect(written.bytes).toBe(statSync(checkpoint).size);
      const loaded = await loadCheckpointIntoFile(checkpoint, path.join(work, 'loaded.sqlite'), {
        databaseId: '3f2504e0-4f89-41d3-9a0c-0305e82c3301',
      });
      expect(loaded.hashes.checksum).toBe(hashes.checksum);
      expect(loaded.header.position).toBe(77n);
    } finally {
      clearInterval(sampler);
    }
    const growth = (peak - baseline) / MiB;
    expect(growth, `resident memory grew by ${growth.toFixed(0)} MiB for a 128 MiB database`).toBeLessThan(64);
  }, 120_000);
});
