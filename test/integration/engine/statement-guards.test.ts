import { existsSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PRAGMA_RULES } from '../../../src/engine/pragma-allowlist.js';
import { guardStatement } from '../../../src/engine/statement-guard.js';
import { Prng } from '../../support/golden-segments.js';
import { tempDir, TestServer } from '../../support/server.js';

/**
 * Statement guards (issue 6, item 3; docs/SECURITY.md): what a key may run, on a Primary and on a
 * Replica, against real server processes. Every refused request must leave the database as it was.
 */
let primary: TestServer;
let replica: TestServer;
const keys = { reader: '', writer: '', admin: '', adminElsewhere: '' };

const SCHEMA = [
  'CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT UNIQUE)',
  'CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER NOT NULL REFERENCES parent(id), note TEXT)',
  'CREATE INDEX child_parent ON child(parent_id)',
];

beforeAll(async () => {
  primary = await TestServer.start({ nodeId: 'g1' });
  expect((await primary.request('POST', '/v1/databases', { name: 'app' })).status).toBe(201);
  expect((await primary.request('POST', '/v1/databases', { name: 'other' })).status).toBe(201);
  const created = await primary.request('POST', '/v1/databases/app/query', {
    statements: [
      ...SCHEMA.map((sql) => ({ sql })),
      { sql: "INSERT INTO parent(id, name) VALUES (1, 'a'), (2, 'b')" },
      { sql: "INSERT INTO child(parent_id, note) VALUES (1, 'x'), (2, 'y')" },
    ],
  });
  expect(created.status, JSON.stringify(created.body)).toBe(200);
  const create = async (databases: string[], actions: string[]): Promise<string> => {
    const response = await primary.request('POST', '/v1/keys', { name: `guards ${actions.join('+')}`, databases, actions });
    expect(response.status, JSON.stringify(response.body)).toBe(201);
    return response.body.key.secret as string;
  };
  keys.reader = await create(['app'], ['read']);
  keys.writer = await create(['app'], ['read', 'write']);
  keys.admin = await create(['app'], ['read', 'write', 'admin']);
  // Admin of another database only: it may not even read "app".
  keys.adminElsewhere = await create(['other'], ['read', 'write', 'admin']);
  replica = await TestServer.start({ dataDir: primary.dataDir, nodeId: 'g2' });
}, 60_000);

afterAll(async () => {
  await replica?.stop();
  await primary?.stop();
  primary?.cleanup();
});

type Node = TestServer;

async function query(
  node: Node,
  key: string,
  statements: Array<string | { sql: string; params?: unknown[] }>,
  extra: Record<string, unknown> = {},
) {
  const body = { statements: statements.map((statement) => (typeof statement === 'string' ? { sql: statement } : statement)), ...extra };
  return node.request('POST', '/v1/databases/app/query', body, { authorization: `Bearer ${key}` });
}

/** The Primary's position and rolling checksum: a refused request must change neither. */
async function fingerprint(): Promise<{ position: string; checksum: string }> {
  const response = await primary.request('GET', '/v1/databases/app');
  expect(response.status).toBe(200);
  return { position: response.body.database.position, checksum: response.body.database.checksum };
}

/** The replica has applied everything the Primary has, so both answer from the same state. */
async function replicaCaughtUp(): Promise<void> {
  const { position } = await fingerprint();
  const response = await query(replica, primary.key, ['SELECT 1'], { minPosition: position });
  expect(response.status, JSON.stringify(response.body)).toBe(200);
}

describe('read-only keys', () => {
  // What better-sqlite3 (sqlite3_stmt_readonly) calls read-only, checked below on the same schema.
  const READS = [
    'SELECT * FROM parent',
    'WITH x(n) AS (SELECT count(*) FROM child) SELECT n FROM x',
    'EXPLAIN QUERY PLAN SELECT * FROM child WHERE parent_id = 1',
    'PRAGMA table_info(child)',
    'PRAGMA user_version',
    "SELECT name FROM pragma_index_list('child')",
  ];
  const WRITES = [
    "INSERT INTO parent(name) VALUES ('c')",
    "UPDATE parent SET name = 'z' WHERE id = 1",
    'DELETE FROM child RETURNING id',
    'CREATE TABLE extra(a)',
    'DROP INDEX child_parent',
    'PRAGMA user_version = 9',
    'ANALYZE',
    'REINDEX',
  ];

  it('better-sqlite3 reports these reads read-only and these writes not', () => {
    const db = new Database(':memory:');
    for (const sql of SCHEMA) db.exec(sql);
    for (const sql of READS) expect(db.prepare(sql).readonly, sql).toBe(true);
    for (const sql of WRITES) expect(db.prepare(sql).readonly, sql).toBe(false);
    db.close();
  });

  it('runs only read-only statements, on the Primary and on a Replica, in both modes', async () => {
    const before = await fingerprint();
    await replicaCaughtUp();
    for (const node of [primary, replica]) {
      for (const sql of READS) {
        const response = await query(node, keys.reader, [sql]);
        expect(response.status, `${sql}: ${JSON.stringify(response.body)}`).toBe(200);
      }
      for (const sql of WRITES) {
        const refused = await query(node, keys.reader, ['SELECT 1', sql]);
        expect(refused.status, sql).toBe(403);
        expect(refused.body.error.code, sql).toBe('PERMISSION_DENIED');
        const independent = await query(node, keys.reader, ['SELECT 1', sql], { mode: 'independent' });
        if (node === primary) {
          expect(independent.status, sql).toBe(200);
          expect(independent.body.results[0].rows).toEqual([[1]]);
          expect(independent.body.results[1].error.code, sql).toBe('PERMISSION_DENIED');
        } else {
          // A Replica answers a request only if it can run all of it; this one it would forward.
          expect(independent.status, sql).toBe(403);
          expect(independent.body.error.code, sql).toBe('PERMISSION_DENIED');
        }
      }
      const transaction = await node.request('POST', '/v1/databases/app/transactions', {}, { authorization: `Bearer ${keys.reader}` });
      expect(transaction.status).toBe(403);
    }
    expect(await fingerprint()).toEqual(before);
  });
});

describe('statements that reach outside the database', () => {
  const OUTSIDE = (target: string) => [
    `ATTACH '${target}' AS x`,
    `/* hidden */ ATTACH DATABASE 'file:${target}?mode=rwc' AS x`,
    'DETACH x',
    'VACUUM',
    `VACUUM INTO '${target}'`,
    `-- a comment\nVACUUM main INTO '${target}'`,
    "SELECT load_extension('/tmp/evil.so')",
    "SELECT load_extension/**/('/tmp/evil.so')",
    'SELECT "load_extension"(\'/tmp/evil.so\')',
    'CREATE TEMP TABLE shadow(a)',
    'CREATE TEMPORARY VIEW parent AS SELECT 1 AS id',
    'CREATE TABLE "temp".shadow(a)',
    'CREATE TRIGGER temp.t AFTER INSERT ON parent BEGIN SELECT 1; END',
    "PRAGMA temp_store_directory = '/tmp'",
    'PRAGMA journal_mode = DELETE',
    'PRAGMA/**/"main".[journal_mode]=DELETE',
    "PRAGMA 'wal_checkpoint'",
    'PRAGMA writable_schema = ON',
    'PRAGMA schema_version = 1',
    'EXPLAIN PRAGMA synchronous = FULL',
    // SQLite skips empty statements in front.
    `;;ATTACH '${target}' AS x`,
    ' ; /* */ ; PRAGMA journal_mode = MEMORY',
  ];

  it('are refused for every key, the root key included, and create no file', async () => {
    const before = await fingerprint();
    const target = path.join(tempDir('litebase-outside-'), 'copy.db');
    for (const key of [keys.reader, keys.writer, keys.admin, primary.key]) {
      for (const node of [primary, replica]) {
        for (const sql of OUTSIDE(target)) {
          const response = await query(node, key, [sql]);
          expect(response.status, sql).toBe(400);
          expect(response.body.error.code, sql).toBe('STATEMENT_NOT_ALLOWED');
          expect(response.body.error.statement, sql).toBe(0);
          expect(JSON.stringify(response.body), sql).not.toMatch(/at .*\.js:\d+/);
        }
      }
    }
    for (const sql of [';COMMIT', ' ; ;ROLLBACK', '/* x */ END', 'EXPLAIN BEGIN', '-- c\nSAVEPOINT a']) {
      const response = await query(primary, primary.key, ["INSERT INTO parent(name) VALUES ('never')", sql]);
      expect(response.status, sql).toBe(400);
      expect(response.body.error, sql).toMatchObject({ code: 'TRANSACTION_CONTROL_NOT_ALLOWED', statement: 1 });
    }
    // The same inside a transaction after a write: nothing of the request is applied.
    const mixed = await query(primary, keys.admin, ["INSERT INTO parent(name) VALUES ('never')", `VACUUM INTO '${target}'`]);
    expect(mixed.status).toBe(400);
    expect(mixed.body.error.statement).toBe(1);
    expect(existsSync(target)).toBe(false);
    expect(existsSync(path.dirname(target) + '/copy.db-journal')).toBe(false);
    expect(await fingerprint()).toEqual(before);
  });

  it('has no SQL function or table that reads or writes files', async () => {
    const before = await fingerprint();
    for (const sql of [
      "SELECT readfile('/etc/passwd')",
      "SELECT writefile('/tmp/litebase-x', 'x')",
      "SELECT edit('x', 'vi')",
      'SELECT * FROM sqlite_dbpage',
      "SELECT * FROM zipfile('/tmp/x.zip')",
      "SELECT * FROM fsdir('/')",
      "SELECT sqlite_attach('/tmp/x.db', 'x', NULL)",
      "SELECT fts3_tokenizer('evil', x'0000000000000000')",
    ]) {
      const response = await query(primary, primary.key, [sql]);
      expect(response.status, sql).toBe(400);
      expect(response.body.error.code, sql).toMatch(/^SQLITE_/);
    }
    expect(await fingerprint()).toEqual(before);
  });
});

describe('PRAGMA allowlist', () => {
  const ALLOWED = [
    'PRAGMA table_info(child)',
    'PRAGMA table_xinfo("child")',
    'PRAGMA main.index_list(child)',
    "PRAGMA index_info('child_parent')",
    'PRAGMA index_xinfo(child_parent)',
    'PRAGMA foreign_key_list(child)',
    'PRAGMA foreign_key_check',
    'PRAGMA integrity_check',
    'PRAGMA quick_check(child)',
    'PRAGMA table_list',
    'PRAGMA user_version',
    'PRAGMA application_id',
    'PRAGMA schema_version',
    'PRAGMA page_count',
    'PRAGMA page_size',
    'PRAGMA freelist_count',
    'PRAGMA foreign_keys',
    'PRAGMA compile_options',
    'PRAGMA collation_list',
    'PRAGMA function_list',
    'PRAGMA pragma_list',
    "EXPLAIN QUERY PLAN SELECT * FROM pragma_table_info('child')",
    "SELECT name, type FROM pragma_table_info('child') ORDER BY cid",
    "SELECT * FROM main.pragma_foreign_key_list('child')",
  ];
  const ADMIN_ONLY: Array<[string, string]> = [
    ['PRAGMA database_list', 'database_list'],
    ['SELECT file FROM pragma_database_list', 'database_list'],
    ['SELECT * FROM "PRAGMA_DATABASE_LIST"', 'database_list'],
    ["SELECT * FROM 'pragma_database_list'", 'database_list'],
    ['SELECT * FROM [pragma_cache_size]', 'cache_size'],
    ['PRAGMA cache_size', 'cache_size'],
    ['PRAGMA busy_timeout', 'busy_timeout'],
    ['PRAGMA optimize', 'optimize'],
    ['PRAGMA no_such_pragma', 'no_such_pragma'],
  ];

  it('covers every PRAGMA of the bundled SQLite', () => {
    const db = new Database(':memory:');
    const names = (db.pragma('pragma_list') as Array<{ name: string }>).map((row) => row.name).sort();
    db.close();
    expect(names.filter((name) => !PRAGMA_RULES.has(name))).toEqual([]);
  });

  it('lets every key run the allowlisted PRAGMAs, on both nodes', async () => {
    await replicaCaughtUp();
    for (const node of [primary, replica]) {
      for (const sql of ALLOWED) {
        const response = await query(node, keys.reader, [sql]);
        expect(response.status, `${sql}: ${JSON.stringify(response.body)}`).toBe(200);
      }
    }
    const columns = await query(replica, keys.reader, ["SELECT name FROM pragma_table_info('child') ORDER BY cid"]);
    expect(columns.body.results[0].rows).toEqual([['id'], ['parent_id'], ['note']]);
  });

  it('keeps the rest for admin keys, with the pragma named, even when an admin prepared it first', async () => {
    for (const node of [primary, replica]) {
      for (const [sql, pragma] of ADMIN_ONLY) {
        // An admin (or root) runs it first, so the prepared statement is in the node's cache. (Some
        // write through the log: PRAGMA optimize runs ANALYZE on the Primary.)
        for (const key of [keys.admin, primary.key]) {
          const allowed = await query(node, key, [sql]);
          expect(allowed.status, `${sql}: ${JSON.stringify(allowed.body)}`).toBe(200);
        }
        const before = await fingerprint();
        for (const key of [keys.reader, keys.writer, keys.adminElsewhere]) {
          const refused = await query(node, key, ['SELECT 1', sql]);
          // The admin of another database may not even read this one.
          if (key === keys.adminElsewhere) {
            expect(refused.status).toBe(403);
            expect(refused.body.error.code).toBe('PERMISSION_DENIED');
            continue;
          }
          expect(refused.status, sql).toBe(403);
          expect(refused.body.error).toMatchObject({ code: 'PRAGMA_NOT_ALLOWED', pragma, statement: 1 });
          const independent = await query(node, key, [sql, 'SELECT 2'], { mode: 'independent' });
          if (node === primary) {
            expect(independent.body.results[0].error.code, sql).toBe('PRAGMA_NOT_ALLOWED');
            expect(independent.body.results[1].rows).toEqual([[2]]);
          } else {
            expect(independent.body.error).toMatchObject({ code: 'PRAGMA_NOT_ALLOWED', pragma, statement: 0 });
          }
        }
        expect(await fingerprint(), sql).toEqual(before);
      }
    }
    // Only an admin learns where the node keeps its files.
    const files = await query(primary, keys.admin, ['SELECT file FROM pragma_database_list']);
    expect(String(files.body.results[0].rows[0][0])).toContain(primary.localDir);
  });

  it('a writer sets user_version (it goes through the log) and defers foreign keys within a transaction', async () => {
    const set = await query(primary, keys.writer, ['PRAGMA user_version = 7']);
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    const deferred = await query(primary, keys.writer, [
      'PRAGMA defer_foreign_keys = ON',
      "INSERT INTO child(id, parent_id, note) VALUES (10, 3, 'before its parent')",
      "INSERT INTO parent(id, name) VALUES (3, 'c')",
    ]);
    expect(deferred.status, JSON.stringify(deferred.body)).toBe(200);
    await replicaCaughtUp();
    const read = await query(replica, keys.reader, ['PRAGMA user_version', 'SELECT count(*) FROM child WHERE id = 10']);
    expect(read.body.results.map((result: { rows: unknown[][] }) => result.rows)).toEqual([[[7]], [[1]]]);
  });
});

describe('connection settings', () => {
  const SETTINGS: Array<[string, string]> = [
    ['PRAGMA foreign_keys = OFF', 'foreign_keys'],
    ['PRAGMA foreign_keys(0)', 'foreign_keys'],
    ['EXPLAIN PRAGMA foreign_keys = 0', 'foreign_keys'],
    ['PRAGMA/**/"case_sensitive_like"=1', 'case_sensitive_like'],
    ["PRAGMA main.'cache_size' = 1", 'cache_size'],
    ['PRAGMA recursive_triggers = 1', 'recursive_triggers'],
    ['PRAGMA ignore_check_constraints = ON', 'ignore_check_constraints'],
    ['PRAGMA reverse_unordered_selects = 1', 'reverse_unordered_selects'],
    ['PRAGMA query_only = 1', 'query_only'],
    ['PRAGMA busy_timeout = 100000', 'busy_timeout'],
    ['PRAGMA soft_heap_limit = 1', 'soft_heap_limit'],
    ['; PRAGMA cache_size = 77', 'cache_size'],
  ];

  it('cannot be changed by any key (connections are shared, and SQLite applies them while preparing)', async () => {
    const before = await fingerprint();
    for (const node of [primary, replica]) {
      for (const key of [keys.writer, keys.admin, primary.key]) {
        for (const [sql, pragma] of SETTINGS) {
          const response = await query(node, key, [sql]);
          expect(response.status, sql).toBe(400);
          expect(response.body.error).toMatchObject({ code: 'STATEMENT_NOT_ALLOWED', pragma, statement: 0 });
        }
      }
    }
    expect(await fingerprint()).toEqual(before);
    // Nothing leaked into the shared connections: foreign keys are still enforced, LIKE still folds case.
    const orphan = await query(primary, keys.writer, ["INSERT INTO child(parent_id, note) VALUES (999, 'orphan')"]);
    expect(orphan.body.error.code).toBe('SQLITE_CONSTRAINT_FOREIGNKEY');
    for (const node of [primary, replica]) {
      const state = await query(node, keys.reader, ['PRAGMA foreign_keys', "SELECT 'a' LIKE 'A'"]);
      expect(state.body.results.map((result: { rows: unknown[][] }) => result.rows)).toEqual([[[1]], [[1]]]);
    }
    expect(await fingerprint()).toEqual(before);
  });
});

describe('the guard against SQLite itself', () => {
  /** Statements that change what other clients of a connection see, and what that state looks like. */
  const EFFECTS: Array<{ name: string; value: string; form: 'pragma' | 'plain'; state: (db: Database.Database) => unknown }> = [
    { name: 'cache_size', value: '4242', form: 'pragma', state: (db) => db.pragma('cache_size', { simple: true }) },
    { name: 'foreign_keys', value: 'OFF', form: 'pragma', state: (db) => db.pragma('foreign_keys', { simple: true }) },
    { name: 'recursive_triggers', value: '1', form: 'pragma', state: (db) => db.pragma('recursive_triggers', { simple: true }) },
    { name: 'case_sensitive_like', value: 'ON', form: 'pragma', state: (db) => db.prepare("SELECT 'a' LIKE 'A'").pluck().get() },
    { name: 'query_only', value: '1', form: 'pragma', state: (db) => db.pragma('query_only', { simple: true }) },
    { name: 'journal_mode', value: 'OFF', form: 'pragma', state: (db) => db.pragma('journal_mode', { simple: true }) },
    { name: 'ATTACH', value: "':memory:' AS evil", form: 'plain', state: (db) => (db.pragma('database_list') as unknown[]).length },
    { name: 'BEGIN', value: '', form: 'plain', state: (db) => db.inTransaction },
  ];
  const GAPS = [' ', '  ', '\t', '\n', '\r\n', '\f', '\v', '\uFEFF', '/**/', '/* x */', '-- c\n', ' \uFEFF ', '\u00a0', '\u0000'];

  it('lets through no decorated variant that SQLite would apply (differential, 4000 cases)', () => {
    const prng = new Prng(20261125);
    const random = (): number => prng.float();
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
    const gap = (): string => (random() < 0.5 ? ' ' : Array.from({ length: 1 + Math.floor(random() * 2) }, () => pick(GAPS)).join(''));
    const caseOf = (word: string): string => [...word].map((c) => (random() < 0.5 ? c.toUpperCase() : c.toLowerCase())).join('');
    const quote = (name: string): string => pick([name, caseOf(name), `"${name}"`, `[${name}]`, `\`${name}\``, `'${name}'`]);
    let passed = 0;
    for (let i = 0; i < 4000; i++) {
      const effect = pick(EFFECTS);
      let sql: string;
      if (effect.form === 'pragma') {
        const schema = pick(['', 'main.', '"main".', 'main .', '[main]. ']);
        const value = random() < 0.5 ? `${gap()}=${gap()}${effect.value}` : `${gap()}(${effect.value})`;
        sql = `${caseOf('pragma')}${gap()}${schema}${quote(effect.name)}${value}`;
      } else {
        sql = `${caseOf(effect.name)}${effect.value ? gap() + effect.value : ''}`;
      }
      const prefix = pick(['', '', ';', ' ; ;', '\uFEFF', gap(), 'EXPLAIN ', 'explain query plan ', '/* a */ ;']);
      const suffix = pick(['', ';', ' -- end', '\u0000 garbage', ' ;  ']);
      sql = `${prefix}${sql}${suffix}`;
      try {
        guardStatement(sql, 0);
      } catch {
        continue; // refused before SQLite saw it
      }
      passed += 1;
      const db = new Database(':memory:');
      const before = effect.state(db);
      try {
        db.prepare(sql).run();
      } catch {
        // SQLite refused it too
      }
      expect(effect.state(db), `the guard let through ${JSON.stringify(sql)}, and SQLite applied it`).toEqual(before);
      db.close();
    }
    // Some variants are refused by SQLite alone (broken syntax); most are refused by the guard.
    expect(passed).toBeLessThan(4000);
  });
});
