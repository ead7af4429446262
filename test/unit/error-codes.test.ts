import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ERROR_AREAS, ERRORS, isErrorCode, sqliteErrorStatus, type ErrorCode, type ErrorSpec } from '../../src/error-codes.js';
import { badRequest, LitebaseError, unavailable } from '../../src/errors.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CODES = Object.keys(ERRORS) as ErrorCode[];
const spec = (code: ErrorCode): ErrorSpec => ERRORS[code];

interface DocRow {
  status: number | null;
  retryable: boolean;
  retryAfterSeconds: number | undefined;
  section: string;
}

/** The rows of docs/ERRORS.md's code tables: | `CODE` | HTTP | Retryable | Meaning | What to do |. */
function documentedCodes(): Map<string, DocRow> {
  const rows = new Map<string, DocRow>();
  let section = '';
  for (const line of readFileSync(path.join(ROOT, 'docs/ERRORS.md'), 'utf8').split('\n')) {
    const heading = /^## (.+)$/.exec(line);
    if (heading?.[1]) section = heading[1].trim();
    const row = /^\| `([A-Z][A-Z0-9_]*)` \| ([^|]+) \| ([^|]+) \|/.exec(line);
    if (!row?.[1] || !row[2] || !row[3]) continue;
    expect(rows.has(row[1]), `${row[1]} is listed twice in docs/ERRORS.md`).toBe(false);
    const status = row[2].trim();
    const retry = row[3].trim();
    expect(retry, `${row[1]}: retryable must be "yes", "yes (Retry-After: N)" or "no"`).toMatch(/^(yes|no)( \(Retry-After: \d+\))?$/);
    const after = /Retry-After: (\d+)/.exec(retry)?.[1];
    rows.set(row[1], {
      status: status === '—' ? null : Number(status),
      retryable: retry.startsWith('yes'),
      retryAfterSeconds: after === undefined ? undefined : Number(after),
      section,
    });
  }
  return rows;
}

describe('the error code table', () => {
  const documented = documentedCodes();

  it('every code in src/error-codes.ts is in docs/ERRORS.md', () => {
    expect(CODES.filter((code) => !documented.has(code))).toEqual([]);
  });

  it('every code in docs/ERRORS.md is in src/error-codes.ts', () => {
    expect([...documented.keys()].filter((code) => !isErrorCode(code))).toEqual([]);
  });

  it('docs/ERRORS.md gives each code its HTTP status, retryability, Retry-After and area', () => {
    for (const code of CODES) {
      const row = documented.get(code);
      if (!row) continue; // reported above
      const { status, retryable, retryAfterSeconds, area } = spec(code);
      expect({
        code,
        status: row.status,
        retryable: row.retryable,
        retryAfterSeconds: row.retryAfterSeconds,
        section: row.section,
      }).toEqual({
        code,
        status,
        retryable,
        retryAfterSeconds,
        section: ERROR_AREAS[area],
      });
    }
  });

  it('is consistent: UPPER_SNAKE codes, a meaning each, Retry-After only on retryable answers', () => {
    for (const code of CODES) {
      const { status, retryable, retryAfterSeconds, meaning } = spec(code);
      expect(code).toMatch(/^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/);
      expect(meaning.length, code).toBeGreaterThan(10);
      if (status !== null) expect(status >= 400 && status <= 599, code).toBe(true);
      if (retryAfterSeconds !== undefined)
        expect({ code, retryable, answered: status !== null }).toEqual({ code, retryable: true, answered: true });
    }
  });

  it('is importable on its own: src/error-codes.ts imports nothing (the client uses it)', () => {
    const text = readFileSync(path.join(ROOT, 'src/error-codes.ts'), 'utf8');
    expect(text).not.toMatch(/^\s*(import|export\s+\*|export\s+\{[^}]*\}\s+from)\b/m);
  });
});

describe('LitebaseError takes its status and Retry-After from the table', () => {
  it('uses the row by default', () => {
    const error = new LitebaseError('OBJECT_STORE_UNAVAILABLE', 'the store did not answer');
    expect([error.status, error.retryAfterSeconds]).toEqual([503, 1]);
    expect([new LitebaseError('BACKUP_FAILED', 'x').retryAfterSeconds, new LitebaseError('TOO_MANY_ROWS', 'x').status]).toEqual([5, 422]);
    expect(new LitebaseError('KEYS_UNREADABLE', 'x').retryAfterSeconds).toBeUndefined();
    expect([unavailable('LOG_UNAVAILABLE', 'x').status, badRequest('INVALID_TIMESTAMP', 'x').status]).toEqual([503, 400]);
  });

  it('keeps what a site gives, and 500 for codes no server answers with and for SQLite codes', () => {
    expect(new LitebaseError('SIGNATURE_CACHE_FULL', 'x', { retryAfterSeconds: 7 }).retryAfterSeconds).toBe(7);
    expect(new LitebaseError('OUTPUT_EXISTS', 'x').status).toBe(500);
    expect(new LitebaseError('SQLITE_CONSTRAINT_UNIQUE', 'x').status).toBe(500);
    expect(new LitebaseError('SQLITE_BUSY', 'x', { status: sqliteErrorStatus('SQLITE_BUSY') }).status).toBe(503);
    expect([sqliteErrorStatus('SQLITE_IOERR_WRITE'), sqliteErrorStatus('SQLITE_CONSTRAINT_UNIQUE')]).toEqual([503, 400]);
  });
});

/** Codes that are not ours and may appear where ours do: Node's, SQLite's, fastify's, env var names. */
const NOT_OURS = /^(E[A-Z0-9]+|EAI_[A-Z]+|ERR_[A-Z0-9_]+|HPE_[A-Z_]+|SQLITE_[A-Z_]+|FST_ERR_[A-Z_]+|LITEBASE_[A-Z0-9_]+)$/;

/**
 * Where a code literal is given or compared in src/: the first argument of `new ...Error(`, of the
 * error helpers and of the wrappers that take a code; `code: 'X'`, `code = 'X'`; `code === 'X'`;
 * the default code of a conditional (`error.code : 'X'`, `?? 'X'`).
 */
const CODE_SITES = [
  /\bnew\s+[A-Za-z]*Error\(\s*'([A-Z][A-Z0-9_]*)'/g,
  /\b(?:badRequest|notFound|conflict|unavailable|refuse)\(\s*'([A-Z][A-Z0-9_]*)'/g,
  /\b(?:formatError|quickCheckFile)\([^,()]+,\s*'([A-Z][A-Z0-9_]*)'/g,
  /\bcode\??:\s*(?:[A-Za-z]+\s*=\s*)?'([A-Z][A-Z0-9_]*)'/g,
  /\bcode\s*=\s*'([A-Z][A-Z0-9_]*)'/g,
  /\bcode\)?\s*[!=]==?\s*'([A-Z][A-Z0-9_]*)'/g,
  /\.code\s*:\s*'([A-Z][A-Z0-9_]*)'/g,
  /\bcode\s*\?\?\s*'([A-Z][A-Z0-9_]*)'/g,
];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(file);
    return /\.(ts|js|mjs|cjs)$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [file] : [];
  });
}

describe('src/ uses only codes from the table', () => {
  it('finds no code literal at an error site that the table lacks (tsc checks the rest; this catches casts and JS)', () => {
    const unknown: string[] = [];
    let sites = 0;
    for (const file of sourceFiles(path.join(ROOT, 'src'))) {
      const text = readFileSync(file, 'utf8');
      for (const pattern of CODE_SITES) {
        for (const match of text.matchAll(pattern)) {
          const code = match[1] ?? '';
          if (NOT_OURS.test(code)) continue;
          sites += 1;
          if (!isErrorCode(code)) {
            const line = text.slice(0, match.index).split('\n').length;
            unknown.push(`${path.relative(ROOT, file)}:${line} ${code}`);
          }
        }
      }
    }
    expect(unknown).toEqual([]);
    // The patterns still find the sites (about 200 today): a scan that matches nothing checks nothing.
    expect(sites).toBeGreaterThan(150);
  });
});
