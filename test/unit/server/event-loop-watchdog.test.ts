import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

/** The built watchdog (npm test compiles first), in a process of its own that it may kill. */
const WATCHDOG = fileURLToPath(new URL('../../../dist/src/server/event-loop-watchdog.js', import.meta.url));

const scripts = mkdtempSync(join(tmpdir(), 'litebase-watchdog-'));
afterAll(() => rmSync(scripts, { recursive: true, force: true }));
let written = 0;

function runBlocked(script: string): Promise<{ signal: NodeJS.Signals | null; code: number | null; stderr: string; ms: number }> {
  const started = Date.now();
  // A module file, as `litebase serve` runs the watchdog from the build.
  const file = join(scripts, `blocked-${(written += 1)}.mjs`);
  writeFileSync(file, `import { startWatchdog } from ${JSON.stringify(WATCHDOG)};\n${script}\n`);
  const child = spawn(process.execPath, [file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stderr, ms: Date.now() - started })));
}

describe('event-loop watchdog', () => {
  it('kills a process whose main thread stays blocked past the limit, saying why', async () => {
    const result = await runBlocked('startWatchdog(300); setTimeout(() => { for (;;) {} }, 200);');
    expect(result.signal, result.stderr).toBe('SIGKILL');
    expect(result.stderr).toContain('FATAL EVENT_LOOP_BLOCKED');
    expect(result.ms).toBeLessThan(5000);
  }, 10_000);

  it('leaves a busy but responsive process alone', async () => {
    // Blocks of 150 ms, each under the 400 ms limit, for 1.5 s; then a clean exit.
    const script = `const dog = startWatchdog(400); const end = Date.now() + 1500;
      const spin = () => { const until = Date.now() + 150; while (Date.now() < until) {} if (Date.now() < end) setTimeout(spin, 5); else { dog.stop(); process.exit(0); } };
      spin();`;
    const result = await runBlocked(script);
    expect(result.signal).toBeNull();
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).not.toContain('EVENT_LOOP_BLOCKED');
  }, 10_000);
});
