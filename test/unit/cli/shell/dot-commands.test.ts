import { describe, expect, it } from 'vitest';
import { isDotCommand, parseDotCommand, splitArguments } from '../../../../src/cli/shell/dot-commands.js';
import { ShellError } from '../../../../src/cli/shell/shell-error.js';

/** The shell's dot-commands (src/cli/shell/dot-commands.ts). */

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
