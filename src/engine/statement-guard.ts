import { LitebaseError, type ErrorCode } from '../errors.js';
import { PRAGMA_RULES, pragmaRule, type PragmaAccess } from './pragma-allowlist.js';
import { sqlTokens, unquote } from './sql-tokens.js';

/**
 * The statement guard (docs/SECURITY.md): what no request may run, and what only an admin may.
 *
 * It reads the SQL with a tokenizer that follows SQLite's own (tokenize.c, in sql-tokens.ts) for
 * everything that can hide a word: comments, strings, quoted identifiers, parameters, blobs. It has to work on the text,
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

/**
 * Split SQL into tokens as SQLite's tokenizer would (sql-tokens.ts), so that a word SQLite sees is
 * a word here: words, quoted identifiers and strings lower-cased with their quotes removed, every
 * other token (numbers, blobs, parameters, operators) as written. Only run when a statement is
 * first prepared.
 */
export function tokenize(sql: string): Token[] {
  return sqlTokens(sql).map((token): Token => {
    const raw = sql.slice(token.start, token.end);
    switch (token.kind) {
      case 'word':
        return { kind: 'word', text: raw.toLowerCase() };
      case 'quoted':
      case 'string':
        return { kind: token.kind, text: unquote(raw).toLowerCase() };
      default:
        return { kind: 'other', text: raw };
    }
  });
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
