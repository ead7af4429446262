import { describe, expect, it } from 'vitest';
import { sqlTokens, unquote } from '../../../src/engine/sql-tokens.js';

const tokens = (sql: string): Array<[string, string, boolean?]> =>
  sqlTokens(sql).map((token) =>
    token.illegal ? [token.kind, sql.slice(token.start, token.end), true] : [token.kind, sql.slice(token.start, token.end)],
  );

describe('sqlTokens', () => {
  it('splits as SQLite does: words, quoted names, strings, blobs, numbers, parameters, operators', () => {
    expect(tokens(`SELECT "a b", [c], \`d\`, 'it''s', X'0aFF', 1.5e-3, 0x1f, .5, ?, ?12, :n, @m, $o::p, $q(r), a->>'$.x' FROM t;`)).toEqual(
      [
        ['word', 'SELECT'],
        ['quoted', '"a b"'],
        ['operator', ','],
        ['quoted', '[c]'],
        ['operator', ','],
        ['quoted', '`d`'],
        ['operator', ','],
        ['string', "'it''s'"],
        ['operator', ','],
        ['blob', "X'0aFF'"],
        ['operator', ','],
        ['number', '1.5e-3'],
        ['operator', ','],
        ['number', '0x1f'],
        ['operator', ','],
        ['number', '.5'],
        ['operator', ','],
        ['param', '?'],
        ['operator', ','],
        ['param', '?12'],
        ['operator', ','],
        ['param', ':n'],
        ['operator', ','],
        ['param', '@m'],
        ['operator', ','],
        ['param', '$o::p'],
        ['operator', ','],
        ['param', '$q(r)'],
        ['operator', ','],
        ['word', 'a'],
        ['operator', '->>'],
        ['string', "'$.x'"],
        ['word', 'FROM'],
        ['word', 't'],
        ['operator', ';'],
      ],
    );
  });

  it('drops white space and comments, stops at NUL, and marks what SQLite would refuse', () => {
    expect(tokens('\uFEFF a -- x\n/* y */ b\u0000 c')).toEqual([
      ['word', 'a'],
      ['word', 'b'],
    ]);
    expect(tokens("X'abc' x'zz' 12ab ! # {")).toEqual([
      ['blob', "X'abc'", true],
      ['blob', "x'zz'", true],
      ['number', '12ab', true],
      ['operator', '!', true],
      ['param', '#', true],
      ['operator', '{', true],
    ]);
    expect(tokens('a != b')).toEqual([
      ['word', 'a'],
      ['operator', '!='],
      ['word', 'b'],
    ]);
  });

  it('runs an unterminated string or name to the end', () => {
    expect(tokens("SELECT 'abc")).toEqual([
      ['word', 'SELECT'],
      ['string', "'abc"],
    ]);
    expect(tokens('SELECT [abc')).toEqual([
      ['word', 'SELECT'],
      ['quoted', '[abc'],
    ]);
  });

  it('unquotes names and strings', () => {
    expect(unquote("'it''s'")).toBe("it's");
    expect(unquote('"a""b"')).toBe('a"b');
    expect(unquote('[x y]')).toBe('x y');
    expect(unquote("'open")).toBe('open');
    expect(unquote('word')).toBe('word');
  });
});
