import type { ClientErrorCode, NodeErrorCode } from '../../error-codes.js';

/**
 * A failure the shell finds itself, before or instead of asking the server: an unknown dot-command,
 * a file `.read` cannot open, input that ends inside a statement, a statement cancelled with
 * Ctrl-C. Printed like the server's errors, `error CODE: message` (docs/SHELL.md lists the codes).
 */
export class ShellError extends Error {
  constructor(
    readonly code: ClientErrorCode | NodeErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ShellError';
  }
}
