import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { appendHistory, historyFile, HISTORY_LIMIT, loadHistory } from '../../../../src/cli/shell/history.js';

/** The shell's history file (src/cli/shell/history.ts). */

describe('history file', () => {
  it('is LITEBASE_HISTORY, else under XDG_STATE_HOME, else ~/.litebase_history', () => {
    expect(historyFile({ LITEBASE_HISTORY: '/tmp/h', XDG_STATE_HOME: '/state' }, '/home/me')).toBe('/tmp/h');
    expect(historyFile({ LITEBASE_HISTORY: '' }, '/home/me')).toBeNull();
    expect(historyFile({ XDG_STATE_HOME: '/state' }, '/home/me')).toBe('/state/litebase/history');
    expect(historyFile({ XDG_STATE_HOME: 'relative' }, '/home/me')).toBe('/home/me/.litebase_history');
    expect(historyFile({}, '/home/me')).toBe('/home/me/.litebase_history');
  });

  it('is appended to with mode 0600, read back newest first, and cut back when it grows', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'litebase-history-'));
    try {
      const file = path.join(dir, 'nested', 'history');
      expect(loadHistory(file)).toEqual([]);
      expect(appendHistory(file, 'SELECT 1;')).toBe(true);
      expect(appendHistory(file, '   ')).toBe(true);
      expect(appendHistory(file, '.tables')).toBe(true);
      expect(readFileSync(file, 'utf8')).toBe('SELECT 1;\n.tables\n');
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(loadHistory(file)).toEqual(['.tables', 'SELECT 1;']);

      const many = Array.from({ length: 2 * HISTORY_LIMIT + 5 }, (_, index) => `SELECT ${index};`);
      writeFileSync(file, `${many.join('\n')}\n`);
      const loaded = loadHistory(file);
      expect(loaded).toHaveLength(HISTORY_LIMIT);
      expect(loaded[0]).toBe(`SELECT ${2 * HISTORY_LIMIT + 4};`);
      expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(HISTORY_LIMIT);

      expect(appendHistory(path.join(file, 'not-a-dir', 'history'), 'SELECT 1;')).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
