import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SHARED_STATE_BYTES, sharedState } from '../../../src/cluster/lease-worker.js';
import { decodeSegment, type PageImage } from '../../../src/format/segment-codec.js';
import { LogDirectory } from '../../../src/log/log-directory.js';
import { LogHead } from '../../../src/log/log-head.js';
import { waitFor } from '../../support/wait.js';

/**
 * Segment appends on the append threads (src/log/append-thread.ts, started by
 * src/log/append-worker.ts), through LogDirectory.append as the write path calls them, on real files.
 */

const folders: string[] = [];
// A stream's spare temp file is made right after an answer, so a folder may still gain one while it
// is removed (ENOTEMPTY, seen once in CI): the removal retries.
afterEach(() => {
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true, maxRetries: 3 });
});

function logFolder(): LogDirectory {
  const dir = mkdtempSync(path.join(tmpdir(), 'litebase-append-'));
  folders.push(dir);
  return new LogDirectory(dir);
}

function segmentBytes(position: number): Uint8Array {
  return new TextEncoder().encode(`segment ${position} `.repeat(50));
}

/** A fence as a Primary's lease keeper leaves it: open for `windowMs` from now. */
function openFence(windowMs: number): SharedArrayBuffer {
  const buffer = new SharedArrayBuffer(SHARED_STATE_BYTES);
  const state = sharedState(buffer);
  state.setRole('primary');
  state.setValidUntilNs(process.hrtime.bigint() + BigInt(windowMs) * 1_000_000n);
  return buffer;
}

async function failure(promise: Promise<unknown>): Promise<{ code?: string } & Error> {
  return promise.then(
    () => {
      throw new Error('expected the append to fail');
    },
    (error: unknown) => error as { code?: string } & Error,
  );
}

describe('segment appends on the append threads', () => {
  it('makes every segment of a stream durable under its name, announces it in HEAD, and leaves only an empty spare temp file', async () => {
    const log = logFolder();
    const head = LogHead.inFolder(log.dir);
    // Sent all at once, as a writer does with group commit: the thread runs them in order.
    await Promise.all(
      [1, 2, 3, 4, 5, 6, 7, 8].map((position) => log.append(BigInt(position), segmentBytes(position), 'writer-1', openFence(60_000), head)),
    );
    expect(await log.positions()).toEqual([1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n]);
    for (const position of [1, 5, 8])
      expect(new Uint8Array(readFileSync(log.segmentPath(BigInt(position))))).toEqual(segmentBytes(position));
    // The head and the temp names are dealt with right after the answer, not before it.
    await waitFor(() => head.read() === 8n, 5000, 'HEAD to name segment 8');
    await waitFor(() => readdirSync(log.dir).filter((name) => name.startsWith('.tmp')).length === 1, 5000, 'one spare temp file');
    const [spare] = readdirSync(log.dir).filter((name) => name.startsWith('.tmp'));
    expect(spare).toMatch(/^\.tmp-append-[0-9a-f]{12}$/);
    expect(statSync(path.join(log.dir, spare as string)).size).toBe(0);
    // The next append uses the spare (and makes the next one).
    await log.append(9n, segmentBytes(9), 'writer-1', openFence(60_000), head);
    expect(new Uint8Array(readFileSync(log.segmentPath(9n)))).toEqual(segmentBytes(9));
    await waitFor(() => !readdirSync(log.dir).includes(spare as string), 5000, 'the used spare to be unlinked');
  });

  it('makes the append with a fresh temp file when the spare was removed from the folder', async () => {
    const log = logFolder();
    await log.append(1n, segmentBytes(1), 'writer-6');
    // The temp file the first append wrote is a link of segment 1 until it is unlinked after the
    // answer; the spare is the temp file that is not.
    const usedInode = statSync(log.segmentPath(1n)).ino;
    const spares = (): string[] =>
      readdirSync(log.dir).filter((name) => {
        const inode = name.startsWith('.tmp') ? statSync(path.join(log.dir, name), { throwIfNoEntry: false })?.ino : undefined;
        return inode !== undefined && inode !== usedInode;
      });
    await waitFor(() => spares().length > 0, 5000, 'a spare temp file');
    for (const name of spares()) rmSync(path.join(log.dir, name), { force: true });
    await log.append(2n, segmentBytes(2), 'writer-6');
    expect(await log.positions()).toEqual([1n, 2n]);
    expect(new Uint8Array(readFileSync(log.segmentPath(2n)))).toEqual(segmentBytes(2));
  });

  it('links a segment written chunk by chunk in order with the stream, fenced, and refused after a failure', async () => {
    const log = logFolder();
    const head = LogHead.inFolder(log.dir);
    const header = {
      databaseId: '3f2504e0-4f89-41d3-9a0c-0305e82c3301',
      term: 1n,
      commitTimeMs: 1,
      pageSize: 512,
      databaseSizePages: 300,
      transactionCount: 1,
      preChecksum: 0n,
      postChecksum: 0n,
      pageCount: 300,
    };
    const pages = async function* (): AsyncGenerator<PageImage[]> {
      yield Array.from({ length: 300 }, (_, index) => ({ pageNumber: index + 1, data: Buffer.alloc(512, index % 256) }));
    };
    await log.append(1n, segmentBytes(1), 'writer-7', openFence(60_000), head);
    const prepared = await log.writeSegmentFile({ ...header, position: 2n }, pages());
    expect(path.basename(prepared.file)).toMatch(/^\.tmp-append-[0-9a-f]{12}$/);
    // Linked on the stream's thread, before an append called after it.
    const linked = log.linkPrepared(2n, prepared.file, 'writer-7', openFence(60_000), head);
    const third = log.append(3n, segmentBytes(3), 'writer-7', openFence(60_000), head);
    await Promise.all([linked, third]);
    expect(await log.positions()).toEqual([1n, 2n, 3n]);
    const { header: written, pages: decoded } = decodeSegment(readFileSync(log.segmentPath(2n)));
    expect([written.position, written.pageCount, decoded[299]?.data[0]]).toEqual([2n, 300, 299 % 256]);
    expect(statSync(log.segmentPath(2n)).size).toBe(prepared.bytes);
    // A segment file read into the caller's memory (a restore reuses one buffer): the whole file, there.
    const reused = Buffer.alloc(prepared.bytes + 100);
    const into = await log.read(2n, (size) => reused.subarray(0, size));
    expect(into.buffer).toBe(reused.buffer);
    expect(into.equals(readFileSync(log.segmentPath(2n)))).toBe(true);
    await waitFor(() => head.read() === 3n, 5000, 'HEAD to name segment 3');
    await waitFor(() => !readdirSync(log.dir).includes(path.basename(prepared.file)), 5000, 'the temp name to go');

    // A closed fence: nothing under the final name, the temp file removed, the stream stopped.
    const fenced = await log.writeSegmentFile({ ...header, position: 4n }, pages());
    const closed = openFence(60_000);
    sharedState(closed).requestStepDown();
    expect((await failure(log.linkPrepared(4n, fenced.file, 'writer-7', closed))).code).toBe('LEASE_LOST');
    expect(readdirSync(log.dir)).not.toContain(path.basename(fenced.file));
    const refused = await log.writeSegmentFile({ ...header, position: 4n }, pages());
    expect((await failure(log.linkPrepared(4n, refused.file, 'writer-7', openFence(60_000)))).message).toContain('EPIPELINE');
    expect(readdirSync(log.dir)).not.toContain(path.basename(refused.file));
    expect(await log.positions()).toEqual([1n, 2n, 3n]);
  });

  it('sweeps append temp files older than the limit, and nothing else', async () => {
    const log = logFolder();
    const old = path.join(log.dir, '.tmp-append-aaaaaaaaaaaa');
    const fresh = path.join(log.dir, '.tmp-append-bbbbbbbbbbbb');
    const other = path.join(log.dir, '.tmp-00000000000000000001.seg-cccccc');
    for (const file of [old, fresh, other]) writeFileSync(file, 'x');
    const past = new Date(Date.now() - 10 * 60_000);
    utimesSync(old, past, past);
    utimesSync(other, past, past);
    expect(await log.sweepStaleTemps(60_000)).toBe(1);
    expect(readdirSync(log.dir).sort()).toEqual([path.basename(other), path.basename(fresh)].sort());
  });

  it('refuses an append once the write fence is closed (LEASE_LOST), leaving nothing behind', async () => {
    const log = logFolder();
    const fence = openFence(60_000);
    sharedState(fence).requestStepDown();
    const error = await failure(log.append(1n, segmentBytes(1), 'writer-2', fence));
    expect(error.code).toBe('LEASE_LOST');
    expect(readdirSync(log.dir)).toEqual([]);
    // A write window that ran out closes the fence too.
    const expired = await failure(log.append(1n, segmentBytes(1), 'writer-3', openFence(-1)));
    expect(expired.code).toBe('LEASE_LOST');
  });

  it('fails a position another writer took (LOG_POSITION_TAKEN), then the rest of that stream, and nothing else', async () => {
    const log = logFolder();
    writeFileSync(log.segmentPath(1n), 'the other writer');
    const taken = await failure(log.append(1n, segmentBytes(1), 'writer-4'));
    expect(taken.code).toBe('LOG_POSITION_TAKEN');
    expect(readFileSync(log.segmentPath(1n), 'utf8')).toBe('the other writer');
    // Position 2 after a failed 1 would leave a hole: refused.
    const next = await failure(log.append(2n, segmentBytes(2), 'writer-4'));
    expect(next.code).toBe('LOG_UNAVAILABLE');
    expect(next.message).toContain('EPIPELINE');
    // Another writer's stream is not affected.
    await log.append(2n, segmentBytes(2), 'writer-5');
    expect(await log.positions()).toEqual([1n, 2n]);
  });
});
