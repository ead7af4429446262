/**
 * A failure the shell finds itself, before or instead of asking the server: an unknown dot-command,
 * a file `.read` cannot open, input that ends inside a statement, a statement cancelled with
 * Ctrl-C. Printed like the server's errors, `error CODE: message` (docs/SHELL.md lists the codes).
 */
export class ShellError extends Error {
  constructor(
    /** The shell's own code (docs/ERRORS.md, "shell"), or the server's as it came over the wire. */
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ShellError';
  }
}
