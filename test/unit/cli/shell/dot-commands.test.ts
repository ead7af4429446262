import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isDotCommand, parseDotCommand, splitArguments } from '../../../../src/cli/shell/dot-commands.js';
import { appendHistory, historyFile, HISTORY_LIMIT, loadHistory } from '../../../../src/cli/shell/history.js';
import { ShellError } from '../../../../src/cli/shell/shell-error.js';

/** The shell's dot-commands (src/cli/shell/dot-commands.ts) and its history file (history.ts). */

function codeOf(line: string): string {
  try {
    parseDotCommand(line);
  } catch (error) {
    if (error instanceof ShellError) return error.code;
    throw error;
  }
  throw new Error(`${line} parsed`);
}

describe('parseDotCommand', () => {
  it('reads each command and its arguments', () => {
    expect(parseDotCommand('.tables')).toEqual({ name: 'tables' });
    expect(parseDotCommand('.tables user%')).toEqual({ name: 'tables', pattern: 'user%' });
    expect(parseDotCommand('.schema')).toEqual({ name: 'schema' });
    expect(parseDotCommand('  .schema   notes  ')).toEqual({ name: 'schema', pattern: 'notes' });
    expect(parseDotCommand('.mode')).toEqual({ name: 'mode' });
    expect(parseDotCommand('.mode JSON')).toEqual({ name: 'mode', mode: 'json' });
    expect(parseDotCommand('.mode csv')).toEqual({ name: 'mode', mode: 'csv' });
    expect(parseDotCommand('.timer on')).toEqual({ name: 'timer', on: true });
    expect(parseDotCommand('.timer OFF')).toEqual({ name: 'timer', on: false });
    expect(parseDotCommand('.timer 1')).toEqual({ name: 'timer', on: true });
    expect(parseDotCommand('.read setup.sql')).toEqual({ name: 'read', file: 'setup.sql' });
    expect(parseDotCommand('.read "my file.sql"')).toEqual({ name: 'read', file: 'my file.sql' });
    expect(parseDotCommand(".read 'it is.sql'")).toEqual({ name: 'read', file: 'it is.sql' });
    expect(parseDotCommand('.help')).toEqual({ name: 'help' });
    expect(parseDotCommand('.quit')).toEqual({ name: 'quit' });
    expect(parseDotCommand('.exit')).toEqual({ name: 'quit' });
    expect(parseDotCommand('.QUIT')).toEqual({ name: 'quit' });
  });

  it('refuses unknown commands and wrong arguments with a code', () => {
    expect(codeOf('.dump')).toBe('UNKNOWN_COMMAND');
    expect(codeOf('.')).toBe('UNKNOWN_COMMAND');
    expect(codeOf('.mode column')).toBe('INVALID_COMMAND');
    expect(codeOf('.mode csv json')).toBe('INVALID_COMMAND');
    expect(codeOf('.timer')).toBe('INVALID_COMMAND');
    expect(codeOf('.timer maybe')).toBe('INVALID_COMMAND');
    expect(codeOf('.read')).toBe('INVALID_COMMAND');
    expect(codeOf('.tables a b')).toBe('INVALID_COMMAND');
    expect(() => parseDotCommand('.mode column')).toThrow(/table, json, csv, line/);
    expect(() => parseDotCommand('.dump')).toThrow(/\.help/);
  });

  it('tells dot-commands from SQL', () => {
    expect(isDotCommand('.tables')).toBe(true);
    expect(isDotCommand('  .tables')).toBe(true);
    expect(isDotCommand('SELECT .5;')).toBe(false);
  });

  it('splits arguments on blanks, keeping quoted ones whole', () => {
    expect(splitArguments('read  a  "b c" \'d e\' f')).toEqual(['read', 'a', 'b c', 'd e', 'f']);
    expect(splitArguments('read "unterminated name')).toEqual(['read', 'unterminated name']);
    expect(splitArguments('')).toEqual([]);
  });
});

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
