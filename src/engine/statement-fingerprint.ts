import { createHash } from 'node:crypto';
import { sqlTokens, type SqlToken } from './sql-tokens.js';

/**
 * Statement fingerprints (docs/API.md "Statement metrics"): one statement's SQL with what varies
 * between its runs taken out, so that `SELECT * FROM t WHERE id = 1` and `select * from t where
 * id=2` are counted as one statement. Read with SQLite's tokenizer (sql-tokens.ts), never with
 * regular expressions, so a quote or a comment cannot make a literal look like SQL:
 *
 * - string, number and blob literals become `?` (a sign before a number goes with it: `x = -1`
 *   is `x = ?`, `x - 1` stays `x - ?`);
 * - a list of literals and parameters after IN becomes `IN (?)`, and after VALUES several rows of
 *   them become the first row and `, ...`;
 * - comments go, white space becomes one space, and trailing `;` are dropped;
 * - keywords, identifiers (quoted or not) and parameters (`?`, `?3`, `:name`, `@name`, `$name`)
 *   stay. Keywords and unquoted identifiers are compared without case (SQLite ignores it), and the
 *   text shown is the first one seen.
 */
export interface StatementFingerprint {
  /** 16 hex digits of SHA-256 over the normalized text (case folded): the statement's stable id. */
  readonly id: string;
  /** The normalized text, as written the first time it was seen (at most MAX_TEXT characters). */
  readonly text: string;
}

/** Normalized texts longer than this are cut (the id still covers the whole statement). */
const MAX_TEXT = 2000;

/** SQLite's keywords (https://sqlite.org/lang_keywords.html), lower-cased. */
const KEYWORDS = new Set(
  (
    'abort action add after all alter always analyze and as asc attach autoincrement before begin between by cascade case ' +
    'cast check collate column commit conflict constraint create cross current current_date current_time ' +
    'current_timestamp database default deferrable deferred delete desc detach distinct do drop each else end escape ' +
    'except exclude exclusive exists explain fail filter first following for foreign from full generated glob group ' +
    'groups having if ignore immediate in index indexed initially inner insert instead intersect into is isnull join ' +
    'key last left like limit match materialized natural no not nothing notnull null nulls of offset on or order ' +
    'others outer over partition plan pragma preceding primary query raise range recursive references regexp reindex ' +
    'release rename replace restrict returning right rollback row rows savepoint select set table temp temporary then ' +
    'ties to transaction trigger unbounded union unique update using vacuum values view virtual when where window ' +
    'with without'
  ).split(' '),
);
/** Keywords that end a value: a `-` after them subtracts. */
const VALUE_END_KEYWORDS = new Set(['end', 'null', 'current_date', 'current_time', 'current_timestamp']);
/** Keywords that are also SQL functions: written `replace(...)`, not `replace (...)`. */
const FUNCTION_KEYWORDS = new Set(['replace', 'like', 'glob', 'match', 'regexp']);

type PartKind = 'value' | 'keyword' | 'word' | 'quoted' | 'operator';

interface Part {
  kind: PartKind;
  /** As written (a literal as `?`). */
  text: string;
  /** As compared: keywords and words lower-cased. */
  key: string;
}

const VALUE: Part = { kind: 'value', text: '?', key: '?' };
const isLiteral = (token: SqlToken): boolean =>
  !token.illegal && (token.kind === 'string' || token.kind === 'number' || token.kind === 'blob');
const isOperator = (part: Part | undefined, text: string): boolean => part?.kind === 'operator' && part.key === text;

/** True when a sign at this point starts a value (after an operator, a keyword, or nothing) rather than subtracting. */
function signStartsValue(previous: Part | undefined): boolean {
  if (previous === undefined) return true;
  if (previous.kind === 'operator') return previous.key !== ')';
  if (previous.kind === 'keyword') return !VALUE_END_KEYWORDS.has(previous.key);
  return false;
}

function toParts(sql: string): Part[] {
  const tokens = sqlTokens(sql);
  const parts: Part[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as SqlToken;
    const raw = sql.slice(token.start, token.end);
    if (isLiteral(token)) {
      parts.push(VALUE);
    } else if (token.kind === 'param') {
      parts.push({ kind: 'value', text: raw, key: raw });
    } else if (token.kind === 'word') {
      const key = raw.toLowerCase();
      parts.push({ kind: KEYWORDS.has(key) ? 'keyword' : 'word', text: raw, key });
    } else if (token.kind === 'quoted') {
      parts.push({ kind: 'quoted', text: raw, key: raw });
    } else if ((raw === '-' || raw === '+') && tokens[i + 1] !== undefined && isLiteral(tokens[i + 1] as SqlToken)) {
      // A sign that starts a value belongs to the literal after it: `-1` and `1` are both `?`.
      if (signStartsValue(parts[parts.length - 1])) continue;
      parts.push({ kind: 'operator', text: raw, key: raw });
    } else {
      parts.push({ kind: 'operator', text: raw, key: raw });
    }
  }
  while (isOperator(parts[0], ';')) parts.shift();
  while (isOperator(parts[parts.length - 1], ';')) parts.pop();
  return parts;
}

/** `( value [, value]... )` starting at `at`: the index just past its `)`, or -1. */
function valueList(parts: readonly Part[], at: number): number {
  if (!isOperator(parts[at], '(')) return -1;
  let i = at + 1;
  for (;;) {
    if (parts[i]?.kind !== 'value') return -1;
    i += 1;
    if (isOperator(parts[i], ')')) return i + 1;
    if (!isOperator(parts[i], ',')) return -1;
    i += 1;
  }
}

const OPEN: Part = { kind: 'operator', text: '(', key: '(' };
const CLOSE: Part = { kind: 'operator', text: ')', key: ')' };
const COMMA: Part = { kind: 'operator', text: ',', key: ',' };
const MORE: Part = { kind: 'operator', text: '...', key: '...' };

/** IN (1, 2, 3) → IN (?); VALUES (?, ?), (?, ?) → VALUES (?, ?), ... */
function collapseLists(parts: readonly Part[]): Part[] {
  const out: Part[] = [];
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as Part;
    out.push(part);
    if (part.kind !== 'keyword') continue;
    if (part.key === 'in') {
      const end = valueList(parts, i + 1);
      if (end < 0) continue;
      out.push(OPEN, VALUE, CLOSE);
      i = end - 1;
    } else if (part.key === 'values') {
      let end = valueList(parts, i + 1);
      if (end < 0) continue;
      out.push(...parts.slice(i + 1, end));
      let rows = 1;
      for (;;) {
        const next = isOperator(parts[end], ',') ? valueList(parts, end + 1) : -1;
        if (next < 0) break;
        end = next;
        rows += 1;
      }
      if (rows > 1) out.push(COMMA, MORE);
      i = end - 1;
    }
  }
  return out;
}

/** The parts as text: one space between them, none inside `a.b`, `f(x)`, before `,` `)` `;` or after `(`. */
function join(parts: readonly Part[], field: 'text' | 'key'): string {
  let out = '';
  let previous: Part | undefined;
  for (const part of parts) {
    const text = part[field];
    if (previous !== undefined) {
      const tight =
        previous.key === '(' ||
        previous.key === '.' ||
        part.key === ',' ||
        part.key === ')' ||
        part.key === ';' ||
        part.key === '.' ||
        (part.key === '(' &&
          (previous.kind === 'word' || previous.kind === 'quoted' || (previous.kind === 'keyword' && FUNCTION_KEYWORDS.has(previous.key))));
      if (!tight) out += ' ';
    }
    out += text;
    previous = part;
  }
  return out;
}

/** Normalize one statement's SQL (no cache: see `fingerprint`). */
export function normalizeStatement(sql: string): StatementFingerprint {
  const parts = collapseLists(toParts(sql));
  const key = join(parts, 'key');
  const text = join(parts, 'text');
  const id = createHash('sha256').update(key).digest('hex').slice(0, 16);
  return { id, text: text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT - 1)}…` : text };
}

/**
 * Fingerprints by SQL text: a statement run again pays one map lookup, not a tokenization. Bounded
 * in entries and in the characters of the SQL texts it keeps; when full, the least recently used
 * go first, approximately ("second chance": an entry used since it was last passed over is moved
 * to the back once instead of evicted). A hit only sets a flag: moving the entry in the map on
 * every hit (delete, then set again) costs about 3 µs once the map holds a thousand texts.
 */
export class FingerprintCache {
  private readonly entries = new Map<string, { fingerprint: StatementFingerprint; used: boolean }>();
  private chars = 0;

  constructor(
    private readonly maxEntries = 4096,
    private readonly maxChars = 8 * 1024 * 1024,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  fingerprint(sql: string): StatementFingerprint {
    const cached = this.entries.get(sql);
    if (cached !== undefined) {
      cached.used = true;
      return cached.fingerprint;
    }
    const made = normalizeStatement(sql);
    if (sql.length > this.maxChars) return made;
    this.entries.set(sql, { fingerprint: made, used: false });
    this.chars += sql.length;
    // Each pass over an entry clears its flag, so this ends within one turn of the map.
    while (this.entries.size > this.maxEntries || this.chars > this.maxChars) {
      const [oldest, slot] = this.entries.entries().next().value as [string, { fingerprint: StatementFingerprint; used: boolean }];
      this.entries.delete(oldest);
      if (slot.used && oldest !== sql) {
        slot.used = false;
        this.entries.set(oldest, slot);
      } else {
        this.chars -= oldest.length;
      }
    }
    return made;
  }
}
