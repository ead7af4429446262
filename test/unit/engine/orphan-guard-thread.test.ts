import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import type { SandboxRequest } from '../../../src/engine/read-sandbox-child.js';

/**
 * The read process's orphan guard (src/engine/orphan-guard-thread.ts), in the built read process
 * (npm test compiles first) as the node forks it: when the node dies while the read process is
 * stuck in an endless statement, the guard kills the read process.
 */

const CHILD = fileURLToPath(new URL('../../../dist/src/engine/read-sandbox-child.js', import.meta.url));
const work = mkdtempSync(path.join(tmpdir(), 'litebase-orphan-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Running, and not a zombie waiting for a parent that is gone to reap it. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

describe('the orphan guard thread of a read process', () => {
  it('kills a read process stuck in SQLite once the node that forked it is gone', async () => {
    const file = path.join(work, 'db.sqlite');
    new Database(file).close();
    const run: SandboxRequest = {
      type: 'run',
      id: 1,
      file,
      generation: 1,
      dataVersion: 0,
      statements: [{ sql: 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c' }],
      firstIndex: 0,
      admin: false,
      exact: false,
      // A time limit far away: only the node being gone can stop this read process soon.
      limits: { maxResultRows: 1000, maxResultBytes: 1_000_000, statementTimeoutMs: 600_000 },
      rows: 1000,
      bytes: 1_000_000,
    };
    // The "node": forks the read process, starts the endless statement, says the pid, and dies.
    const node = path.join(work, 'node.mjs');
    writeFileSync(
      node,
      `import { fork } from 'node:child_process';
      const child = fork(${JSON.stringify(CHILD)}, [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
      child.on('message', (message) => {
        if (message.type !== 'ready') return;
        child.send(${JSON.stringify(run)});
        setTimeout(() => { process.stdout.write(child.pid + '\\n', () => process.kill(process.pid, 'SIGKILL')); }, 300);
      });\n`,
    );
    const parent = spawn(process.execPath, [node], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    parent.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await new Promise((resolve) => parent.on('exit', resolve));
    const pid = Number(output.trim());
    expect(pid).toBeGreaterThan(0);
    // The guard looks every 500 ms; generous for a loaded machine.
    const deadline = Date.now() + 20_000;
    while (alive(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    const survived = alive(pid);
    if (survived) process.kill(pid, 'SIGKILL');
    expect(survived).toBe(false);
  }, 40_000);
});
