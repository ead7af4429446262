/**
 * Where one SQL statement ends in text typed into the shell, and which statements are transaction
 * control (BEGIN, COMMIT, ROLLBACK) that the shell runs through the interactive transaction routes.
 *
 * The end of a statement is found as SQLite's own shell finds it: `sqlite3_complete()`
 * (complete.c) ported token for token. A `;` ends a statement unless it is inside a string, a
 * quoted identifier, a comment, or the body of a CREATE TRIGGER (which ends at `END;`).
 */

/** What the statement-end state machine sees; comments count as white space. */
export type TokenKind = 'semi' | 'space' | 'word' | 'other';

export interface SqlToken {
  kind: TokenKind;
  start: number;
  end: number;
  /** Lower-cased for words; the raw text otherwise. */
  text: string;
  /** A string, quoted identifier or block comment that the text ends inside of. */
  unterminated?: true;
}

const isSpace = (c: string): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v';
/** SQLite's IdChar: letters, digits, `_`, `$`, and anything beyond ASCII. */
const isIdChar = (c: string): boolean => /[A-Za-z0-9_$]/.test(c) || c.charCodeAt(0) >= 0x80;

/** The tokens of `sql` as complete.c reads them: just enough to tell where statements end. */
export function tokenize(sql: string): SqlToken[] {
  const tokens: SqlToken[] = [];
  let i = 0;
  const push = (kind: TokenKind, end: number, unterminated = false) => {
    const raw = sql.slice(i, end);
    tokens.push({
      kind,
      start: i,
      end,
      text: kind === 'word' ? raw.toLowerCase() : raw,
      ...(unterminated ? { unterminated: true as const } : {}),
    });
    i = end;
  };
  /** Up to and including `closer` searched from `from`, or to the end of the text. */
  const through = (closer: string, from: number): [number, boolean] => {
    const at = sql.indexOf(closer, from);
    return at < 0 ? [sql.length, true] : [at + closer.length, false];
  };
  while (i < sql.length) {
    const c = sql[i] as string;
    if (c === ';') {
      push('semi', i + 1);
    } else if (isSpace(c)) {
      let j = i + 1;
      while (j < sql.length && isSpace(sql[j] as string)) j += 1;
      push('space', j);
    } else if (c === '/' && sql[i + 1] === '*') {
      const [end, open] = through('*/', i + 2);
      push('space', end, open);
    } else if (c === '-' && sql[i + 1] === '-') {
      // A line comment runs to the end of its line; at the end of the text it is simply over.
      const at = sql.indexOf('\n', i + 2);
      push('space', at < 0 ? sql.length : at + 1);
    } else if (c === '[') {
      const [end, open] = through(']', i + 1);
      push('other', end, open);
    } else if (c === '"' || c === "'" || c === '`') {
      // A doubled quote reads as two strings back to back, which changes nothing here.
      const [end, open] = through(c, i + 1);
      push('other', end, open);
    } else if (isIdChar(c)) {
      let j = i + 1;
      while (j < sql.length && isIdChar(sql[j] as string)) j += 1;
      push('word', j);
    } else {
      push('other', i + 1);
    }
  }
  return tokens;
}

/** complete.c's states and its transition table, by token class. */
enum State {
  Start = 1,
  Normal = 2,
  Explain = 3,
  Create = 4,
  Trigger = 5,
  Semi = 6,
  End = 7,
}
type TokenClass = 'semi' | 'space' | 'other' | 'explain' | 'create' | 'temp' | 'trigger' | 'end';
const TRANSITIONS: Record<State, Record<TokenClass, State>> = {
  [State.Start]: { semi: 1, space: 1, other: 2, explain: 3, create: 4, temp: 2, trigger: 2, end: 2 },
  [State.Normal]: { semi: 1, space: 2, other: 2, explain: 2, create: 2, temp: 2, trigger: 2, end: 2 },
  [State.Explain]: { semi: 1, space: 3, other: 3, explain: 2, create: 4, temp: 2, trigger: 2, end: 2 },
  [State.Create]: { semi: 1, space: 4, other: 2, explain: 2, create: 2, temp: 4, trigger: 5, end: 2 },
  [State.Trigger]: { semi: 6, space: 5, other: 5, explain: 5, create: 5, temp: 5, trigger: 5, end: 5 },
  [State.Semi]: { semi: 6, space: 6, other: 5, explain: 5, create: 5, temp: 5, trigger: 5, end: 7 },
  [State.End]: { semi: 1, space: 7, other: 5, explain: 5, create: 5, temp: 5, trigger: 5, end: 5 },
};
const KEYWORD_CLASSES: Record<string, TokenClass> = {
  explain: 'explain',
  create: 'create',
  temp: 'temp',
  temporary: 'temp',
  trigger: 'trigger',
  end: 'end',
};

function classOf(token: SqlToken): TokenClass {
  if (token.kind === 'word') return KEYWORD_CLASSES[token.text] ?? 'other';
  return token.kind;
}

export interface SplitResult {
  /** Complete statements, trimmed, without their final `;`; empty ones (`;;`, a lone comment) are left out. */
  statements: string[];
  /** The text after the last complete statement: the start of the next one, or nothing but blanks. */
  rest: string;
  /** Whether `rest` holds the start of a statement (anything besides white space and comments). */
  pending: boolean;
}

/** Cut `text` after each `;` that ends a statement. */
export function splitStatements(text: string): SplitResult {
  const statements: string[] = [];
  let state: State = State.Start;
  let statementStart = 0;
  let hasContent = false;
  for (const token of tokenize(text)) {
    if (token.unterminated) return { statements, rest: text.slice(statementStart), pending: true };
    const kind = classOf(token);
    state = TRANSITIONS[state][kind];
    if (kind === 'semi' && state === State.Start) {
      if (hasContent) statements.push(text.slice(statementStart, token.start).trim());
      statementStart = token.end;
      hasContent = false;
    } else if (kind !== 'space') {
      hasContent = true;
    }
  }
  return { statements, rest: text.slice(statementStart), pending: hasContent };
}

/** The statements the shell maps onto the interactive transaction routes instead of sending. */
export type TransactionControl = 'begin' | 'commit' | 'rollback';

const BEGIN_MODES = new Set(['deferred', 'immediate', 'exclusive']);

/**
 * `BEGIN [DEFERRED|IMMEDIATE|EXCLUSIVE] [TRANSACTION [name]]`, `COMMIT|END [TRANSACTION [name]]`,
 * `ROLLBACK [TRANSACTION [name]]`. `ROLLBACK TO`, SAVEPOINT and RELEASE are not: they go to the
 * server as written (which refuses them today; see docs/SHELL.md).
 */
export function transactionControl(statement: string): TransactionControl | null {
  const tokens = tokenize(statement).filter((token) => token.kind !== 'space');
  if (tokens.length > 0 && tokens[tokens.length - 1]?.kind === 'semi') tokens.pop();
  if (!tokens.every((token) => token.kind === 'word')) return null;
  const words = tokens.map((token) => token.text);
  const [first] = words;
  let rest = words.slice(1);
  let control: TransactionControl;
  if (first === 'begin') {
    control = 'begin';
    if (rest[0] !== undefined && BEGIN_MODES.has(rest[0])) rest = rest.slice(1);
  } else if (first === 'commit' || first === 'end') {
    control = 'commit';
  } else if (first === 'rollback') {
    control = 'rollback';
  } else {
    return null;
  }
  if (rest.length === 0) return control;
  // Only `TRANSACTION` with an optional name may follow.
  return rest[0] === 'transaction' && rest.length <= 2 ? control : null;
}
