import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LitebaseError } from '../../../src/errors.js';
import { LocalLayout } from '../../../src/storage/layout.js';
import { LocalDirLock } from '../../../src/storage/local-dir-lock.js';
import { REPO_ROOT, tempDir } from '../../support/server.js';

/** The local folder's lock (src/storage/local-dir-lock.ts), on real files and real processes. */

function layout(): LocalLayout {
  const root = path.join(tempDir('litebase-lock-'), 'local');
  mkdirSync(root, { recursive: true });
  return new LocalLayout(root);
}

describe('LocalDirLock', () => {
  it('is exclusive, and keeps the folder’s instance id across owners', () => {
    const local = layout();
    const lock = LocalDirLock.acquire(local);
    expect(lock.instanceId).toMatch(/^[0-9a-f-]{36}$/);
    let error: unknown;
    try {
      LocalDirLock.acquire(local);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(LitebaseError);
    expect((error as LitebaseError).code).toBe('LOCAL_DIR_IN_USE');
    expect((error as LitebaseError).message).toContain(`pid ${process.pid}`);
    lock.release();
    const again = LocalDirLock.acquire(local);
    expect(again.instanceId).toBe(lock.instanceId);
    again.release();
  });

  it('is held by a live process and free the moment it is killed with SIGKILL', async () => {
    const local = layout();
    const script = `
      import { LocalLayout } from './dist/src/storage/layout.js';
      import { LocalDirLock } from './dist/src/storage/local-dir-lock.js';
      LocalDirLock.acquire(new LocalLayout(${JSON.stringify(local.root)}));
      process.stdout.write('locked\\n');
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => (chunk.toString().includes('locked') ? resolve() : undefined));
      child.once('exit', (code) => reject(new Error(`child exited with ${String(code)}`)));
    });
    expect(() => LocalDirLock.acquire(local)).toThrow(/in use by another process \(pid \d+/);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    const lock = LocalDirLock.acquire(local);
    lock.release();
  });
});
