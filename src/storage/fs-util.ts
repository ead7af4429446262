import { randomBytes } from 'node:crypto';
import { promises as fs, openSync, fsyncSync, closeSync, writeFileSync, renameSync, writevSync } from 'node:fs';
import path from 'node:path';
import { systemErrorCode } from '../errors.js';

/** fsync a folder so that a create, link or rename inside it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export function tempName(target: string): string {
  return path.join(path.dirname(target), `.tmp-${path.basename(target)}-${randomBytes(6).toString('hex')}`);
}

/** Write a whole file so that readers see the old or the new content, never a torn one. */
export async function writeFileAtomic(target: string, content: string | Uint8Array, mode = 0o644): Promise<void> {
  const temp = tempName(target);
  const handle = await fs.open(temp, 'w', mode);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.rename(temp, target);
  } catch (error) {
    await fs.rm(temp, { force: true });
    throw error;
  }
  await fsyncDir(path.dirname(target));
}

/** The synchronous twin, for start-up and shutdown paths that must not interleave. */
export function writeFileAtomicSync(target: string, content: string | Uint8Array, mode = 0o644): void {
  const temp = tempName(target);
  writeFileSync(temp, content, { mode });
  const fd = openSync(temp, 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, target);
  const dirFd = openSync(path.dirname(target), 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

/** The names in a folder; none when the folder does not exist (yet). */
export async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await fs.readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

/** Positions named by the files of a folder (`pattern`'s first group), ascending. */
export async function positionsInFolder(dir: string, pattern: RegExp): Promise<bigint[]> {
  const positions: bigint[] = [];
  for (const name of await readdirOrEmpty(dir)) {
    const match = pattern.exec(name);
    if (match?.[1]) positions.push(BigInt(match[1]));
  }
  return positions.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Whether `file` exists (any other error than a missing file is thrown). */
export async function pathExists(file: string): Promise<boolean> {
  try {
    await fs.stat(file);
    return true;
  } catch (error) {
    if (systemErrorCode(error) === 'ENOENT') return false;
    throw error;
  }
}

/**
 * Write `buffers` one after another at `offset` of `fd`, synchronously (a worker thread's page
 * writes): writev may write less than asked, so it goes on from where the last call stopped.
 */
export function writevFullySync(fd: number, buffers: readonly Uint8Array[], offset: number): void {
  let pending = buffers;
  let at = offset;
  while (pending.length > 0) {
    let written = writevSync(fd, pending as Uint8Array[], at);
    at += written;
    const rest: Uint8Array[] = [];
    for (const buffer of pending) {
      if (written >= buffer.length) written -= buffer.length;
      else {
        rest.push(buffer.subarray(written));
        written = 0;
      }
    }
    pending = rest;
  }
}
