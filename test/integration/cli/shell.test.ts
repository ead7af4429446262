import { spawn as spawnProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { spawn as spawnPty, type IPty } from 'node-pty';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliEnv, type CliResult } from '../../support/cli.js';
import { CLI, tempDir, TestServer } from '../../support/server.js';

/**
 * `litebase shell` (docs/SHELL.md) against a real server process: at a real pseudo-terminal
 * (node-pty), typed into as a person would, and with a script on stdin.
 */

const WAIT_MS = 15_000;

/** A `litebase shell` at a pseudo-terminal: what it printed (escape codes removed) and what to type. */
class PtyShell {
  private raw = '';
  private readonly exit: Promise<number>;
  private mark = 0;

  private constructor(private readonly pty: IPty) {
    pty.onData((data) => (this.raw += data));
    this.exit = new Promise((resolve) => pty.onExit(({ exitCode }) => resolve(exitCode)));
  }

  static async start(args: string[], env: Record<string, string>): Promise<PtyShell> {
    const pty = spawnPty(process.execPath, [CLI, 'shell', ...args], {
      name: 'xterm',
      cols: 200,
      rows: 50,
      env: cliEnv(env) as Record<string, string>,
    });
    const shell = new PtyShell(pty);
    await shell.expect(/> $/);
    return shell;
  }

  /** Everything printed so far, as a person would read it. */
  get text(): string {
    return stripVTControlCharacters(this.raw).replaceAll('\r', '');
  }

  get exited(): Promise<number> {
    return this.exit;
  }

  /** Type `keys`; what follows is looked for by the next `expect` only. */
  type(keys: string): void {
    this.mark = this.text.length;
    this.pty.write(keys);
  }

  /** Type a line and wait for the prompt that follows its output; answers that output. */
  async line(text: string, prompt: RegExp = /\n[\w ]*(\*|\.\.\.)?> $/): Promise<string> {
    this.type(`${text}\r`);
    return this.expect(prompt);
  }

  /** Wait until what was printed since the last `type` matches; answers it. */
  async expect(pattern: RegExp): Promise<string> {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const since = this.text.slice(this.mark);
      if (pattern.test(since)) return since;
      if (Date.now() > deadline) throw new Error(`no ${pattern} in the shell's output within ${WAIT_MS} ms; it printed:\n${since}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  kill(): void {
    try {
      this.pty.kill();
    } catch {
      // gone already
    }
  }
}

/** `litebase shell` with `script` on its stdin (a pipe, not a terminal). */
function runScript(args: string[], script: string, env: Record<string, string>): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawnProcess(process.execPath, [CLI, 'shell', ...args], { env: cliEnv(env), stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(script);
  });
}

describe('litebase shell', () => {
  let server: TestServer;
  let home: string;
  let env: Record<string, string>;
  const shells: PtyShell[] = [];
  const historyPath = () => path.join(home, 'state', 'litebase', 'history');

  const start = async (database = 'shell') => {
    const shell = await PtyShell.start([database], env);
    shells.push(shell);
    return shell;
  };
  const rows = async (database: string, sql: string): Promise<unknown[][]> => {
    const answer = await server.request('POST', `/v1/databases/${database}/query`, { statements: [{ sql }] });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    return answer.body.results[0].rows as unknown[][];
  };

  beforeAll(async () => {
    // A short statement time limit ends the runaway query of the Ctrl-C test soon after.
    server = await TestServer.start({ env: { LITEBASE_STATEMENT_TIMEOUT_MS: '3000' } });
    home = tempDir('litebase-shell-home-');
    // History under XDG_STATE_HOME (set here, so that the environment running the tests cannot move it).
    env = { LITEBASE_URL: server.url, LITEBASE_KEY: server.key, HOME: home, XDG_STATE_HOME: path.join(home, 'state') };
    for (const name of ['shell', 'scripts']) expect((await server.request('POST', '/v1/databases', { name })).status).toBe(201);
  });

  afterAll(async () => {
    for (const shell of shells) shell.kill();
    await server?.stop();
    server?.cleanup();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  it('runs statements over several lines, shows tables and schema, prints in each mode, and keeps history', async () => {
    const shell = await start();
    expect(shell.text).toContain('Litebase shell on database shell');
    expect(shell.text).toMatch(/\nshell> $/);

    expect(await shell.line('CREATE TABLE notes(id INTEGER PRIMARY KEY,')).toMatch(/\n {2}\.\.\.> $/);
    expect(await shell.line("  body TEXT DEFAULT 'x;y');")).toMatch(/0 rows affected, position \d+\nshell> $/);
    expect(await shell.line("INSERT INTO notes(body) VALUES ('semi;colon'), ('it''s');")).toMatch(
      /2 rows affected, last insert rowid 2, position \d+/,
    );
    expect(await shell.line('CREATE TRIGGER keep AFTER DELETE ON notes BEGIN')).toMatch(/\.\.\.> $/);
    expect(await shell.line("  INSERT INTO notes(body) VALUES ('deleted; ' || old.body);")).toMatch(/\.\.\.> $/);
    expect(await shell.line('END;')).toMatch(/0 rows affected/);

    expect(await shell.line('.tables')).toMatch(/^\.tables\nnotes\nshell> $/);
    const schema = await shell.line('.schema notes');
    expect(schema).toContain("CREATE TABLE notes(id INTEGER PRIMARY KEY,\n  body TEXT DEFAULT 'x;y');");
    expect(schema).toContain(
      "CREATE TRIGGER keep AFTER DELETE ON notes BEGIN\n  INSERT INTO notes(body) VALUES ('deleted; ' || old.body);\nEND;",
    );

    const table = await shell.line('SELECT id, body FROM notes ORDER BY id;');
    expect(table).toMatch(/│ 1 *│ semi;colon *│/);
    expect(table).toContain('2 rows');
    await shell.line('.mode json');
    expect(await shell.line('SELECT id, body FROM notes ORDER BY id;')).toContain(
      '[{"id":1,"body":"semi;colon"},\n{"id":2,"body":"it\'s"}]',
    );
    await shell.line('.mode csv');
    expect(await shell.line('SELECT id, body FROM notes ORDER BY id;')).toContain("id,body\n1,semi;colon\n2,it's\n");
    await shell.line('.mode line');
    expect(await shell.line('SELECT id, body FROM notes WHERE id = 1;')).toContain('  id = 1\nbody = semi;colon\n');
    expect(await shell.line('.mode')).toContain('current output mode: line');
    await shell.line('.mode table');
    await shell.line('.timer on');
    expect(await shell.line('SELECT 1;')).toMatch(/Run time: \d+\.\d{3} s/);
    await shell.line('.timer off');

    expect(await shell.line('SELECT * FROM missing;')).toContain('error SQLITE_ERROR: no such table: missing');
    expect(await shell.line('.nope')).toContain('error UNKNOWN_COMMAND: unknown command ".nope"');
    expect(await shell.line('.help')).toContain('.schema [PATTERN]');

    shell.type('\x04'); // Ctrl-D
    expect(await shell.exited).toBe(0);

    const history = readFileSync(historyPath(), 'utf8').split('\n');
    expect(history).toContain('CREATE TABLE notes(id INTEGER PRIMARY KEY,');
    expect(history).toContain('.mode json');
    expect(history).toContain('SELECT 1;');

    // A new shell has the history: Up recalls the last line typed.
    const again = await start();
    again.type('\x1b[A');
    await again.expect(/\.help$/);
    again.type('\r');
    expect(await again.expect(/\nshell> $/)).toContain('.schema [PATTERN]');
    again.type('.quit\r');
    expect(await again.exited).toBe(0);
  });

  it('runs BEGIN ... ROLLBACK as one interactive transaction that leaves no row, and BEGIN ... COMMIT that keeps them', async () => {
    const shell = await start();
    await shell.line('CREATE TABLE tx(v);');
    expect(await shell.line('BEGIN;')).toMatch(
      /transaction open; the server rolls it back if it is still open in \d+ s \(.*\)\nshell\*> $/,
    );
    expect(await shell.line("INSERT INTO tx VALUES ('rolled back');")).toMatch(/1 row affected, last insert rowid 1\nshell\*> $/);
    expect(await shell.line('SELECT count(*) AS n FROM tx;')).toMatch(/│ 1 │/);
    // Not committed: a request outside the transaction does not see the row.
    expect(await rows('shell', 'SELECT count(*) FROM tx')).toEqual([[0]]);
    expect(await shell.line('.tables')).toContain('tx');
    expect(await shell.line('ROLLBACK;')).toMatch(/rolled back\nshell> $/);
    expect(await rows('shell', 'SELECT count(*) FROM tx')).toEqual([[0]]);

    await shell.line('BEGIN IMMEDIATE TRANSACTION;');
    await shell.line("INSERT INTO tx VALUES ('one');");
    await shell.line("INSERT INTO tx VALUES ('two');");
    expect(await shell.line('COMMIT;')).toMatch(/committed, position \d+\nshell> $/);
    expect(await rows('shell', 'SELECT v FROM tx ORDER BY rowid')).toEqual([['one'], ['two']]);

    expect(await shell.line('COMMIT;')).toContain('error NO_TRANSACTION: no transaction is open');
    await shell.line('BEGIN;');
    expect(await shell.line('BEGIN;')).toContain('error TRANSACTION_OPEN');
    // Leaving with a transaction open rolls it back.
    await shell.line("INSERT INTO tx VALUES ('left open');");
    shell.type('\x04');
    expect(await shell.exited).toBe(0);
    expect(shell.text).toContain('the open transaction was rolled back');
    expect(await rows('shell', 'SELECT count(*) FROM tx')).toEqual([[2]]);

    // A transaction the server rolled back at its timeout: the shell says so and leaves it.
    const slow = await PtyShell.start(['shell', '--transaction-timeout', '300'], env);
    shells.push(slow);
    await slow.line('BEGIN;');
    await new Promise((resolve) => setTimeout(resolve, 800));
    expect(await slow.line("INSERT INTO tx VALUES ('too late');")).toMatch(
      /error TRANSACTION_ENDED: .*expired.*; the shell has left the transaction\nshell> $/,
    );
    expect(await rows('shell', 'SELECT count(*) FROM tx')).toEqual([[2]]);
    slow.type('\x04');
    expect(await slow.exited).toBe(0);
  });

  it('Ctrl-C clears the input at the prompt and cancels a running statement, never leaving the shell', async () => {
    const shell = await start();
    expect(await shell.line("SELECT 'never run',")).toMatch(/\.\.\.> $/);
    shell.type('42');
    await shell.expect(/42$/);
    shell.type('\x03');
    expect(await shell.expect(/\^C\nshell> $/)).toBe('^C\nshell> ');
    expect(await shell.line('SELECT 6 * 7 AS answer;')).toMatch(/│ 42 *│/);

    shell.type('WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c;\r');
    await new Promise((resolve) => setTimeout(resolve, 500));
    shell.type('\x03');
    expect(await shell.expect(/\nshell> $/)).toContain('error CANCELLED: statement cancelled');
    expect(await shell.line('SELECT 43 AS after;')).toMatch(/│ 43 *│/);

    shell.type('\x03');
    await shell.expect(/\nshell> $/);
    shell.type('.quit\r');
    expect(await shell.exited).toBe(0);
  });

  it('.read runs a file and stops at its first error', async () => {
    const dir = tempDir('litebase-shell-read-');
    try {
      const file = path.join(dir, 'setup.sql');
      writeFileSync(
        file,
        "CREATE TABLE readme(v);\nINSERT INTO readme VALUES\n  ('from file');\nINSERT INTO nowhere VALUES (1);\nINSERT INTO readme VALUES ('not reached');\n",
      );
      const shell = await start();
      const output = await shell.line(`.read ${file}`);
      expect(output).toContain('1 row affected');
      expect(output).toContain(`error SQLITE_ERROR: no such table: nowhere (${file} line 4)`);
      expect(await rows('shell', 'SELECT v FROM readme')).toEqual([['from file']]);
      expect(await shell.line('.read /no/such/file.sql')).toContain('error FILE_UNREADABLE');
      shell.type('\x04');
      expect(await shell.exited).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs a script from stdin without prompts and stops at the first error with exit code 1', async () => {
    const ok = await runScript(
      ['scripts'],
      [
        'CREATE TABLE s(id INTEGER PRIMARY KEY, v TEXT);',
        '.mode csv',
        "INSERT INTO s(v) VALUES ('a;1'),",
        "  ('b');",
        'BEGIN;',
        "INSERT INTO s(v) VALUES ('c');",
        'COMMIT;',
        'SELECT id, v FROM s ORDER BY id;',
      ].join('\n'),
      env,
    );
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toBe('');
    expect(ok.stdout).not.toContain('scripts>');
    expect(ok.stdout).not.toContain('Litebase shell');
    expect(ok.stdout.endsWith('id,v\n1,a;1\n2,b\n3,c\n')).toBe(true);

    const failing = await runScript(
      ['scripts'],
      "INSERT INTO s(v) VALUES ('d');\nSELECT 1;\nSELECT * FROM nope;\nINSERT INTO s(v) VALUES ('e');\n",
      env,
    );
    expect(failing.code).toBe(1);
    expect(failing.stderr).toBe('error SQLITE_ERROR: no such table: nope (stdin line 3)\n');
    expect(await rows('scripts', 'SELECT v FROM s WHERE id > 3')).toEqual([['d']]);

    const open = await runScript(['scripts'], "BEGIN;\nINSERT INTO s(v) VALUES ('uncommitted');\n", env);
    expect(open.code).toBe(1);
    expect(open.stderr).toMatch(/^error TRANSACTION_ROLLED_BACK: /);
    const incomplete = await runScript(['scripts'], "INSERT INTO s(v) VALUES ('no semicolon')\n", env);
    expect(incomplete.code).toBe(1);
    expect(incomplete.stderr).toMatch(/^error INCOMPLETE_STATEMENT: .* \(stdin line 1\)\n$/);
    expect(await rows('scripts', 'SELECT count(*) FROM s')).toEqual([[4]]);

    const missing = await runScript(['no-such-db'], 'SELECT 1;\n', env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error DATABASE_NOT_FOUND: /);
    expect(existsSync(historyPath()) ? readFileSync(historyPath(), 'utf8') : '').not.toContain('no semicolon');
  });
});
