import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LogTailer } from '../../../src/log/log-tailer.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('LogTailer', () => {
  it('polls every interval, skips one poll after news came another way, and passes nudges on', async () => {
    vi.useFakeTimers();
    const calls: Array<bigint | undefined> = [];
    const tailer = new LogTailer({
      dir: '/nonexistent',
      pollMs: 100,
      watch: false,
      onChange: (head) => calls.push(head),
      logger: pino({ level: 'silent' }),
    });
    tailer.start();
    await vi.advanceTimersByTimeAsync(250);
    expect(calls).toHaveLength(2);
    // A nudge that carried the segments: the next poll has nothing to add.
    tailer.heard();
    await vi.advanceTimersByTimeAsync(100);
    expect(calls).toHaveLength(2);
    // No news since: the poll looks again (a Primary whose nudges stopped is noticed).
    await vi.advanceTimersByTimeAsync(100);
    expect(calls).toHaveLength(3);
    tailer.nudge();
    expect(calls).toHaveLength(4);
    expect(tailer.watcherSeesChanges(1000)).toBe(false);
    await tailer.stop();
    await vi.advanceTimersByTimeAsync(500);
    expect(calls).toHaveLength(4);
  });
});
