import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { splitStatements, tokenize, transactionControl } from '../../../../src/cli/shell/statement-splitter.js';

/** The shell's statement splitter (src/cli/shell/statement-splitter.ts), a port of sqlite3_complete(). */

const split = (text: string) => splitStatements(text);

describe('splitStatements', () => {
  it('cuts after each ; and drops the ;', () => {
    expect(split('SELECT 1; SELECT 2;\n')).toEqual({ statements: ['SELECT 1', 'SELECT 2'], rest: '\n', pending: false });
  });

  it('keeps a statement without its ; pending, over several lines', () => {
    expect(split('SELECT\n')).toEqual({ statements: [], rest: 'SELECT\n', pending: true });
    expect(split('SELECT\n1\n')).toMatchObject({ statements: [], pending: true });
    expect(split('SELECT\n1\n;\n')).toEqual({ statements: ['SELECT\n1'], rest: '\n', pending: false });
    expect(split('SELECT 1; SELECT')).toEqual({ statements: ['SELECT 1'], rest: ' SELECT', pending: true });
  });

  it('does not end a statement at a ; inside a string, quoted identifier or comment', () => {
    expect(split("INSERT INTO t VALUES ('a;b');")).toMatchObject({ statements: ["INSERT INTO t VALUES ('a;b')"], pending: false });
    expect(split("SELECT 'it''s; fine';")).toMatchObject({ statements: ["SELECT 'it''s; fine'"] });
    expect(split('SELECT "we;ird", [br;acket], `back;tick` FROM t;')).toMatchObject({
      statements: ['SELECT "we;ird", [br;acket], `back;tick` FROM t'],
    });
    expect(split('SELECT 1 -- no; end here\n, 2;')).toMatchObject({ statements: ['SELECT 1 -- no; end here\n, 2'] });
    expect(split('SELECT /* ; */ 1;')).toMatchObject({ statements: ['SELECT /* ; */ 1'] });
  });

  it('waits for the end of an unterminated string, identifier or block comment', () => {
    expect(split("INSERT INTO t VALUES ('a;\n")).toMatchObject({ statements: [], pending: true });
    expect(split("INSERT INTO t VALUES ('a;\nb');\n")).toMatchObject({ statements: ["INSERT INTO t VALUES ('a;\nb')"], pending: false });
    expect(split('SELECT 1 /* comment;\n')).toMatchObject({ statements: [], pending: true });
    expect(split('SELECT "col;\n')).toMatchObject({ statements: [], pending: true });
    expect(split('SELECT [col;\n')).toMatchObject({ statements: [], pending: true });
  });

  it('keeps a CREATE TRIGGER body whole, up to END;', () => {
    const trigger = 'CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  INSERT INTO log VALUES (1);\n  UPDATE t SET a = 2;\nEND';
    expect(split(`${trigger};\nSELECT 1;`)).toMatchObject({ statements: [trigger, 'SELECT 1'], pending: false });
    expect(split('CREATE TEMP TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO log VALUES (1);')).toMatchObject({
      statements: [],
      pending: true,
    });
    expect(split('create temporary trigger tr after insert on t begin select 1; end;')).toMatchObject({
      statements: ['create temporary trigger tr after insert on t begin select 1; end'],
    });
    // CASE ... END inside the body is not the end of the trigger.
    const withCase = 'CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT CASE WHEN 1 THEN 2 END; END';
    expect(split(`${withCase};`)).toMatchObject({ statements: [withCase] });
    expect(split('EXPLAIN CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END;')).toMatchObject({
      statements: ['EXPLAIN CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END'],
    });
  });

  it('is not fooled by the words TRIGGER, END and CREATE elsewhere', () => {
    expect(split('CREATE TABLE trigger_log(end_time);')).toMatchObject({ statements: ['CREATE TABLE trigger_log(end_time)'] });
    expect(split('CREATE TABLE "trigger"(a); SELECT 1;')).toMatchObject({ statements: ['CREATE TABLE "trigger"(a)', 'SELECT 1'] });
    expect(split('SELECT trigger FROM t; SELECT 2;')).toMatchObject({ statements: ['SELECT trigger FROM t', 'SELECT 2'] });
    expect(split('CREATE INDEX i ON t(a); END;')).toMatchObject({ statements: ['CREATE INDEX i ON t(a)', 'END'] });
  });

  it('leaves out empty statements and treats trailing comments as nothing pending', () => {
    expect(split(';;  ;\n')).toEqual({ statements: [], rest: '\n', pending: false });
    expect(split('-- just a comment\n')).toMatchObject({ statements: [], pending: false });
    expect(split('/* a comment */ ;')).toMatchObject({ statements: [], pending: false });
    expect(split('SELECT 1; -- trailing; comment')).toMatchObject({ statements: ['SELECT 1'], pending: false });
  });

  it('cuts a script into statements that SQLite runs to the same end as the whole script', () => {
    const script = [
      "CREATE TABLE t(a, b TEXT DEFAULT 'x;y');",
      'CREATE TABLE "log;table"(msg);',
      '/* block; comment */ CREATE TRIGGER tr AFTER INSERT ON t',
      'BEGIN',
      '  INSERT INTO "log;table" VALUES (\'inserted; \' || new.a);',
      "  INSERT INTO \"log;table\" VALUES (CASE WHEN new.a > 1 THEN 'big' ELSE 'small;' END);",
      'END;',
      'INSERT INTO t(a) VALUES (1), (2); -- trailing; comment',
      "INSERT INTO t VALUES (3, 'it''s; -- not a comment');",
      ';',
    ].join('\n');
    const whole = new Database(':memory:');
    whole.exec(script);
    const pieces = new Database(':memory:');
    const { statements, pending } = split(script);
    expect(pending).toBe(false);
    expect(statements).toHaveLength(5);
    for (const statement of statements) pieces.prepare(statement).run();
    const dump = (db: Database.Database) => ({
      t: db.prepare('SELECT * FROM t ORDER BY a').all(),
      log: db.prepare('SELECT * FROM "log;table" ORDER BY rowid').all(),
    });
    expect(dump(pieces)).toEqual(dump(whole));
    expect(dump(pieces).log).toHaveLength(6);
  });

  it('gives the same statements whether the text comes whole or line by line', () => {
    const lines = ["INSERT INTO t VALUES ('a", "b;c');", 'CREATE TRIGGER x AFTER DELETE ON t BEGIN', 'DELETE FROM u;', 'END;', 'SELECT 1;'];
    let buffer = '';
    const seen: string[] = [];
    for (const line of lines) {
      const result = split(`${buffer}${line}\n`);
      seen.push(...result.statements);
      buffer = result.pending ? result.rest : '';
    }
    expect(buffer).toBe('');
    expect(seen).toEqual(split(lines.join('\n')).statements);
    expect(seen).toHaveLength(3);
  });
});

describe('tokenize', () => {
  it('marks words lower-cased and unterminated tokens', () => {
    const tokens = tokenize("Select 'open");
    expect(tokens.map((token) => [token.kind, token.text])).toEqual([
      ['word', 'select'],
      ['space', ' '],
      ['other', "'open"],
    ]);
    expect(tokens[2]?.unterminated).toBe(true);
  });
});

describe('transactionControl', () => {
  it('knows BEGIN, COMMIT, END and ROLLBACK in their forms', () => {
    for (const sql of [
      'BEGIN',
      'begin transaction',
      'BEGIN IMMEDIATE',
      'BEGIN EXCLUSIVE TRANSACTION',
      'begin deferred transaction t1',
      '/* c */ BEGIN -- x\n;',
    ]) {
      expect(transactionControl(sql), sql).toBe('begin');
    }
    for (const sql of ['COMMIT', 'commit transaction', 'END', 'end transaction']) expect(transactionControl(sql), sql).toBe('commit');
    for (const sql of ['ROLLBACK', 'rollback transaction']) expect(transactionControl(sql), sql).toBe('rollback');
  });

  it('leaves everything else to the server', () => {
    for (const sql of [
      'ROLLBACK TO sp1',
      'ROLLBACK TRANSACTION TO SAVEPOINT sp1',
      'SAVEPOINT sp1',
      'RELEASE sp1',
      'SELECT 1',
      'BEGIN foo bar',
      "BEGIN 'x'",
      'beginning',
      'CREATE TABLE begin(a)',
    ]) {
      expect(transactionControl(sql), sql).toBeNull();
    }
  });
});
