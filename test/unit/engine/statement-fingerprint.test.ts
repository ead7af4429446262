import { describe, expect, it } from 'vitest';
import { FingerprintCache, normalizeStatement } from '../../../src/engine/statement-fingerprint.js';

const text = (sql: string): string => normalizeStatement(sql).text;
const id = (sql: string): string => normalizeStatement(sql).id;

describe('statement fingerprints', () => {
  it('turns string, number and blob literals into ?', () => {
    expect(text("SELECT * FROM t WHERE a = 'x' AND b = 12 AND c = 1.5e3 AND d = X'00ff' AND e = 0x1F AND f = .5 AND g = 1_000")).toBe(
      'SELECT * FROM t WHERE a = ? AND b = ? AND c = ? AND d = ? AND e = ? AND f = ? AND g = ?',
    );
    expect(text("INSERT INTO t VALUES ('it''s', x'AB')")).toBe('INSERT INTO t VALUES (?, ?)');
  });

  it('gives statements that differ only in literals, case, white space and comments one id', () => {
    const first = normalizeStatement("SELECT name FROM users WHERE id = 42 AND kind = 'a'");
    const second = normalizeStatement("select  name\n  from USERS -- who\n where id=7 /* x */ and kind='bb';");
    expect(second.id).toBe(first.id);
    // The text shown is as the statement was written (the cache keeps the first one seen).
    expect(first.text).toBe('SELECT name FROM users WHERE id = ? AND kind = ?');
    expect(second.text).toBe('select name from USERS where id = ? and kind = ?');
  });

  it('keeps quoted identifiers apart from strings, and keeps them as written', () => {
    expect(text('SELECT "my col", [other col], `third` FROM "T" WHERE "x" = \'x\'')).toBe(
      'SELECT "my col", [other col], `third` FROM "T" WHERE "x" = ?',
    );
    expect(id('SELECT "a" FROM t')).not.toBe(id("SELECT 'a' FROM t"));
    expect(id('SELECT "A" FROM t')).not.toBe(id('SELECT "B" FROM t'));
  });

  it('folds a sign into the number it starts, but keeps subtraction', () => {
    expect(text('SELECT -1, +2, a - 3, a-4, (-5), f(-6), x * -7 FROM t LIMIT -1 OFFSET 2')).toBe(
      'SELECT ?, ?, a - ?, a - ?, (?), f(?), x * ? FROM t LIMIT ? OFFSET ?',
    );
    expect(text('SELECT CASE WHEN a THEN -1 ELSE 2 END - 3, NULL - 1, "q" - 1, ? - 1')).toBe(
      'SELECT CASE WHEN a THEN ? ELSE ? END - ?, NULL - ?, "q" - ?, ? - ?',
    );
    expect(id('SELECT * FROM t WHERE a = -1')).toBe(id('SELECT * FROM t WHERE a = 1'));
    expect(id('SELECT a - 1 FROM t')).not.toBe(id('SELECT a FROM t'));
  });

  it('collapses IN lists of literals and parameters to IN (?)', () => {
    expect(text("SELECT * FROM t WHERE a IN (1, 2, 3) AND b NOT IN (?, ?) AND c IN (:x, -1, 's')")).toBe(
      'SELECT * FROM t WHERE a IN (?) AND b NOT IN (?) AND c IN (?)',
    );
    expect(id('SELECT * FROM t WHERE a IN (1)')).toBe(id('SELECT * FROM t WHERE a IN (1, 2, 3, 4, 5, 6)'));
    expect(id('DELETE FROM t WHERE id IN (?, ?, ?)')).toBe(id('DELETE FROM t WHERE id IN (?)'));
    // A subquery or an expression is not a list of values.
    expect(text('SELECT * FROM t WHERE a IN (SELECT b FROM u WHERE c = 1) OR a IN (1 + 2)')).toBe(
      'SELECT * FROM t WHERE a IN (SELECT b FROM u WHERE c = ?) OR a IN (? + ?)',
    );
  });

  it('collapses several rows of VALUES into the first and ", ..."', () => {
    expect(text("INSERT INTO t(a, b) VALUES (1, 'x'), (2, 'y'), (?, ?)")).toBe('INSERT INTO t(a, b) VALUES (?, ?), ...');
    expect(id('INSERT INTO t(a, b) VALUES (?, ?), (?, ?)')).toBe(id('INSERT INTO t(a, b) VALUES (1, 2), (3, 4), (5, 6)'));
    expect(text('INSERT INTO t(a) VALUES (?) RETURNING id')).toBe('INSERT INTO t(a) VALUES (?) RETURNING id');
    expect(id('INSERT INTO t(a) VALUES (?)')).not.toBe(id('INSERT INTO t(a) VALUES (?), (?)'));
  });

  it('leaves parameters alone: ?, ?NNN, :name, @name, $name', () => {
    expect(text('SELECT * FROM t WHERE a = ? AND b = ?2 AND c = :name AND d = @at AND e = $dollar AND f = $a::b AND g = $v(x)')).toBe(
      'SELECT * FROM t WHERE a = ? AND b = ?2 AND c = :name AND d = @at AND e = $dollar AND f = $a::b AND g = $v(x)',
    );
    expect(id('SELECT * FROM t WHERE a = :a')).not.toBe(id('SELECT * FROM t WHERE a = :b'));
    expect(id('SELECT * FROM t WHERE a = ?1')).not.toBe(id('SELECT * FROM t WHERE a = 1'));
  });

  it('drops comments, including ones that look like SQL, and leading and trailing semicolons', () => {
    expect(text("/* SELECT 'x' */ SELECT a -- FROM nowhere 'y'\nFROM t /* unterminated")).toBe('SELECT a FROM t');
    expect(text(';;SELECT 1;;')).toBe('SELECT ?');
    // A comment marker inside a string is part of the string.
    expect(text("SELECT '-- not a comment', '/* nor this */' FROM t")).toBe('SELECT ?, ? FROM t');
  });

  it('writes function calls, qualified names and operators in one way', () => {
    expect(text("SELECT count( * ),t . a,replace(a,'x','y'),a||b,a>=1,a<>2,j->>'$.k' FROM main . t")).toBe(
      'SELECT count(*), t.a, replace(a, ?, ?), a || b, a >= ?, a <> ?, j ->> ? FROM main.t',
    );
  });

  it('cuts very long texts but gives them their own id', () => {
    const columns = Array.from({ length: 600 }, (_, i) => `column_${i}`).join(', ');
    const long = normalizeStatement(`SELECT ${columns} FROM t`);
    expect(long.text.length).toBe(2000);
    expect(long.text.endsWith('…')).toBe(true);
    expect(normalizeStatement(`SELECT ${columns}, extra FROM t`).id).not.toBe(long.id);
  });

  it('caches by SQL text, least recently used first out, within its bounds', () => {
    const cache = new FingerprintCache(3, 1000);
    const first = cache.fingerprint('SELECT 1');
    expect(cache.fingerprint('SELECT 1')).toBe(first);
    cache.fingerprint('SELECT 2');
    cache.fingerprint('SELECT 3');
    cache.fingerprint('SELECT 1'); // used again: SELECT 2 is now the oldest
    cache.fingerprint('SELECT 4');
    expect(cache.size).toBe(3);
    expect(cache.fingerprint('SELECT 1')).toBe(first);
    // Texts longer than all the room are normalized but not kept.
    const long = `SELECT '${'x'.repeat(2000)}'`;
    expect(cache.fingerprint(long).text).toBe('SELECT ?');
    expect(cache.size).toBe(3);
    // The characters kept stay within the bound.
    const small = new FingerprintCache(100, 30);
    for (let i = 0; i < 10; i++) small.fingerprint(`SELECT ${i} FROM tbl`);
    expect(small.size).toBe(1);
  });
});
