import { LitebaseError, type ErrorCode } from '../errors.js';
import { PRAGMA_RULES, pragmaRule, type PragmaAccess } from './pragma-allowlist.js';

/**
 * The statement guard (docs/SECURITY.md): what no request may run, and what only an admin may.
 *
 * It reads the SQL with a tokenizer that follows SQLite's own (tokenize.c) for everything that can
 * hide a word: comments, strings, quoted identifiers, parameters. It has to work on the text,
 * before SQLite sees it, because SQLite applies many PRAGMAs while *preparing* them (`PRAGMA
 * foreign_keys = OFF` has changed the connection before `prepare()` returns), and better-sqlite3
 * offers no authorizer callback. Where it is unsure it refuses; a refused statement never reaches
 * `prepare()`.
 */

/** A statement refused by the guard; never a problem of the database or the request's other statements. */
export class StatementRefusedError extends LitebaseError {
  constructor(code: ErrorCode, message: string, details: Record<string, unknown>) {
    super(code, message, { details });
    this.name = 'StatementRefusedError';
  }
}

type TokenKind = 'word' | 'quoted' | 'string' | 'other';

interface Token {
  kind: TokenKind;
  /** Lower-cased, quotes removed, for words, quoted identifiers and strings; the raw text otherwise. */
  text: string;
}

const isDigit = (c: number): boolean => c >= 48 && c <= 57;
const isLetter = (c: number): boolean => (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
/** SQLite's IdChar: letters, digits, `_`, `$`, and every byte >= 0x80 (so every non-ASCII UTF-16 unit). */
const isIdChar = (c: number): boolean => isLetter(c) || isDigit(c) || c === 95 || c === 36 || c >= 0x80;
const isIdStart = (c: number): boolean => isLetter(c) || c === 95 || c >= 0x80;
const isSpace = (c: number): boolean => c === 32 || (c >= 9 && c <= 13);

/** The text between `quote`s starting at `start`, a doubled quote standing for one, and where it ends. */
function readQuoted(sql: string, start: number, quote: string): [string, number] {
  let text = '';
  let from = start + 1;
  for (;;) {
    const end = sql.indexOf(quote, from);
    if (end < 0) return [text + sql.slice(from), sql.length];
    text += sql.slice(from, end);
    if (sql[end + 1] !== quote) return [text, end + 1];
    text += quote;
    from = end + 2;
  }
}

/** Digits with SQLite's `_` separators, from `i`; returns where they end. */
function skipDigits(sql: string, i: number, hex = false): number {
  let j = i;
  for (;;) {
    const c = sql.charCodeAt(j);
    if (isDigit(c) || c === 95 || (hex && ((c >= 65 && c <= 70) || (c >= 97 && c <= 102)))) j += 1;
    else return j;
  }
}

/** A number as SQLite reads it (sqlite3GetToken): `0x1F`, `1_000`, `1.5`, `.5`, `1e-3`; identifier characters glued on make it illegal. */
function skipNumber(sql: string, i: number): number {
  let j: number;
  if (sql[i] === '0' && (sql[i + 1] === 'x' || sql[i + 1] === 'X')) {
    j = skipDigits(sql, i + 2, true);
  } else {
    j = skipDigits(sql, i);
    if (sql[j] === '.') j = skipDigits(sql, j + 1);
    const next = sql.charCodeAt(j + 1);
    if ((sql[j] === 'e' || sql[j] === 'E') && (isDigit(next) || ((next === 43 || next === 45) && isDigit(sql.charCodeAt(j + 2))))) {
      j = skipDigits(sql, j + 2);
    }
  }
  while (j < sql.length && isIdChar(sql.charCodeAt(j))) j += 1;
  return j;
}

/**
 * Split SQL into tokens, dropping white space and comments, as SQLite's tokenizer would (so that
 * a word SQLite sees is a word here). Only run when a statement is first prepared.
 */
export function tokenize(sql: string): Token[] {
  const tokens: Token[] = [];
  const n = sql.length;
  let i = 0;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (c === 0) {
      // SQLite stops reading at a NUL.
      break;
    } else if (isSpace(c) || c === 0xfeff) {
      // A byte-order mark where a token would start is white space to SQLite; inside a word it is part of it.
      i += 1;
    } else if (c === 45 && sql.charCodeAt(i + 1) === 45) {
      // -- comment, to the end of the line
      const end = sql.indexOf('\n', i + 2);
      i = end < 0 ? n : end + 1;
    } else if (c === 47 && sql.charCodeAt(i + 1) === 42) {
      // /* comment */, unterminated runs to the end, as in SQLite
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? n : end + 2;
    } else if (c === 39 || c === 34 || c === 96) {
      // 'string', "identifier", `identifier`
      const [text, next] = readQuoted(sql, i, sql[i] as string);
      tokens.push({ kind: c === 39 ? 'string' : 'quoted', text: text.toLowerCase() });
      i = next;
    } else if (c === 91) {
      // [identifier], no escapes
      const end = sql.indexOf(']', i + 1);
      tokens.push({ kind: 'quoted', text: sql.slice(i + 1, end < 0 ? n : end).toLowerCase() });
      i = end < 0 ? n : end + 1;
    } else if (isIdStart(c)) {
      let j = i + 1;
      while (j < n && isIdChar(sql.charCodeAt(j))) j += 1;
      tokens.push({ kind: 'word', text: sql.slice(i, j).toLowerCase() });
      i = j;
    } else if (isDigit(c) || (c === 46 && isDigit(sql.charCodeAt(i + 1)))) {
      const j = skipNumber(sql, i);
      tokens.push({ kind: 'other', text: sql.slice(i, j) });
      i = j;
    } else if (c === 63) {
      // ?NNN: digits only, a word right after it is a word of its own
      let j = i + 1;
      while (isDigit(sql.charCodeAt(j))) j += 1;
      tokens.push({ kind: 'other', text: sql.slice(i, j) });
      i = j;
    } else if (c === 58 || c === 64 || c === 36 || c === 35) {
      // Parameters :name @name $name #name
      let j = i + 1;
      while (j < n && isIdChar(sql.charCodeAt(j))) j += 1;
      tokens.push({ kind: 'other', text: sql.slice(i, j) });
      i = j;
    } else {
      tokens.push({ kind: 'other', text: sql[i] as string });
      i += 1;
    }
  }
  return tokens;
}

const TRANSACTION_CONTROL = new Set(['begin', 'commit', 'end', 'rollback', 'savepoint', 'release']);
/** Statements that reach files outside the database (ATTACH, VACUUM INTO) or rewrite it behind the log. */
const OUTSIDE_THE_DATABASE = new Set(['attach', 'detach', 'vacuum']);
const PRAGMA_FUNCTION_PREFIX = 'pragma_';

const refuse = (message: string, index: number, extra: Record<string, unknown> = {}): StatementRefusedError =>
  new StatementRefusedError('STATEMENT_NOT_ALLOWED', message, { statement: index, ...extra });

/** Refused for a key without `admin`: the pragma is not on the allowlist. */
export function pragmaNotAllowed(pragma: string, index: number): StatementRefusedError {
  return new StatementRefusedError('PRAGMA_NOT_ALLOWED', `PRAGMA ${pragma} needs a key with the admin action on this database`, {
    statement: index,
    pragma,
  });
}

/**
 * Check one statement. Throws StatementRefusedError for what no key may run; returns the name of
 * the pragma when only an admin may run the statement, undefined when anyone may.
 */
export function guardStatement(sql: string, index: number): string | undefined {
  const tokens = tokenize(sql);
  let start = 0;
  // SQLite skips empty statements: `;BEGIN` and `; ATTACH ...` are BEGIN and ATTACH.
  while (tokens[start]?.kind === 'other' && tokens[start]?.text === ';') start += 1;
  // EXPLAIN compiles the statement it explains, and a PRAGMA acts while being compiled.
  if (tokens[start]?.kind === 'word' && tokens[start]?.text === 'explain') {
    start += tokens[start + 1]?.text === 'query' && tokens[start + 2]?.text === 'plan' ? 3 : 1;
  }
  const head = tokens[start];
  const keyword = head?.kind === 'word' ? head.text : '';
  if (TRANSACTION_CONTROL.has(keyword)) {
    throw new StatementRefusedError(
      'TRANSACTION_CONTROL_NOT_ALLOWED',
      'transactions are controlled by the API: use "mode" or the /transactions routes, not BEGIN/COMMIT/ROLLBACK/SAVEPOINT',
      { statement: index },
    );
  }
  if (OUTSIDE_THE_DATABASE.has(keyword)) {
    throw refuse('ATTACH, DETACH, VACUUM and load_extension are not allowed', index);
  }
  if (keyword === 'create') guardCreate(tokens, start, index);

  let adminOnly: string | undefined;
  if (keyword === 'pragma') adminOnly = guardPragma(tokens, start, index);

  for (const token of tokens) {
    if (token.kind === 'other') continue;
    if (token.text === 'load_extension' && token.kind !== 'string') {
      throw refuse('ATTACH, DETACH, VACUUM and load_extension are not allowed', index);
    }
    // Table-valued pragma functions: `FROM pragma_table_info('t')`, also quoted, and also as a
    // string, which SQLite accepts as a table name. Only SQLite's own pragmas have one.
    if (token.text.startsWith(PRAGMA_FUNCTION_PREFIX)) {
      const pragma = token.text.slice(PRAGMA_FUNCTION_PREFIX.length);
      if (!PRAGMA_RULES.has(pragma)) continue;
      adminOnly = checkAccess(pragmaRule(pragma).read, pragma, index) ?? adminOnly;
    }
  }
  return adminOnly;
}

/** Words between CREATE and the name of what it creates. */
const CREATE_WORDS = new Set(['unique', 'virtual', 'table', 'view', 'index', 'trigger', 'if', 'not', 'exists']);

/**
 * Temporary tables, views, triggers and indexes live on the connection, not in the database: on a
 * connection every client shares they would shadow other clients' tables, and they are not in the
 * log, so replicas and the next Primary never see them.
 */
function guardCreate(tokens: Token[], start: number, index: number): void {
  let at = start + 1;
  const second = tokens[at];
  const temporary = second?.kind === 'word' && (second.text === 'temp' || second.text === 'temporary');
  while (tokens[at]?.kind === 'word' && CREATE_WORDS.has((tokens[at] as Token).text)) at += 1;
  // ...or named into the temp schema: CREATE TABLE temp.t, CREATE INDEX "temp".i ON ...
  const name = tokens[at];
  const qualified = name !== undefined && name.kind !== 'other' && name.text === 'temp' && tokens[at + 1]?.text === '.';
  if (temporary || qualified) {
    throw refuse('temporary tables, views, triggers and indexes are not allowed: they would not be in the log', index);
  }
}

/** PRAGMA [schema.]name [= value | (value)]: the rule for the name, applied to its form. */
function guardPragma(tokens: Token[], start: number, index: number): string | undefined {
  let at = start + 1;
  if (tokens[at + 1]?.kind === 'other' && tokens[at + 1]?.text === '.') at += 2;
  const nameToken = tokens[at];
  if (!nameToken || nameToken.kind === 'other') {
    // Not a PRAGMA SQLite would accept either; still, nothing unread gets through.
    return checkAccess('admin', '(unnamed)', index);
  }
  const name = nameToken.text;
  const rest = tokens.slice(at + 1).filter((token) => token.text !== ';');
  const access = rest.length === 0 ? pragmaRule(name).read : pragmaRule(name).set;
  return checkAccess(access, name, index);
}

function checkAccess(access: PragmaAccess, pragma: string, index: number): string | undefined {
  if (access === 'everyone') return undefined;
  if (access === 'admin') return pragma;
  throw refuse(
    `PRAGMA ${pragma} is not allowed: it would bypass the replicated log, reach files outside the database, or change a connection every client shares`,
    index,
    { pragma },
  );
}
