import { isOutputMode, OUTPUT_MODES, type OutputMode } from './result-format.js';
import { ShellError } from './shell-error.js';

/**
 * The shell's own commands: a line that starts with `.` when no statement is waiting for its `;`
 * (as in sqlite3). Parsing is pure; the session carries them out.
 */
export type DotCommand =
  | { name: 'tables'; pattern?: string }
  | { name: 'schema'; pattern?: string }
  | { name: 'mode'; mode?: OutputMode }
  | { name: 'timer'; on: boolean }
  | { name: 'read'; file: string }
  | { name: 'help' }
  | { name: 'quit' };

export const DOT_HELP = `.help                 show this text
.tables [PATTERN]     list tables and views (PATTERN as in LIKE, e.g. user%)
.schema [PATTERN]     show the CREATE statements, of the tables matching PATTERN only if given
.mode [MODE]          output mode: table (default), json, csv or line; without MODE: show it
.timer on|off         show how long each statement took (the round trip to the server)
.read FILE            run the statements and commands in FILE; stops at its first error
.quit, .exit          leave the shell (Ctrl-D too)
Statements end with ";" and may span lines. BEGIN ... COMMIT or ROLLBACK runs as one interactive
transaction on the server. Ctrl-C cancels the running statement or clears the current input.`;

const SWITCH_VALUES: Record<string, boolean> = {
  on: true,
  off: false,
  yes: true,
  no: false,
  true: true,
  false: false,
  '1': true,
  '0': false,
};

/** Whether `line` is a dot-command (when no statement is pending). */
export function isDotCommand(line: string): boolean {
  return line.trimStart().startsWith('.');
}

/** Read one dot-command line; a ShellError (UNKNOWN_COMMAND, INVALID_COMMAND) says what is wrong. */
export function parseDotCommand(line: string): DotCommand {
  const [word, ...args] = splitArguments(line.trim().slice(1));
  const name = (word ?? '').toLowerCase();
  const usage = (text: string) => new ShellError('INVALID_COMMAND', `.${name}: ${text}`);
  const atMost = (count: number, form: string) => {
    if (args.length > count) throw usage(`too many arguments; usage: ${form}`);
  };
  switch (name) {
    case 'tables':
    case 'schema':
      atMost(1, `.${name} [PATTERN]`);
      return args[0] === undefined ? { name } : { name, pattern: args[0] };
    case 'mode': {
      atMost(1, '.mode [table|json|csv|line]');
      const mode = args[0]?.toLowerCase();
      if (mode === undefined) return { name };
      if (!isOutputMode(mode)) throw usage(`unknown mode "${args[0]}"; the modes are ${OUTPUT_MODES.join(', ')}`);
      return { name, mode };
    }
    case 'timer': {
      atMost(1, '.timer on|off');
      const on = SWITCH_VALUES[args[0]?.toLowerCase() ?? ''];
      if (on === undefined) throw usage('usage: .timer on|off');
      return { name, on };
    }
    case 'read':
      atMost(1, '.read FILE');
      if (args[0] === undefined || args[0] === '') throw usage('usage: .read FILE');
      return { name, file: args[0] };
    case 'help':
      return { name };
    case 'quit':
    case 'exit':
      return { name: 'quit' };
    default:
      throw new ShellError('UNKNOWN_COMMAND', `unknown command ".${word ?? ''}"; .help lists the commands`);
  }
}

/** Words separated by white space; '...' or "..." keep spaces inside one argument (a file name). */
export function splitArguments(text: string): string[] {
  const args: string[] = [];
  const pattern = /"([^"]*)"?|'([^']*)'?|(\S+)/g;
  for (const match of text.matchAll(pattern)) args.push(match[1] ?? match[2] ?? match[3] ?? '');
  return args;
}
