import type { Command } from 'commander';
import { decodeQueryResponse } from '../client/client.js';
import type { SqlValue } from '../sql/values.js';
import { CliUsageError, connect, withConnectionOptions, type CliIo, type ConnectionOptions } from './common.js';
import { renderResult } from './output.js';

const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);
const INTEGER = /^[+-]?\d+$/;
const REAL = /^[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?$/;
const BLOB = /^[xX]'(.*)'$/s;
const QUOTED_TEXT = /^'(.*)'$/s;

export const PARAM_HELP = `
Params (--param VALUE, repeatable, bound to ?, ?1, ?2 ... in order):
  42, -7                    INTEGER (beyond ±2^53 it is sent as {"$int":"..."}; 64-bit range)
  1.5, -0.25, 1e3           REAL (a whole value such as 2.0 or 1e3 reaches the server as a JSON
                            number without a fraction and binds as INTEGER; a REAL column stores
                            it as REAL all the same)
  null                      NULL
  x'00ff'                   BLOB, from hex (an even number of hex digits)
  'text'                    TEXT, SQL style: the quotes are removed and '' stands for one quote;
                            use it for text that would otherwise read as a number, null or blob
  anything else             TEXT, as typed
A value that starts with "-" can be given as --param=-5 or --param -5.

Output: a table per result and a line such as "1 row affected, position 12".
With --json: the server's JSON answer on one line, values encoded as in the HTTP API.`;

/** Read one `--param` as the SQLite value it stands for (see PARAM_HELP). */
export function parseParam(text: string): SqlValue {
  if (text === 'null') return null;
  if (INTEGER.test(text)) {
    const value = BigInt(text);
    if (value > INT64_MAX || value < INT64_MIN) {
      throw new CliUsageError('INVALID_PARAM', `--param ${text}: integer outside the 64-bit range (write it as a REAL, e.g. ${text}.0)`);
    }
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  }
  if (REAL.test(text)) {
    const value = Number(text);
    if (!Number.isFinite(value)) throw new CliUsageError('INVALID_PARAM', `--param ${text}: REAL out of range`);
    return value;
  }
  const blob = BLOB.exec(text);
  if (blob) {
    const hex = blob[1] ?? '';
    if (!/^(?:[0-9a-fA-F]{2})*$/.test(hex)) {
      throw new CliUsageError('INVALID_PARAM', `--param ${text}: a BLOB needs an even number of hex digits inside x'...'`);
    }
    return Buffer.from(hex, 'hex');
  }
  const quoted = QUOTED_TEXT.exec(text);
  if (quoted) return (quoted[1] ?? '').replaceAll("''", "'");
  return text;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

interface QueryFlags extends ConnectionOptions {
  param?: string[];
  json?: boolean;
}

/** `litebase query NAME "SQL" [--param VALUE ...] [--json]`. */
export function registerQueryCommand(program: Command, io: CliIo): void {
  withConnectionOptions(
    program
      .command('query')
      .description('run one SQL statement on a database')
      .argument('<name>', 'database name')
      .argument('<sql>', 'one SQL statement')
      .option('-p, --param <value>', 'a value for the next ? placeholder (repeatable; see below)', collect)
      .option('--json', "print the server's JSON answer on one line")
      .addHelpText('after', PARAM_HELP),
  ).action(async (name: string, sql: string, options: QueryFlags) => {
    const params = (options.param ?? []).map(parseParam);
    const answer = await connect(options).queryRaw(name, [params.length > 0 ? { sql, params } : { sql }]);
    if (options.json) return io.out(JSON.stringify(answer));
    const decoded = decodeQueryResponse(answer);
    const last = decoded.results.length - 1;
    io.out(decoded.results.map((result, index) => renderResult(result, index === last ? `, position ${decoded.position}` : '')).join('\n'));
  });
}
