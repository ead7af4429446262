/**
 * An append thread (started by src/log/append-worker.ts): makes one segment durable per request
 * with synchronous file calls. All appends of one stream come to the same thread, in order (the
 * pool's affinity key).
 *
 * On a distributed file system (CephFS, NFS, EFS) each metadata operation is a round trip to a
 * metadata server, and those, not the bytes, are what a commit waits for. So only what durability
 * and the fence need is done before the answer (docs/FORMAT.md §2, docs/DEPLOY-CEPHFS.md):
 *
 *   write the bytes into a spare temp file created earlier, fsync it, link() it to the segment's
 *   final name (fails if the name exists: the fence), fsync the folder
 *
 * and the rest after the answer has been posted: unlink the temp name, rewrite the log's head file,
 * and create (exclusively) the next spare temp file for the folder. The folder's file descriptor
 * stays open, so fsyncing the folder is one call.
 */
import { randomBytes } from 'node:crypto';
import {
  close as closeCallback,
  closeSync,
  constants,
  fsyncSync,
  linkSync,
  open as openCallback,
  openSync,
  rmSync,
  writeSync,
  write as writeCallback,
} from 'node:fs';
import { rm } from 'node:fs/promises';
import { promisify } from 'node:util';
import path from 'node:path';
import { parentPort } from 'node:worker_threads';
import { writeFenceOpen } from '../cluster/lease-worker.js';
import { appendRecord, releaseTermLog, sealTermLog, type RollLimits } from './term-log-writer.js';
import type { TermLogHeader } from '../format/term-log-codec.js';

export interface AppendRequest {
  id: number;
  /**
   * 'release': no append; close and remove the stream's spare temp file (its writer stopped), so
   * nothing stays open in a folder that is about to be deleted (NFS keeps deleted open files).
   * 'link': no bytes; `prepared` is a complete, fsynced temp file in `dir` (a segment too large to
   * send as bytes, written chunk by chunk by its writer): link it to `target` like any append.
   */
  kind?: 'append' | 'release' | 'link' | 'record' | 'seal';
  /** For 'link': the temp file (`.tmp-append-*` in `dir`) that holds the whole segment, fsynced. */
  prepared?: string;
  /** The log folder, `target` the segment's final name in it. */
  dir: string;
  target: string;
  bytes: Uint8Array;
  /** One writer of one log: the pool's affinity key, and what a failure stops. */
  stream: string;
  /** The writer's lease state (src/cluster/lease-worker.ts): no append once it is closed. */
  fence?: SharedArrayBuffer;
  /** The log's head file (src/log/log-head.ts) and what to write into it after the append. */
  head?: { file: string; content: string };
  /**
   * 'record': `bytes` (or the `prepared` file) is a segment to append as a record of the stream's
   * term log file in `dir` (docs/FORMAT.md §1.2), rolled over past `roll`. 'seal': create the
   * term log file `seal` describes, so that the log of lower terms ends where it starts.
   */
  roll?: RollLimits;
  seal?: TermLogHeader;
}

export interface ReplyError {
  code?: string;
  message: string;
}

export interface AppendReply {
  id: number;
  /** The append failed: nothing is left under the target name. */
  error?: ReplyError;
  /**
   * The head file could not be rewritten after an earlier append of this stream (a wake-up lost,
   * nothing more): reported with the next answer, since the head is written after the answer.
   */
  headError?: ReplyError;
}

/** A temp file created ahead of the append that will use it. */
interface SpareFile {
  name: string;
  fd: number;
}

/** A spare not used for this long is removed: its writer has probably stopped. */
const SPARE_IDLE_MS = 30_000;

// Callback APIs, promisified: they give plain descriptors (a FileHandle would be closed when it is
// garbage collected, under the synchronous calls that use the descriptor later).
const close = promisify(closeCallback);
const open = promisify(openCallback);
const write = promisify(writeCallback);
const dirFds = new Map<string, number>();
/** One spare temp file per stream, in the stream's folder, with the timer that removes it when idle. */
const spares = new Map<string, SpareFile & { dir: string; idle: ReturnType<typeof setTimeout> }>();
/** Head failures not yet reported, by stream. */
const headErrors = new Map<string, ReplyError>();
/**
 * After an append to a folder fails, later appends of the same stream are refused: writing
 * position N+1 when N failed would leave a hole in the log.
 */
const failedStreams = new Set<string>();

function dirFd(dir: string): number {
  let fd = dirFds.get(dir);
  if (fd === undefined) {
    fd = openSync(dir, 'r');
    dirFds.set(dir, fd);
  }
  return fd;
}

function replyError(caught: unknown): ReplyError {
  const code = (caught as { code?: unknown } | undefined)?.code;
  const error: ReplyError = { message: String((caught as { message?: unknown } | undefined)?.message) };
  if (typeof code === 'string') error.code = code;
  return error;
}

function leaseGone(): Error {
  return Object.assign(new Error('the lease is gone'), { code: 'ELEASE' });
}

/** A temp file's name: `.tmp-` like every temp name in the shared folder, never a segment's name. */
function newTemp(dir: string): SpareFile {
  const name = path.join(dir, `.tmp-append-${randomBytes(6).toString('hex')}`);
  return { name, fd: openSync(name, 'wx', 0o644) };
}

function discard(file: SpareFile): void {
  try {
    closeSync(file.fd);
  } catch {
    // already closed
  }
  try {
    rmSync(file.name, { force: true });
  } catch {
    // a leftover temp file is harmless: it never becomes a segment
  }
}

function fsyncFolder(dir: string): void {
  try {
    fsyncSync(dirFd(dir));
  } catch {
    // A stale descriptor (folder replaced) gets one retry with a fresh one.
    const stale = dirFds.get(dir);
    dirFds.delete(dir);
    if (stale !== undefined) {
      try {
        closeSync(stale);
      } catch {
        // already unusable
      }
    }
    fsyncSync(dirFd(dir));
  }
}

/** Write, fsync and link `file` as the segment; returns with the segment durable under its final name. */
function publish(request: AppendRequest, file: SpareFile): void {
  const { dir, target, bytes, fence } = request;
  let offset = 0;
  while (offset < bytes.length) offset += writeSync(file.fd, bytes, offset, bytes.length - offset, offset);
  fsyncSync(file.fd);
  linkDurably(file.name, target, dir, fence);
}

/**
 * The fence, then `link()` of a complete, fsynced file to the segment's final name and an fsync of
 * the folder. Checked at the last moment: the process may have been paused since the message came.
 * On failure nothing is left under the final name (best effort after a link that could not be
 * made durable).
 */
function linkDurably(source: string, target: string, dir: string, fence: SharedArrayBuffer | undefined): void {
  if (fence && !writeFenceOpen(fence)) throw leaseGone();
  linkSync(source, target);
  try {
    fsyncFolder(dir);
  } catch (caught) {
    try {
      rmSync(target, { force: true });
    } catch {
      // the fsync error is the one to report
    }
    throw caught;
  }
}

/** The durable part of an append; returns the temp file it used, for the work after the answer. */
function takeSpare(stream: string, dir: string): SpareFile | undefined {
  const spare = spares.get(stream);
  if (spare === undefined) return undefined;
  spares.delete(stream);
  clearTimeout(spare.idle);
  if (spare.dir === dir) return spare;
  discard(spare);
  return undefined;
}

/** Streams whose next spare is being created (on libuv's thread pool, beside the next append). */
const makingSpare = new Set<string>();

function makeSpare(stream: string, dir: string): void {
  if (spares.has(stream) || makingSpare.has(stream)) return;
  makingSpare.add(stream);
  const name = path.join(dir, `.tmp-append-${randomBytes(6).toString('hex')}`);
  void open(name, 'wx', 0o644).then(
    (fd) => {
      makingSpare.delete(stream);
      const file = { name, fd };
      if (spares.has(stream) || failedStreams.has(stream)) {
        discard(file);
        return;
      }
      const idle = setTimeout(() => {
        const current = spares.get(stream);
        if (current?.name !== file.name) return;
        spares.delete(stream);
        discard(current);
      }, SPARE_IDLE_MS);
      idle.unref();
      spares.set(stream, { ...file, dir, idle });
    },
    () => {
      // No spare: the next append creates its temp file itself, and reports any error then.
      makingSpare.delete(stream);
    },
  );
}

/** After the answer, on libuv's thread pool, so the thread can start on the next append meanwhile. */
function discardLater(file: SpareFile): void {
  void close(file.fd)
    .catch(() => undefined)
    .then(() => rm(file.name, { force: true }))
    .catch(() => undefined);
}

/**
 * Head writes under way, by head file, and the newest content waiting for the one under way: at
 * most one write per head file at a time, the latest content last. On a distributed file system
 * each write is metadata round trips (open, close), slower than an append; one per segment held
 * the appends back by about a third on CephFS (docs/DEPLOY-CEPHFS.md).
 */
const headWrites = new Map<string, { pending: string | undefined }>();

function announceLater(stream: string, head: { file: string; content: string }): void {
  const underWay = headWrites.get(head.file);
  if (underWay) {
    underWay.pending = head.content;
    return;
  }
  const state = { pending: undefined as string | undefined };
  headWrites.set(head.file, state);
  void (async () => {
    let content: string | undefined = head.content;
    while (content !== undefined) {
      const fd = await open(head.file, constants.O_WRONLY | constants.O_CREAT, 0o644);
      try {
        await write(fd, content, 0);
      } finally {
        await close(fd);
      }
      content = state.pending;
      state.pending = undefined;
    }
  })()
    .catch((caught: unknown) => headErrors.set(stream, replyError(caught)))
    .finally(() => headWrites.delete(head.file));
}

function writeDurably(request: AppendRequest): SpareFile {
  const { dir, fence, stream } = request;
  if (fence && !writeFenceOpen(fence)) throw leaseGone();
  const spare = takeSpare(stream, dir);
  if (spare !== undefined) {
    try {
      publish(request, spare);
      return spare;
    } catch (caught) {
      discard(spare);
      // A spare whose name is gone (the folder was emptied or recreated since) is no reason to
      // fail: the append is made again with a temp file created now. Anything else is.
      if ((caught as { code?: unknown }).code !== 'ENOENT') throw caught;
    }
  }
  const file = newTemp(dir);
  try {
    publish(request, file);
  } catch (caught) {
    discard(file);
    throw caught;
  }
  return file;
}

/**
 * Link a prepared segment file (written and fsynced by its writer) under its final name, with the
 * same fence and folder fsync as an append. On failure nothing is left under the final name, and
 * the temp file is removed.
 */
function linkPrepared(request: AppendRequest, prepared: string): void {
  const { dir, target, fence } = request;
  try {
    linkDurably(prepared, target, dir, fence);
  } catch (caught) {
    try {
      rmSync(prepared, { force: true });
    } catch {
      // a leftover temp file is harmless: it never becomes a segment
    }
    throw caught;
  }
}

/** The answer to a request that succeeded, with a head failure an earlier one left to report. */
function succeeded(id: number, stream: string, send: (reply: AppendReply) => void): AppendReply {
  const pendingHeadError = headErrors.get(stream);
  headErrors.delete(stream);
  const reply: AppendReply = pendingHeadError ? { id, headError: pendingHeadError } : { id };
  send(reply);
  return reply;
}

/** The answer to a request that failed: the stream takes no more appends (no hole in the log). */
function failed(id: number, stream: string, caught: unknown, send: (reply: AppendReply) => void): AppendReply {
  failedStreams.add(stream);
  const reply = { id, error: replyError(caught) };
  send(reply);
  return reply;
}

/** Make the segment durable; answer with `send`; then do what the answer need not wait for. */
export function append(request: AppendRequest, send: (reply: AppendReply) => void = () => undefined): AppendReply {
  const { id, stream, dir, head } = request;
  if (request.kind === 'release') {
    const spare = takeSpare(stream, dir);
    if (spare) discard(spare);
    releaseTermLog(stream);
    failedStreams.delete(stream);
    const reply = { id };
    send(reply);
    return reply;
  }
  if (request.kind === 'seal' && request.seal) {
    try {
      sealTermLog(stream, dir, request.seal, request.fence);
    } catch (caught) {
      const reply = { id, error: replyError(caught) };
      send(reply);
      return reply;
    }
    failedStreams.delete(stream);
    const reply = { id };
    send(reply);
    return reply;
  }
  if (failedStreams.has(stream)) {
    if (request.prepared !== undefined) rmSync(request.prepared, { force: true });
    const reply = { id, error: { code: 'EPIPELINE', message: 'an earlier segment of this stream failed' } };
    send(reply);
    return reply;
  }
  if (request.kind === 'record') {
    try {
      appendRecord(stream, dir, request.prepared ?? request.bytes, request.fence, request.roll);
    } catch (caught) {
      releaseTermLog(stream);
      return failed(id, stream, caught, send);
    } finally {
      if (request.prepared !== undefined) void rm(request.prepared, { force: true }).catch(() => undefined);
    }
    const reply = succeeded(id, stream, send);
    if (head) announceLater(stream, head);
    return reply;
  }
  if (request.kind === 'link' && request.prepared !== undefined) {
    const prepared = request.prepared;
    try {
      linkPrepared(request, prepared);
    } catch (caught) {
      return failed(id, stream, caught, send);
    }
    const reply = succeeded(id, stream, send);
    // As after an append: the temp name goes, the head announces the segment.
    void rm(prepared, { force: true }).catch(() => undefined);
    if (head) announceLater(stream, head);
    return reply;
  }
  let used: SpareFile;
  try {
    used = writeDurably(request);
  } catch (caught) {
    return failed(id, stream, caught, send);
  }
  const reply = succeeded(id, stream, send);
  // After the answer, beside the next append. The temp name still links the segment's inode until
  // it is removed; a crash in between leaves it as garbage, never as a segment.
  discardLater(used);
  // Replicas watching the head hear of the segment now, not after the hop back to the main thread.
  if (head) announceLater(stream, head);
  makeSpare(stream, dir);
  return reply;
}

parentPort?.on('message', (request: AppendRequest) => {
  append(request, (reply) => parentPort?.postMessage(reply));
});
