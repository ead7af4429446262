import type { Command } from 'commander';
import { CliUsageError, withConnectionOptions, type CliIo, type ConnectionOptions } from '../common.js';

interface ShellFlags extends ConnectionOptions {
  transactionTimeout: string;
}

const SHELL_HELP = `
At a terminal: an interactive shell with history (~/.litebase_history, or $XDG_STATE_HOME/litebase/history,
or the file in LITEBASE_HISTORY; an empty LITEBASE_HISTORY keeps none). ".help" lists the dot-commands.
With a script on stdin (not a terminal): no prompts; the first error stops it with exit code 1.
Reference: docs/SHELL.md.`;

/** `litebase shell NAME`: an interactive SQL shell on one database (docs/SHELL.md). */
export function registerShellCommand(program: Command, io: CliIo): void {
  withConnectionOptions(
    program
      .command('shell')
      .description('an interactive SQL shell on a database; reads a script from stdin when it is not a terminal')
      .argument('<name>', 'database name')
      .option(
        '--transaction-timeout <ms>',
        'how long BEGIN ... COMMIT may stay open before the server rolls it back (the server caps it)',
        '60000',
      )
      .addHelpText('after', SHELL_HELP),
  ).action(async (name: string, flags: ShellFlags) => {
    if (!/^[1-9]\d*$/.test(flags.transactionTimeout)) {
      throw new CliUsageError(
        'INVALID_ARGUMENTS',
        `--transaction-timeout ${flags.transactionTimeout}: expected a positive number of milliseconds`,
      );
    }
    // Loaded here, not with the command line: every other command starts without the shell's modules.
    const [{ connectCancellable, RequestCanceller }, { runInteractive, runScript }, { ShellSession }] = await Promise.all([
      import('./cancellable-client.js'),
      import('./repl.js'),
      import('./session.js'),
    ]);
    const canceller = new RequestCanceller();
    const client = connectCancellable(flags, canceller);
    // Fail at once, before any prompt, when the node or the database is not there.
    await client.getDatabase(name);
    const interactive = process.stdin.isTTY === true;
    const session = new ShellSession({
      client,
      canceller,
      database: name,
      output: { out: (text) => io.out(text) },
      interactive,
      transactionTimeoutMs: Number(flags.transactionTimeout),
    });
    if (interactive) await runInteractive({ session, database: name, url: client.url, io });
    else await runScript(session);
  });
}
