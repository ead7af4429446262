import { homedir } from 'node:os';
import readline from 'node:readline';
import type { CliIo } from '../common.js';
import { appendHistory, historyFile, HISTORY_LIMIT, loadHistory } from './history.js';
import type { ShellSession } from './session.js';
import { toShellError } from './session.js';
import { ShellError } from './shell-error.js';

export interface ReplOptions {
  session: ShellSession;
  database: string;
  /** Shown in the greeting. */
  url: string;
  io: CliIo;
  input?: NodeJS.ReadStream;
  output?: NodeJS.WriteStream;
}

/**
 * The shell at a terminal: a prompt, line editing and history (node:readline), Ctrl-C that cancels
 * the running statement or clears the input, Ctrl-D or .quit to leave. Errors are printed and the
 * shell goes on.
 */
export async function runInteractive(options: ReplOptions): Promise<void> {
  const { session, io } = options;
  const input = options.input ?? process.stdin;
  const output = options.output ?? process.stdout;
  const file = historyFile(process.env, homedir());
  const rl = readline.createInterface({
    input,
    output,
    terminal: true,
    history: file === null ? [] : loadHistory(file),
    historySize: HISTORY_LIMIT,
  });
  /** `app> `, `app*> ` inside a transaction, `  ...> ` while a statement waits for its `;`. */
  const setPrompt = () => {
    const head = `${options.database}${session.inTransaction ? '*' : ''}`;
    rl.setPrompt(session.pending ? `${'...'.padStart(head.length)}> ` : `${head}> `);
  };
  const prompt = () => {
    setPrompt();
    rl.prompt();
  };
  let historyWorks = file !== null;

  const interrupt = () => {
    if (session.busy) return session.cancel();
    // At the prompt: drop the statement typed so far and the line being edited, and start anew.
    // Ctrl-E Ctrl-U empties readline's line and redraws it, with the fresh prompt, on a new line.
    session.clearInput();
    setPrompt();
    output.write('^C\n');
    rl.write('', { ctrl: true, name: 'e' });
    rl.write('', { ctrl: true, name: 'u' });
  };
  rl.on('SIGINT', interrupt);
  // readline turns Ctrl-C into 'SIGINT' on the interface; a real SIGINT (kill -INT) lands here.
  process.on('SIGINT', interrupt);

  io.out(`Litebase shell on database ${options.database} at ${options.url}. Statements end with ";". ".help" for help.`);
  prompt();
  try {
    for await (const line of rl) {
      if (historyWorks && file !== null && !appendHistory(file, line)) {
        historyWorks = false;
        io.err(`warning: cannot write the history file ${file}; history is kept for this session only`);
      }
      try {
        if ((await session.runLine(line)) === 'quit') break;
      } catch (error) {
        const failure = toShellError(error);
        io.err(`error ${failure.code}: ${failure.message}`);
      }
      prompt();
    }
  } finally {
    process.off('SIGINT', interrupt);
    rl.close();
    if (await session.close()) io.out('the open transaction was rolled back');
  }
}

/**
 * The shell reading a script (stdin not a terminal): no prompts, no history; the first error
 * stops it and is thrown (printed by `main`, exit code 1). A script that ends inside a statement
 * or inside an open transaction fails too; the transaction is rolled back.
 */
export async function runScript(session: ShellSession, input: NodeJS.ReadableStream = process.stdin): Promise<void> {
  const rl = readline.createInterface({ input, terminal: false, crlfDelay: Infinity });
  try {
    await session.runLines(rl, 'stdin');
  } catch (error) {
    await session.close();
    throw error;
  } finally {
    rl.close();
  }
  if (await session.close()) {
    throw new ShellError(
      'TRANSACTION_ROLLED_BACK',
      'the script ended with a transaction open (BEGIN without COMMIT or ROLLBACK); it was rolled back',
    );
  }
}
