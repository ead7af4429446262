import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { LitebaseClientError } from '../client/client.js';
import { LitebaseError } from '../errors.js';
import { CliUsageError, processIo, type CliIo } from './common.js';
import { registerClusterCommands } from './cluster.js';
import { registerCompactCommand } from './compact.js';
import { registerDbCommands } from './db.js';
import { registerInspectCommand } from './inspect.js';
import { registerKeyCommands } from './keys.js';
import { registerQueryCommand } from './query.js';
import { registerRestoreCommand } from './restore.js';
import { registerServeCommand } from './serve.js';
import { registerShellCommand } from './shell/command.js';

/**
 * The `litebase` command line (docs/API.md "Command line"). One file per command group registers its commands here;
 * a new group (restore, compact, cluster, keys) is one more `register...` line.
 *
 * Exit codes: 0 success, 1 failure (`error CODE: message` on stderr), 2 usage error.
 */
export function buildProgram(io: CliIo = processIo): Command {
  const program = new Command('litebase')
    .description('Litebase: a distributed SQLite server')
    .version(packageVersion(), '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeOut: (text) => io.out(text), writeErr: (text) => io.err(text) })
    // Commander errors (usage, --help, --version) are thrown and mapped to exit codes in main.
    .exitOverride();

  registerServeCommand(program, io);
  registerDbCommands(program, io);
  registerQueryCommand(program, io);
  registerRestoreCommand(program, io);
  registerCompactCommand(program, io);
  registerClusterCommands(program, io);
  registerKeyCommands(program, io);
  registerShellCommand(program, io);
  registerInspectCommand(program, io);
  return program;
}

export async function main(argv: string[], io: CliIo = processIo): Promise<void> {
  // A reader that stops early (`litebase inspect ... | head`) closes the pipe: that ends the
  // command quietly, as it does for other Unix tools, instead of an unhandled EPIPE stack trace.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw error;
    });
  }
  process.exitCode = await run(argv, io);
}

/** Run one command line; answers the exit code instead of exiting, so it can run in tests. */
export async function run(argv: string[], io: CliIo = processIo): Promise<number> {
  try {
    await buildProgram(io).parseAsync(argv);
    return 0;
  } catch (error) {
    return report(error, io);
  }
}

function report(error: unknown, io: CliIo): number {
  if (error instanceof CommanderError) {
    // Commander has printed its message already; help and version end with exit code 0.
    return error.exitCode === 0 ? 0 : 2;
  }
  if (error instanceof CliUsageError) {
    io.err(`error ${error.code}: ${error.message}`);
    return 2;
  }
  if (error instanceof LitebaseClientError) {
    const statement = typeof error.details.statement === 'number' ? ` (statement ${error.details.statement})` : '';
    const retry = error.retryAfter === undefined ? '' : ` (retry after ${error.retryAfter} s)`;
    io.err(`error ${error.code}: ${error.message}${statement}${retry}`);
    return error.code === 'INVALID_URL' ? 2 : 1;
  }
  if (error instanceof LitebaseError) {
    io.err(`error ${error.code}: ${error.message}`);
    return error.code === 'CONFIG_INVALID' ? 2 : 1;
  }
  // System errors (EADDRINUSE, EACCES, ...) keep their code; anything else is a bug worth a stack.
  const code = typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'string' ? error.code : undefined;
  if (code !== undefined && error instanceof Error) {
    io.err(`error ${code}: ${error.message}`);
    return 1;
  }
  io.err(`error INTERNAL: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  return 1;
}

/** The version in package.json, found by walking up from this file (src/cli or dist/src/cli). */
function packageVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 5; depth++) {
    const file = path.join(dir, 'package.json');
    if (existsSync(file)) {
      try {
        const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
        if (typeof parsed === 'object' && parsed !== null && 'name' in parsed && parsed.name === 'litebase' && 'version' in parsed) {
          return String(parsed.version);
        }
      } catch {
        // not ours; keep walking up
      }
    }
    dir = path.dirname(dir);
  }
  return '0.0.0';
}
