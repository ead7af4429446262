import { Option, type Command } from 'commander';
import { LitebaseClient } from '../client/client.js';

/** Where a command writes. The real streams in `main`; tests may pass their own. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
}

export const processIo: CliIo = {
  out: (text) => void process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  err: (text) => void process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
};

/** A mistake in how the command was invoked (exit code 2), as opposed to a failure (exit code 1). */
export class CliUsageError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'CliUsageError';
  }
}

export const DEFAULT_URL = 'http://127.0.0.1:8080';

export interface ConnectionOptions {
  url: string;
  key?: string;
}

/** `--url` and `--key`, shared by every command that talks to a server. */
export function withConnectionOptions(command: Command): Command {
  return command
    .addOption(new Option('--url <url>', 'URL of any Litebase node').env('LITEBASE_URL').default(DEFAULT_URL))
    .addOption(new Option('--key <key>', 'access key').env('LITEBASE_KEY'));
}

export function connect(options: ConnectionOptions): LitebaseClient {
  return new LitebaseClient({ url: options.url, ...(options.key ? { key: options.key } : {}) });
}
