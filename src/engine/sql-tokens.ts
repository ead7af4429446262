/**
 * SQL text split into tokens the way SQLite's own tokenizer (tokenize.c, sqlite3GetToken) splits
 * it, for the code that must read a statement before or beside SQLite: the statement guard
 * (statement-guard.ts) and statement fingerprints (statement-fingerprint.ts). White space and
 * comments are dropped; every other token keeps its place in the text.
 *
 * Where SQLite would find an illegal token (an unfinished `X'..'`, `!` alone, `#` without a name,
 * a number with letters glued on), the token is kept with the kind it started as (`blob`,
 * `operator`, `param`, `number`) and `illegal` set: SQLite refuses such a statement at prepare().
 */

export type SqlTokenKind =
  /** A keyword or an identifier as written, without quotes. */
  | 'word'
  /** "identifier", `identifier` or [identifier]. */
  | 'quoted'
  /** 'text' */
  | 'string'
  /** X'0A0B' */
  | 'blob'
  /** 12, 1.5e3, 0x1F, 1_000, .5 */
  | 'number'
  /** ?, ?NNN, :name, @name, $name, #name */
  | 'param'
  /** Punctuation and operators: ( ) , ; . and + - * / % = == < <= <> << > >= >> != || & | ~ -> ->> */
  | 'operator';

export interface SqlToken {
  kind: SqlTokenKind;
  /** Where the token starts and ends in the text (`sql.slice(start, end)` is the token as written). */
  start: number;
  end: number;
  /** SQLite would refuse it (TK_ILLEGAL). */
  illegal?: true;
}

const isDigit = (c: number): boolean => c >= 48 && c <= 57;
const isHexDigit = (c: number): boolean => isDigit(c) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
const isLetter = (c: number): boolean => (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
/** SQLite's IdChar: letters, digits, `_`, `$`, and every byte >= 0x80 (so every non-ASCII UTF-16 unit). */
export const isIdChar = (c: number): boolean => isLetter(c) || isDigit(c) || c === 95 || c === 36 || c >= 0x80;
const isIdStart = (c: number): boolean => isLetter(c) || c === 95 || c >= 0x80;
/** sqlite3Isspace: space, \t, \n, \v, \f, \r. */
const isSpace = (c: number): boolean => c === 32 || (c >= 9 && c <= 13);

/** Where the text quoted from `start` with `quote` ends (a doubled quote stands for one); the end of the text when unterminated. */
function endOfQuoted(sql: string, start: number, quote: string): number {
  let from = start + 1;
  for (;;) {
    const end = sql.indexOf(quote, from);
    if (end < 0) return sql.length;
    if (sql[end + 1] !== quote) return end + 1;
    from = end + 2;
  }
}

/** Digits with SQLite's `_` separators, from `i`; returns where they end. */
function skipDigits(sql: string, i: number, hex = false): number {
  let j = i;
  for (;;) {
    const c = sql.charCodeAt(j);
    if (isDigit(c) || c === 95 || (hex && isHexDigit(c))) j += 1;
    else return j;
  }
}

/** A number as SQLite reads it: `0x1F`, `1_000`, `1.5`, `.5`, `1e-3`. Identifier characters glued on make it illegal. */
function endOfNumber(sql: string, i: number): [number, boolean] {
  let j: number;
  if (sql[i] === '0' && (sql[i + 1] === 'x' || sql[i + 1] === 'X') && isHexDigit(sql.charCodeAt(i + 2))) {
    j = skipDigits(sql, i + 2, true);
  } else {
    j = skipDigits(sql, i);
    if (sql[j] === '.') j = skipDigits(sql, j + 1);
    const next = sql.charCodeAt(j + 1);
    if ((sql[j] === 'e' || sql[j] === 'E') && (isDigit(next) || ((next === 43 || next === 45) && isDigit(sql.charCodeAt(j + 2))))) {
      j = skipDigits(sql, j + 2);
    }
  }
  const legalEnd = j;
  while (j < sql.length && isIdChar(sql.charCodeAt(j))) j += 1;
  return [j, j !== legalEnd];
}

/** `$name`, `:name`, `@name`, `#name`, with SQLite's TCL forms `$a::b` and `$a(x)`; illegal without a name. */
function endOfVariable(sql: string, i: number): [number, boolean] {
  let names = 0;
  let j = i + 1;
  while (j < sql.length) {
    const c = sql.charCodeAt(j);
    if (isIdChar(c)) {
      names += 1;
      j += 1;
    } else if (c === 40 /* ( */ && names > 0) {
      j += 1;
      while (j < sql.length && !isSpace(sql.charCodeAt(j)) && sql[j] !== ')') j += 1;
      if (sql[j] === ')') return [j + 1, false];
      return [j, true];
    } else if (c === 58 /* : */ && sql.charCodeAt(j + 1) === 58) {
      j += 2;
    } else {
      break;
    }
  }
  return [j, names === 0];
}

/** The one-character operators SQLite has (`!` only comes as `!=`); any other character is illegal. */
const SINGLE_OPERATORS = '();+-*/%=<>,&|~.';
/** Two- and three-character operators, longest first. */
const OPERATORS = ['->>', '->', '||', '<=', '<>', '<<', '>=', '>>', '==', '!='];

/**
 * The tokens of `sql`, in order, without white space and comments. SQLite stops reading at a NUL,
 * and so does this; a byte-order mark where a token would start is white space to SQLite.
 */
export function sqlTokens(sql: string): SqlToken[] {
  const tokens: SqlToken[] = [];
  const n = sql.length;
  let i = 0;
  const push = (kind: SqlTokenKind, end: number, illegal = false): void => {
    tokens.push(illegal ? { kind, start: i, end, illegal } : { kind, start: i, end });
    i = end;
  };
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (c === 0) break;
    if (isSpace(c) || c === 0xfeff) {
      i += 1;
    } else if (c === 45 /* - */ && sql.charCodeAt(i + 1) === 45) {
      const end = sql.indexOf('\n', i + 2);
      i = end < 0 ? n : end + 1;
    } else if (c === 47 /* / */ && sql.charCodeAt(i + 1) === 42 /* * */) {
      // Unterminated, it runs to the end, as in SQLite.
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? n : end + 2;
    } else if ((c === 120 || c === 88) /* x X */ && sql.charCodeAt(i + 1) === 39) {
      // X'hex': an even number of hex digits, else illegal up to the next quote.
      let j = i + 2;
      while (isHexDigit(sql.charCodeAt(j))) j += 1;
      const illegal = sql[j] !== "'" || (j - i) % 2 !== 0;
      if (illegal) while (j < n && sql[j] !== "'") j += 1;
      push('blob', j < n ? j + 1 : n, illegal);
    } else if (c === 39 /* ' */) {
      push('string', endOfQuoted(sql, i, "'"));
    } else if (c === 34 /* " */ || c === 96 /* ` */) {
      push('quoted', endOfQuoted(sql, i, sql[i] as string));
    } else if (c === 91 /* [ */) {
      const end = sql.indexOf(']', i + 1);
      push('quoted', end < 0 ? n : end + 1);
    } else if (isIdStart(c)) {
      let j = i + 1;
      while (j < n && isIdChar(sql.charCodeAt(j))) j += 1;
      push('word', j);
    } else if (isDigit(c) || (c === 46 /* . */ && isDigit(sql.charCodeAt(i + 1)))) {
      const [end, illegal] = endOfNumber(sql, i);
      push('number', end, illegal);
    } else if (c === 63 /* ? */) {
      // ?NNN: digits only; a word right after it is a token of its own.
      let j = i + 1;
      while (isDigit(sql.charCodeAt(j))) j += 1;
      push('param', j);
    } else if (c === 58 || c === 64 || c === 36 || c === 35) {
      // :name @name $name #name
      const [end, illegal] = endOfVariable(sql, i);
      push('param', end, illegal);
    } else {
      const operator = OPERATORS.find((candidate) => sql.startsWith(candidate, i));
      push('operator', i + (operator?.length ?? 1), operator === undefined && !SINGLE_OPERATORS.includes(sql[i] as string));
    }
  }
  return tokens;
}

/** The text of a quoted identifier or string without its quotes, a doubled quote read as one. */
export function unquote(text: string): string {
  const open = text[0];
  if (open === '[') return text.slice(1, text.endsWith(']') ? -1 : undefined);
  if (open !== "'" && open !== '"' && open !== '`') return text;
  const body = text.length > 1 && text.endsWith(open) ? text.slice(1, -1) : text.slice(1);
  return body.replaceAll(open + open, open);
}
