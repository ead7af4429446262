/**
 * What the Hrana layer reads in SQL text itself, before the engine sees it: parameters (to bind
 * Hrana's positional and named arguments the way SQLite numbers them), the statements of a
 * `sequence`, and transaction control (BEGIN/COMMIT/ROLLBACK, which a stream interprets; the
 * engine's statement guard refuses them). A small tokenizer after SQLite's tokenize.c: strings,
 * quoted identifiers and comments never hide a word or a parameter.
 */

export type TokenKind = 'word' | 'param' | 'string' | 'quoted' | 'semicolon' | 'other';

export interface Token {
  kind: TokenKind;
  /** The raw text (a word as written; a parameter with its prefix). */
  text: string;
  start: number;
  end: number;
}

const isDigit = (c: number): boolean => c >= 48 && c <= 57;
/** SQLite's IdChar: letters, digits, `_`, `$`, and every non-ASCII unit. */
const isIdChar = (c: number): boolean => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || isDigit(c) || c === 95 || c === 36 || c >= 0x80;
const isSpace = (c: number): boolean => c === 32 || (c >= 9 && c <= 13);

function skipWhile(sql: string, from: number, test: (c: number) => boolean): number {
  let i = from;
  while (i < sql.length && test(sql.charCodeAt(i))) i += 1;
  return i;
}

/** Where the quoted text opened at `start` ends (a doubled quote stands for one). */
function endOfQuoted(sql: string, start: number, close: string): number {
  let from = start + 1;
  for (;;) {
    const end = sql.indexOf(close, from);
    if (end < 0) return sql.length;
    if (close !== ']' && sql[end + 1] === close) {
      from = end + 2;
      continue;
    }
    return end + 1;
  }
}

export function tokenize(sql: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < sql.length) {
    const c = sql.charCodeAt(i);
    const start = i;
    const push = (kind: TokenKind, end: number): void => {
      tokens.push({ kind, text: sql.slice(start, end), start, end });
      i = end;
    };
    if (isSpace(c)) {
      i = skipWhile(sql, i, isSpace);
    } else if (sql.startsWith('--', i)) {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? sql.length : end + 1;
    } else if (sql.startsWith('/*', i)) {
      const end = sql.indexOf('*/', i + 2);
      i = end < 0 ? sql.length : end + 2;
    } else if (c === 39 /* ' */) {
      push('string', endOfQuoted(sql, i, "'"));
    } else if (c === 34 /* " */ || c === 96 /* ` */) {
      push('quoted', endOfQuoted(sql, i, sql[i] as string));
    } else if (c === 91 /* [ */) {
      push('quoted', endOfQuoted(sql, i, ']'));
    } else if (c === 59 /* ; */) {
      push('semicolon', i + 1);
    } else if (c === 63 /* ? */) {
      push('param', skipWhile(sql, i + 1, isDigit));
    } else if ((c === 58 /* : */ || c === 64 /* @ */ || c === 36) /* $ */ && isIdChar(sql.charCodeAt(i + 1))) {
      let end = skipWhile(sql, i + 1, isIdChar);
      // TCL-style names SQLite also accepts after `$`: `$a::b`, `$a(x)`.
      if (c === 36) {
        while (sql.startsWith('::', end)) end = skipWhile(sql, end + 2, isIdChar);
        if (sql[end] === '(') {
          const close = sql.indexOf(')', end);
          end = close < 0 ? sql.length : close + 1;
        }
      }
      push('param', end);
    } else if ((c === 120 || c === 88) /* x'..' */ && sql[i + 1] === "'") {
      push('string', endOfQuoted(sql, i + 1, "'"));
    } else if (isIdChar(c)) {
      push('word', skipWhile(sql, i, isIdChar));
    } else {
      push('other', i + 1);
    }
  }
  return tokens;
}

/** One parameter number of a statement: its name (with prefix; null for `?`), or a hole no parameter uses. */
export interface ParameterSlot {
  name: string | null;
  hole: boolean;
}

/**
 * The parameters of one statement as SQLite numbers them: slot i is parameter i+1. `?` takes the
 * next number, `?NNN` number NNN, a name its first use's number (the next one then).
 */
export function parameterSlots(sql: string): ParameterSlot[] {
  const slots: ParameterSlot[] = [];
  const byName = new Map<string, number>();
  for (const token of tokenize(sql)) {
    if (token.kind !== 'param') continue;
    if (token.text === '?') {
      slots.push({ name: null, hole: false });
      continue;
    }
    if (byName.has(token.text)) continue;
    if (token.text.startsWith('?')) {
      const index = Number(token.text.slice(1));
      if (!Number.isSafeInteger(index) || index < 1 || index > 32766) continue;
      while (slots.length < index) slots.push({ name: null, hole: true });
      slots[index - 1] = { name: token.text, hole: false };
      byName.set(token.text, index);
    } else {
      slots.push({ name: token.text, hole: false });
      byName.set(token.text, slots.length);
    }
  }
  return slots;
}

/**
 * Split SQL text into its statements (for `sequence`), each without its `;`. A trigger's body
 * (CREATE TRIGGER ... BEGIN ...; ...; END) stays one statement; CASE ... END inside it is counted.
 */
export function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  const tokens = tokenize(sql);
  let from: number | undefined;
  let words: string[] = [];
  let inTriggerBody = false;
  let caseDepth = 0;
  const finish = (end: number): void => {
    if (from !== undefined) statements.push(sql.slice(from, end).trim());
    from = undefined;
    words = [];
    inTriggerBody = false;
    caseDepth = 0;
  };
  for (const token of tokens) {
    if (token.kind === 'semicolon') {
      if (!inTriggerBody) finish(token.start);
      continue;
    }
    from ??= token.start;
    if (token.kind !== 'word') continue;
    const word = token.text.toLowerCase();
    words.push(word);
    if (word === 'begin' && words[0] === 'create' && words.includes('trigger')) inTriggerBody = true;
    else if (inTriggerBody && word === 'case') caseDepth += 1;
    else if (inTriggerBody && word === 'end') {
      if (caseDepth > 0) caseDepth -= 1;
      else inTriggerBody = false;
    }
  }
  finish(sql.length);
  return statements.filter((statement) => statement.length > 0);
}

export type TransactionControl =
  | { kind: 'begin'; mode: 'deferred' | 'immediate' | 'exclusive' | 'readonly' }
  | { kind: 'commit' }
  | { kind: 'rollback' }
  | { kind: 'savepoint' | 'release' | 'rollback_to'; name: string };

/** A savepoint's name as written: a bare word or a quoted identifier (quotes removed). */
function savepointName(token: Token | undefined): string | undefined {
  if (!token) return undefined;
  if (token.kind === 'word') return token.text;
  if (token.kind !== 'quoted') return undefined;
  const close = token.text[0] === '[' ? ']' : (token.text[0] as string);
  if (!token.text.endsWith(close) || token.text.length < 2) return undefined;
  const inner = token.text.slice(1, -1);
  return close === ']' ? inner : inner.split(close + close).join(close);
}

/** SAVEPOINT n, RELEASE [SAVEPOINT] n, ROLLBACK [TRANSACTION] TO [SAVEPOINT] n; undefined for anything else. */
function savepointControl(tokens: Token[]): TransactionControl | undefined {
  const words = tokens.map((token) => (token.kind === 'word' ? token.text.toLowerCase() : ''));
  const at = (index: number, word: string): boolean => words[index] === word;
  let kind: 'savepoint' | 'release' | 'rollback_to';
  let index: number;
  if (at(0, 'savepoint')) [kind, index] = ['savepoint', 1];
  else if (at(0, 'release')) [kind, index] = ['release', at(1, 'savepoint') ? 2 : 1];
  else if (at(0, 'rollback')) {
    index = at(1, 'transaction') ? 2 : 1;
    if (!at(index, 'to')) return undefined;
    index += at(index + 1, 'savepoint') ? 2 : 1;
    kind = 'rollback_to';
  } else return undefined;
  const name = savepointName(tokens[index]);
  return name !== undefined && tokens.length === index + 1 ? { kind, name } : undefined;
}

/**
 * BEGIN [DEFERRED|IMMEDIATE|EXCLUSIVE] [TRANSACTION], libSQL's BEGIN [TRANSACTION] READONLY,
 * COMMIT/END [TRANSACTION], ROLLBACK [TRANSACTION], and the savepoint statements; undefined for
 * anything else.
 */
export function transactionControl(sql: string): TransactionControl | undefined {
  const words: string[] = [];
  const tokens = tokenize(sql).filter((token) => token.kind !== 'semicolon');
  const savepoint = savepointControl(tokens);
  if (savepoint) return savepoint;
  for (const token of tokens) {
    if (token.kind === 'semicolon') continue;
    if (token.kind !== 'word') return undefined;
    words.push(token.text.toLowerCase());
  }
  const [first, ...rest] = words;
  const restWithout = (word: string): string[] => rest.filter((other) => other !== word);
  if (first === 'begin') {
    const modes = restWithout('transaction');
    if (rest.filter((word) => word === 'transaction').length > 1 || modes.length > 1) return undefined;
    const mode = modes[0] ?? 'deferred';
    if (mode === 'deferred' || mode === 'immediate' || mode === 'exclusive' || mode === 'readonly') return { kind: 'begin', mode };
    return undefined;
  }
  const onlyTransaction = rest.length === 0 || (rest.length === 1 && rest[0] === 'transaction');
  if ((first === 'commit' || first === 'end') && onlyTransaction) return { kind: 'commit' };
  if (first === 'rollback' && onlyTransaction) return { kind: 'rollback' };
  return undefined;
}

export function isExplain(sql: string): boolean {
  const first = tokenize(sql).find((token) => token.kind !== 'semicolon');
  return first?.kind === 'word' && first.text.toLowerCase() === 'explain';
}

/**
 * `PRAGMA foreign_keys = ON|OFF` (also with parentheses): libSQL clients send it around
 * migrations (`client.migrate`). Litebase keeps foreign keys on for every connection, so a stream
 * answers it without effect (docs/HRANA.md).
 */
export function isForeignKeysSetting(sql: string): boolean {
  const words = tokenize(sql)
    .filter((token) => token.kind !== 'semicolon')
    .map((token) => token.text.toLowerCase());
  const value = new Set(['on', 'off', 'true', 'false', 'yes', 'no', '0', '1']);
  if (words[0] !== 'pragma' || words[1] !== 'foreign_keys') return false;
  if (words.length === 4 && words[2] === '=') return value.has(words[3] as string);
  return words.length === 5 && words[2] === '(' && words[4] === ')' && value.has(words[3] as string);
}

/** What a stream needs to know of one statement's text before running it. */
export interface StatementText {
  control: TransactionControl | undefined;
  foreignKeysSetting: boolean;
  slots: ParameterSlot[];
}

const analyzed = new Map<string, StatementText>();
const ANALYZED_CAPACITY = 1000;

/** `transactionControl`, `isForeignKeysSetting` and `parameterSlots` of a statement, remembered for hot statements. */
export function analyzeStatement(sql: string): StatementText {
  let text = analyzed.get(sql);
  if (text) return text;
  text = { control: transactionControl(sql), foreignKeysSetting: isForeignKeysSetting(sql), slots: parameterSlots(sql) };
  if (sql.length <= 10_000) {
    if (analyzed.size >= ANALYZED_CAPACITY) analyzed.delete(analyzed.keys().next().value as string);
    analyzed.set(sql, text);
  }
  return text;
}
