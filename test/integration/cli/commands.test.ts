import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseParam } from '../../../src/cli/query.js';
import { cliEnv, runCli } from '../../support/cli.js';
import { CLI, freePort, tempDir, TEST_ROOT_KEY, TestServer } from '../../support/server.js';

/** The `litebase` command line (docs/API.md "Command line"), run as a child process against a real server. */

describe('--param parsing', () => {
  it('reads integers, REALs, NULL, BLOBs and TEXT', () => {
    expect(parseParam('42')).toBe(42);
    expect(parseParam('-7')).toBe(-7);
    expect(parseParam('+3')).toBe(3);
    expect(parseParam('9007199254740991')).toBe(9007199254740991);
    expect(parseParam('9007199254740992')).toBe(9007199254740992n);
    expect(parseParam('9223372036854775807')).toBe(9223372036854775807n);
    expect(parseParam('-9223372036854775808')).toBe(-9223372036854775808n);
    expect(parseParam('1.5')).toBe(1.5);
    expect(parseParam('-0.25')).toBe(-0.25);
    expect(parseParam('.5')).toBe(0.5);
    expect(parseParam('1e3')).toBe(1000);
    expect(parseParam('null')).toBeNull();
    expect(parseParam("x'00ff'")).toEqual(Buffer.from([0, 255]));
    expect(parseParam("X''")).toEqual(Buffer.alloc(0));
    expect(parseParam('hello world')).toBe('hello world');
    expect(parseParam('NULL')).toBe('NULL');
    expect(parseParam("'42'")).toBe('42');
    expect(parseParam("'null'")).toBe('null');
    expect(parseParam("'it''s'")).toBe("it's");
    expect(parseParam('')).toBe('');
    expect(parseParam('1.2.3')).toBe('1.2.3');
  });

  it('refuses integers beyond 64 bits and malformed hex', () => {
    expect(() => parseParam('9223372036854775808')).toThrow(/64-bit/);
    expect(() => parseParam("x'0'")).toThrow(/hex/);
    expect(() => parseParam("x'zz'")).toThrow(/hex/);
  });
});

describe('client commands', () => {
  let server: TestServer;
  const cli = (...args: string[]) => runCli([...args, '--url', server.url, '--key', server.key]);

  beforeAll(async () => {
    server = await TestServer.start();
  });

  afterAll(async () => {
    await server?.stop();
    server?.cleanup();
  });

  it('creates and lists databases, as a table and as JSON', async () => {
    const created = await cli('db', 'create', 'clitest');
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toContain('created database clitest');

    const table = await cli('db', 'list');
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/name/);
    expect(table.stdout).toMatch(/clitest/);

    const json = await cli('db', 'list', '--json');
    expect(json.code, json.stderr).toBe(0);
    expect(json.stdout.trim().split('\n')).toHaveLength(1);
    const parsed = JSON.parse(json.stdout) as { databases: Array<{ name: string; position: string }> };
    expect(parsed).toEqual((await server.request('GET', '/v1/databases')).body);
    expect(parsed.databases.map((database) => database.name)).toContain('clitest');

    const got = await cli('db', 'get', 'clitest', '--json');
    expect(JSON.parse(got.stdout)).toMatchObject({ database: { name: 'clitest', position: '0' } });

    const again = await cli('db', 'create', 'clitest');
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error DATABASE_EXISTS: /m);
  });

  it('binds params of every type and prints a table and a summary', async () => {
    const table = await cli('query', 'clitest', 'CREATE TABLE v(id INTEGER PRIMARY KEY, x)');
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/0 rows affected, position \d+/);

    const values: Array<[string, string, unknown]> = [
      // --param text, typeof in SQLite, the value in the API's JSON encoding
      ['42', 'integer', 42],
      ['-9007199254740993', 'integer', { $int: '-9007199254740993' }],
      ['9223372036854775807', 'integer', { $int: '9223372036854775807' }],
      ['1.5', 'real', 1.5],
      ['null', 'null', null],
      ["x'00ff10'", 'blob', { $blob: Buffer.from([0, 0xff, 0x10]).toString('base64') }],
      ['hello world', 'text', 'hello world'],
      ["'42'", 'text', '42'],
    ];
    for (const [index, [text]] of values.entries()) {
      const insert = await cli('query', 'clitest', 'INSERT INTO v(id, x) VALUES (?, ?)', '--param', String(index + 1), '--param', text);
      expect(insert.code, insert.stderr).toBe(0);
      expect(insert.stdout).toMatch(new RegExp(`^1 row affected, last insert rowid ${index + 1}, position \\d+$`, 'm'));
    }

    const select = await cli('query', 'clitest', 'SELECT id, typeof(x), x FROM v ORDER BY id', '--json');
    expect(select.code, select.stderr).toBe(0);
    const answer = JSON.parse(select.stdout) as { results: Array<{ rows: unknown[][] }>; position: string };
    expect(answer.results[0]?.rows).toEqual(values.map(([, type, json], index) => [index + 1, type, json]));

    const people = await cli('query', 'clitest', 'SELECT id, x FROM v WHERE id IN (?, ?, ?) ORDER BY id', '-p', '3', '-p', '5', '-p', '6');
    expect(people.code, people.stderr).toBe(0);
    expect(people.stdout).toContain('9223372036854775807');
    expect(people.stdout).toContain('NULL');
    expect(people.stdout).toContain("x'00ff10'");
    expect(people.stdout).toMatch(/^3 rows, position \d+$/m);

    const negative = await cli('query', 'clitest', 'SELECT ? + 0', '--param', '-5');
    expect(negative.code, negative.stderr).toBe(0);
    expect(negative.stdout).toMatch(/-5/);
  });

  it('prints exactly the server JSON answer with --json, one line that round-trips', async () => {
    const sql = 'SELECT ? AS big, ? AS blob, ? AS real, ? AS none';
    const params = ['9223372036854775807', "x'deadbeef'", '2.5', 'null'];
    const result = await cli('query', 'clitest', sql, ...params.flatMap((value) => ['--param', value]), '--json');
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.endsWith('\n')).toBe(true);
    expect(result.stdout.trim().split('\n')).toHaveLength(1);
    const parsed = JSON.parse(result.stdout) as { results: unknown[]; position: string; node: string; role: string };
    const direct = await server.request('POST', '/v1/databases/clitest/query', {
      statements: [
        { sql, params: [{ $int: '9223372036854775807' }, { $blob: Buffer.from('deadbeef', 'hex').toString('base64') }, 2.5, null] },
      ],
    });
    expect(parsed).toEqual(direct.body);
    expect(JSON.stringify(parsed)).toBe(result.stdout.trim());
    expect(parsed.results).toEqual([
      {
        columns: ['big', 'blob', 'real', 'none'],
        rows: [[{ $int: '9223372036854775807' }, { $blob: '3q2+7w==' }, 2.5, null]],
        rowsAffected: 0,
        lastInsertRowid: null,
      },
    ]);
    expect(parsed.position).toMatch(/^\d+$/);
  });

  it('exits 1 with the SQLite code on an SQL error', async () => {
    const missingTable = await cli('query', 'clitest', 'SELECT * FROM no_such_table');
    expect(missingTable.code).toBe(1);
    expect(missingTable.stdout).toBe('');
    expect(missingTable.stderr).toMatch(/^error SQLITE_ERROR: .*no such table/m);

    await cli('query', 'clitest', 'CREATE TABLE u(k TEXT UNIQUE)');
    await cli('query', 'clitest', "INSERT INTO u VALUES ('one')");
    const duplicate = await cli('query', 'clitest', "INSERT INTO u VALUES ('one')");
    expect(duplicate.code).toBe(1);
    expect(duplicate.stderr).toMatch(/^error SQLITE_CONSTRAINT_UNIQUE: /m);
  });

  it('exits 1 with DATABASE_NOT_FOUND for a missing database', async () => {
    const result = await cli('query', 'nope', 'SELECT 1');
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^error DATABASE_NOT_FOUND: /m);
  });

  it('exits 1 with an authentication code for a wrong or missing key', async () => {
    const wrong = await runCli(['db', 'list', '--url', server.url, '--key', 'not-the-key']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/^error (INVALID_KEY|UNAUTHENTICATED|UNAUTHORIZED|FORBIDDEN): /m);
    const missing = await runCli(['db', 'list', '--url', server.url]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^error (INVALID_KEY|UNAUTHENTICATED|UNAUTHORIZED): /m);
  });

  it('takes the URL and key from LITEBASE_URL and LITEBASE_KEY', async () => {
    const result = await runCli(['db', 'list', '--json'], { LITEBASE_URL: server.url, LITEBASE_KEY: server.key });
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toHaveProperty('databases');
  });

  it('exits 1 with CONNECTION_FAILED when no server answers', async () => {
    const result = await runCli(['db', 'list', '--url', `http://127.0.0.1:${await freePort()}`, '--key', 'k']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^error CONNECTION_FAILED: /m);
  });

  it('exits 2 on usage errors', async () => {
    const missingArgument = await cli('query', 'clitest');
    expect(missingArgument.code).toBe(2);
    expect(missingArgument.stderr).toMatch(/missing required argument/);
    const unknownOption = await cli('db', 'list', '--bogus');
    expect(unknownOption.code).toBe(2);
    const badParam = await cli('query', 'clitest', 'SELECT ?', '--param', "x'abc'");
    expect(badParam.code).toBe(2);
    expect(badParam.stderr).toMatch(/^error INVALID_PARAM: /m);
    const help = await runCli(['query', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("x'00ff'");
  });

  it('shows the statement metrics of a database, as a table and as JSON, and resets them', async () => {
    const table = await cli('db', 'statements', 'clitest', '--order', 'count');
    expect(table.code, table.stderr).toBe(0);
    // The INSERTs of the test above, with their literals collapsed, as one statement.
    expect(table.stdout).toMatch(/^clitest on node n1 \(primary\): \d+ statements tracked since \S+; by count$/m);
    expect(table.stdout).toContain('INSERT INTO v(id, x) VALUES (?, ?)');
    expect(table.stdout).toContain('p99');
    const json = await cli('db', 'statements', 'clitest', '--limit', '1', '--order', 'count', '--json');
    expect(json.code, json.stderr).toBe(0);
    const answer = JSON.parse(json.stdout) as { statements: Array<{ sql: string; count: number; rowsWritten: number }>; order: string };
    expect(answer.order).toBe('count');
    expect(answer.statements).toHaveLength(1);
    expect(answer.statements[0]).toMatchObject({ sql: 'INSERT INTO v(id, x) VALUES (?, ?)', count: 8, rowsWritten: 8 });
    const cluster = await cli('db', 'statements', 'clitest', '--cluster');
    expect(cluster.code, cluster.stderr).toBe(0);
    expect(cluster.stdout).toMatch(/^clitest on n1: \d+ statements tracked since \S+; by total$/m);
    expect(cluster.stdout).toContain('INSERT INTO v(id, x) VALUES (?, ?)');
    const badOrder = await cli('db', 'statements', 'clitest', '--order', 'fastest');
    expect(badOrder.code).toBe(2);
    expect(badOrder.stderr).toMatch(/^error INVALID_ARGUMENTS: /m);
    const reset = await cli('db', 'statements', 'clitest', '--reset');
    expect(reset.code, reset.stderr).toBe(0);
    expect(reset.stdout).toContain('reset the statement metrics of clitest');
    const empty = await cli('db', 'statements', 'clitest', '--json');
    expect((JSON.parse(empty.stdout) as { tracked: number }).tracked).toBe(0);
  });

  it('drops a database', async () => {
    expect((await cli('db', 'create', 'dropme')).code).toBe(0);
    const dropped = await cli('db', 'drop', 'dropme');
    expect(dropped.code, dropped.stderr).toBe(0);
    expect(dropped.stdout).toContain('dropped database dropme');
    const gone = await cli('db', 'get', 'dropme');
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^error DATABASE_NOT_FOUND: /m);
  });
});

describe('serve with no flags', () => {
  const cwd = tempDir('litebase-serve-');

  afterAll(() => rmSync(cwd, { recursive: true, force: true }));

  /** `litebase serve` in `cwd`, configured only by LITEBASE_PORT; resolves once it listens. */
  async function serve(port: number): Promise<{ stop(signal: NodeJS.Signals): Promise<number | null>; stderr(): string }> {
    const child = spawn(process.execPath, [CLI, 'serve'], {
      cwd,
      env: cliEnv({ LITEBASE_PORT: String(port), LITEBASE_LOG_LEVEL: 'warn' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const deadline = Date.now() + 20_000;
    while (!/listening on/.test(stderr)) {
      if (child.exitCode !== null) throw new Error(`serve exited early (${child.exitCode}):\n${stderr}\n${stdout}`);
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`serve did not start:\n${stderr}\n${stdout}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return {
      stderr: () => stderr,
      stop: (signal) => {
        child.kill(signal);
        return exited;
      },
    };
  }

  function filesUnder(dir: string): string[] {
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => path.join(entry.parentPath, entry.name));
  }

  it('exits 1 at once when its port is taken, and gives back the lease it won', async () => {
    const port = await freePort();
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(port, '127.0.0.1', resolve));
    const dataDir = tempDir('litebase-busy-port-');
    try {
      const started = Date.now();
      // A lease of 60 s: a node that kept it would block any other Primary for a minute.
      const failed = await runCli(
        ['serve', '--data-dir', dataDir, '--port', String(port), '--node-id', 'first', '--root-key', TEST_ROOT_KEY],
        {
          LITEBASE_LEASE_TTL_MS: '60000',
        },
      );
      expect(failed.code, failed.stderr).toBe(1);
      expect(failed.stderr).toMatch(/^error EADDRINUSE: /m);
      expect(Date.now() - started).toBeLessThan(10_000);
      await new Promise<void>((resolve) => holder.close(() => resolve()));

      const next = await TestServer.start({ dataDir, nodeId: 'second', env: { LITEBASE_LEASE_TTL_MS: '60000' } });
      try {
        const status = await next.request('GET', '/v1/cluster');
        expect(status.body.primary?.nodeId).toBe('second');
      } finally {
        await next.stop();
      }
    } finally {
      if (holder.listening) holder.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('creates ./litebase-data, prints a generated root key once and saves it with mode 0600', async () => {
    const port = await freePort();
    const first = await serve(port);
    const url = `http://127.0.0.1:${port}`;
    try {
      expect(existsSync(path.join(cwd, 'litebase-data'))).toBe(true);
      const printed = /Generated root key \(saved to ([^)]+)\): (\S+)/.exec(first.stderr());
      expect(printed, first.stderr()).not.toBeNull();
      const key = printed?.[2] ?? '';
      expect(first.stderr().split(key).length - 1).toBe(1);

      const holders = filesUnder(path.join(cwd, 'litebase-data')).filter((file) => readFileSync(file, 'utf8').trim() === key);
      expect(holders).toHaveLength(1);
      const [keyFile] = holders;
      expect(path.resolve(keyFile ?? '')).toBe(path.resolve(printed?.[1] ?? ''));
      expect(statSync(keyFile ?? '').mode & 0o777).toBe(0o600);

      const listed = await runCli(['db', 'list', '--json', '--url', url, '--key', key]);
      expect(listed.code, listed.stderr).toBe(0);
    } finally {
      expect(await first.stop('SIGTERM')).toBe(0);
    }

    // A second start reads the saved key and does not show it again.
    const second = await serve(port);
    try {
      expect(second.stderr()).not.toMatch(/Generated root key/);
      const key = readFileSync(/Generated root key \(saved to ([^)]+)\)/.exec(first.stderr())?.[1] ?? '', 'utf8').trim();
      const listed = await runCli(['db', 'list', '--url', url, '--key', key]);
      expect(listed.code, listed.stderr).toBe(0);
    } finally {
      expect(await second.stop('SIGINT')).toBe(0);
    }
  });
});
