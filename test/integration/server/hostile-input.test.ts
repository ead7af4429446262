import { readFileSync } from 'node:fs';
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signatureHeaders } from '../../../src/client/signing.js';
import {
  caseRng,
  deepJson,
  fuzzSeed,
  judge,
  mutateBytes,
  nastyString,
  pickWeighted,
  sendHttp,
  sendRaw,
  serialize,
  type Outcome,
  type Prng,
  type RequestSpec,
} from '../../support/fuzz.js';
import { REPO_ROOT, TestServer } from '../../support/server.js';

/**
 * Hostile input against a running server (issue 6, item 5). A seeded generator makes at least
 * 10,000 requests of thirteen families: bad keys, read-only keys that write, forbidden statements,
 * transactions that fail part way, mutated bodies, parameters of every type, hostile paths, wrong
 * methods, broken HTTP framing, database names of every shape, creating or restoring over existing
 * databases, broken request signatures, and a few that succeed in a sandbox database. Every answer
 * must be a valid status, never a 500, an error in the API's shape with no stack trace or server
 * folder; the server must stay up; and the `fuzz` database, which every request either only reads
 * or is refused on, must end with the checksum and position it started with. Before the random
 * run, a fixed corpus replays the inputs that once got through (see the first test).
 *
 *   LITEBASE_FUZZ_SEED=<n>       replay a run (the seed is printed at the start)
 *   LITEBASE_FUZZ_REQUESTS=<n>   how many cases (default 10,400)
 */

const SEED = fuzzSeed();
const CASES = Number(process.env.LITEBASE_FUZZ_REQUESTS ?? 10_400);
const CONCURRENCY = 8;
const REQUEST_TIMEOUT_MS = 5_000;
/** How long a raw request that cannot complete (a body shorter than its Content-Length) is given. */
const STALL_MS = 150;
const BODY_LIMIT = 1024 * 1024;
const LONG_NAME = 'a'.repeat(60);

let server: TestServer;
let port: number;
const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });

/** Keys the generator uses, by role. */
const keys = {
  root: '',
  /** read on fuzz and sandbox: may never change either. */
  reader: '',
  readerId: '',
  /** read, write, admin and restore on "other" only. */
  other: '',
  /** cluster on "*": status and metrics, no database. */
  cluster: '',
  /** read and write on a pattern a backtracking matcher takes forever on for a long name of a's. */
  catastrophic: '',
  /** was read+write+admin on "*", revoked before the run. */
  revoked: '',
  revokedId: '',
};

let initial: { checksum: string; position: string };

beforeAll(async () => {
  server = await TestServer.start({
    env: {
      LITEBASE_BODY_LIMIT_BYTES: String(BODY_LIMIT),
      // Reads with a far minPosition and writes queued behind a sandbox transaction give up quickly.
      LITEBASE_WAIT_TIMEOUT_MS: '250',
      LITEBASE_TRANSACTION_TIMEOUT_MS: '500',
      LITEBASE_MAX_TRANSACTION_TIMEOUT_MS: '1000',
    },
  });
  port = server.port;
  keys.root = server.key;
  for (const name of ['fuzz', 'sandbox', 'other']) {
    expect((await server.request('POST', '/v1/databases', { name })).status).toBe(201);
    const schema = await server.request('POST', `/v1/databases/${name}/query`, {
      statements: [
        { sql: 'CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c REAL, d BLOB, e INTEGER)' },
        { sql: 'CREATE TABLE u(k TEXT UNIQUE NOT NULL)' },
        { sql: 'CREATE TABLE s(x INTEGER CHECK (x >= 0)) STRICT' },
        { sql: 'CREATE TABLE guarded(v)' },
        { sql: "CREATE TRIGGER guarded_refuses BEFORE INSERT ON guarded BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END" },
        { sql: 'CREATE INDEX t_b ON t(b)' },
        { sql: "INSERT INTO u(k) VALUES ('dup'), ('one')" },
        { sql: 'INSERT INTO s(x) VALUES (1), (2)' },
      ],
    });
    expect(schema.status, JSON.stringify(schema.body)).toBe(200);
    const rows = Array.from({ length: 40 }, (_, i) => ({
      sql: 'INSERT INTO t(a, b, c, d, e) VALUES (?, ?, ?, ?, ?)',
      params: [
        i + 1,
        `row ${i} ✓`,
        i / 3,
        { $blob: Buffer.from([i, 255 - i, 0]).toString('base64') },
        { $int: String(9007199254740993n + BigInt(i)) },
      ],
    }));
    expect((await server.request('POST', `/v1/databases/${name}/query`, { statements: rows })).status).toBe(200);
  }
  const create = async (databases: string[], actions: string[]) => {
    const response = await server.request('POST', '/v1/keys', { name: `fuzz ${actions.join('+')}`, databases, actions });
    expect(response.status, JSON.stringify(response.body)).toBe(201);
    return response.body.key as { id: string; secret: string };
  };
  const reader = await create(['fuzz', 'sandbox'], ['read']);
  keys.reader = reader.secret;
  keys.readerId = reader.id;
  keys.other = (await create(['other'], ['read', 'write', 'admin', 'restore'])).secret;
  keys.cluster = (await create(['*'], ['cluster'])).secret;
  keys.catastrophic = (await create(['*a'.repeat(31) + 'b'], ['read', 'write'])).secret;
  // A long name of a's: what that pattern is matched against whenever the key lists databases.
  expect((await server.request('POST', '/v1/databases', { name: LONG_NAME })).status).toBe(201);
  const revoked = await create(['*'], ['read', 'write', 'admin', 'restore', 'cluster']);
  keys.revoked = revoked.secret;
  keys.revokedId = revoked.id;
  expect((await server.request('DELETE', `/v1/keys/${revoked.id}`)).status).toBe(204);
  initial = await fingerprint();
}, 60_000);

afterAll(async () => {
  agent.destroy();
  await server?.stop();
  server?.cleanup();
});

/** CPU time the server process has used so far (Linux /proc; 0 elsewhere). */
function serverCpuMs(): number {
  try {
    const fields = readFileSync(`/proc/${server.child.pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return 0;
  }
}

async function fingerprint(): Promise<{ checksum: string; position: string }> {
  const response = await server.request('GET', '/v1/databases/fuzz');
  expect(response.status).toBe(200);
  return { checksum: response.body.database.checksum, position: response.body.database.position };
}

// ---- the generator --------------------------------------------------------------------------------

interface FuzzCase {
  family: string;
  label: string;
  /** Sent with node:http, or as these bytes on a raw socket. */
  spec?: RequestSpec;
  raw?: { bytes: Buffer; methods: string[]; pieces?: number; endAfterWrite?: boolean; stalls: boolean };
  /** Must be answered 4xx/5xx (or, for broken framing, may go unanswered). */
  refused: boolean;
  /** Raw cases the server cannot answer (a body shorter than announced, a CONNECT, a closed socket). */
  mayGoUnanswered?: boolean;
  /** An extra check on a successful answer. */
  check?: (body: string) => string | undefined;
  /** A check on all the answers of a raw case (several when pipelined). */
  checkAll?: (responses: Outcome['responses']) => string | undefined;
  /**
   * Why this case may be refused with an empty body: node itself answers an HTTP/1.1 request
   * without Host with a bare 400 (RFC 9112 §3.2) before any handler or hook of ours can run.
   */
  bareRefusal?: string;
}

const UUID_LIKE = [
  '00000000-0000-0000-0000-000000000000',
  'ffffffff-ffff-ffff-ffff-ffffffffffff',
  '------------------------------------',
  '0'.repeat(36),
];

const WRITES_SQL: readonly string[] = [
  "INSERT INTO t(b) VALUES ('w')",
  'UPDATE t SET b = NULL WHERE a = 1',
  'DELETE FROM t',
  'DELETE FROM t WHERE a > 0',
  "REPLACE INTO u(k) VALUES ('dup')",
  "INSERT INTO u(k) VALUES ('one') ON CONFLICT(k) DO UPDATE SET k = 'two'",
  "INSERT INTO t(b) VALUES ('r') RETURNING a, b",
  'WITH x(n) AS (SELECT 1) INSERT INTO t(b) SELECT n FROM x',
  'WITH x AS (SELECT 1) DELETE FROM t',
  'UPDATE t SET e = e + 1 RETURNING *',
  'CREATE TABLE z(a)',
  'CREATE TEMP TABLE z(a)',
  'CREATE INDEX t_c ON t(c)',
  'CREATE VIEW v AS SELECT 1',
  'CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM u; END',
  'DROP TABLE u',
  'DROP INDEX t_b',
  'ALTER TABLE t ADD COLUMN z',
  'ALTER TABLE t RENAME TO t2',
  'PRAGMA user_version = 7',
  'PRAGMA application_id = 1',
  'PRAGMA schema_version = 1',
  'REINDEX',
  'ANALYZE',
  'PRAGMA optimize',
  'PRAGMA incremental_vacuum',
  'INSERT INTO s(x) VALUES (5)',
  'DELETE FROM sqlite_sequence',
];

/** Statements the guard refuses for every key; each stays refused under every decoration. */
const FORBIDDEN_SQL: readonly string[] = [
  "ATTACH '/etc/passwd' AS p",
  "ATTACH DATABASE ':memory:' AS m",
  "ATTACH 'file:../../other/db.sqlite?mode=ro' AS o",
  'DETACH m',
  'VACUUM',
  "VACUUM INTO '/tmp/litebase-fuzz-copy.db'",
  "SELECT load_extension('/tmp/x')",
  'PRAGMA journal_mode = DELETE',
  'PRAGMA journal_mode',
  'PRAGMA main.journal_mode = MEMORY',
  'PRAGMA wal_checkpoint(TRUNCATE)',
  'PRAGMA wal_autocheckpoint = 1',
  'PRAGMA locking_mode = EXCLUSIVE',
  'PRAGMA synchronous = OFF',
  'PRAGMA writable_schema = ON',
  'PRAGMA journal_size_limit = 0',
  'PRAGMA mmap_size = 268435456',
  'PRAGMA query_only = 1',
  'BEGIN',
  'BEGIN IMMEDIATE',
  'COMMIT',
  'END',
  'ROLLBACK',
  'SAVEPOINT a',
  'RELEASE a',
];

const READS_SQL: readonly string[] = [
  'SELECT a, b FROM t ORDER BY a LIMIT 5',
  'SELECT count(*) FROM t',
  'SELECT * FROM u',
  'SELECT d, e FROM t WHERE a = 3',
  'PRAGMA table_info(t)',
  'SELECT sqlite_version()',
  'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100) SELECT sum(x) FROM c',
  'EXPLAIN SELECT * FROM t',
  'EXPLAIN DELETE FROM t',
  'SELECT name FROM sqlite_master',
  "SELECT json_extract('{\"a\":[1,2]}', '$.a[1]')",
  "SELECT typeof(1), typeof(1.5), typeof(x'00'), typeof(NULL)",
];

/** Write statements a transaction runs before the statement that fails and rolls it all back. */
const FAILING_LAST: ReadonlyArray<{ statement: { sql: string; params?: unknown }; note: string }> = [
  { statement: { sql: "INSERT INTO u(k) VALUES ('dup')" }, note: 'unique' },
  { statement: { sql: 'INSERT INTO u(k) VALUES (NULL)' }, note: 'not null' },
  { statement: { sql: 'INSERT INTO s(x) VALUES (-1)' }, note: 'check' },
  { statement: { sql: "INSERT INTO s(x) VALUES ('text')" }, note: 'strict type' },
  { statement: { sql: 'INSERT INTO guarded(v) VALUES (1)' }, note: 'trigger raise' },
  { statement: { sql: 'INSERT INTO nope VALUES (1)' }, note: 'no such table' },
  { statement: { sql: 'INSRT INTO t VALUES (1)' }, note: 'syntax' },
  { statement: { sql: 'INSERT INTO t(b) VALUES (?)', params: [{ $int: 'x' }] }, note: 'bad $int' },
  { statement: { sql: 'INSERT INTO t(b) VALUES (?)', params: [{ nested: [1] }] }, note: 'object param' },
  { statement: { sql: 'INSERT INTO t(b) VALUES (?, ?)', params: [1] }, note: 'too few params' },
  { statement: { sql: 'INSERT INTO t(b) VALUES (:b)', params: { c: 1 } }, note: 'missing named param' },
  { statement: { sql: 'SELECT 1; DELETE FROM t' }, note: 'two statements' },
  { statement: { sql: 'VACUUM' }, note: 'forbidden' },
  { statement: { sql: ';COMMIT' }, note: 'transaction control behind a semicolon' },
  { statement: { sql: '/* x */ ROLLBACK' }, note: 'transaction control behind a comment' },
  { statement: { sql: 'PRAGMA/**/"locking_mode" = EXCLUSIVE' }, note: 'quoted forbidden pragma' },
  { statement: { sql: 'SELECT abs(-9223372036854775808)' }, note: 'integer overflow' },
];

const DATABASE_NAMES: readonly string[] = [
  '',
  '.',
  '..',
  '...',
  '-a',
  '_a',
  'A',
  'Fuzz',
  'FUZZ',
  'fuzz ',
  ' fuzz',
  'fuzz\n',
  'fuzz\u0000',
  'fu zz',
  'a.b',
  'a/b',
  'a\\b',
  'a'.repeat(63),
  'a'.repeat(64),
  'a'.repeat(101),
  'a'.repeat(2000),
  'ä',
  'ﬀ',
  'ａ',
  '😀',
  'fuzz\u200b',
  '\u202efuzz',
  'con',
  'nul',
  'aux',
  '*',
  '%',
  '%2e%2e',
  '?',
  '#',
  '__proto__',
  'constructor',
  'prototype',
  'tostring',
  'hasownproperty',
  'select',
  '0',
  '00000000000000000001',
  'fuzz/../other',
  '../other',
  'other',
  'sandbox',
  'fuzz',
  'nonexistent',
  'x-y_z',
  '-',
  'a-',
  'a_',
  LONG_NAME,
  `${LONG_NAME}b`,
];

const ROUTES: ReadonlyArray<{ path: string; methods: string[] }> = [
  { path: '/healthz', methods: ['GET'] },
  { path: '/readyz', methods: ['GET'] },
  { path: '/metrics', methods: ['GET'] },
  { path: '/v1/ping', methods: ['POST'] },
  { path: '/v1/databases', methods: ['GET', 'POST'] },
  { path: '/v1/databases/fuzz', methods: ['GET', 'DELETE'] },
  { path: '/v1/databases/fuzz/query', methods: ['POST'] },
  { path: '/v1/databases/fuzz/transactions', methods: ['POST'] },
  { path: `/v1/databases/fuzz/transactions/${UUID_LIKE[0]}/query`, methods: ['POST'] },
  { path: `/v1/databases/fuzz/transactions/${UUID_LIKE[0]}/commit`, methods: ['POST'] },
  { path: `/v1/databases/fuzz/transactions/${UUID_LIKE[0]}/rollback`, methods: ['POST'] },
  { path: '/v1/databases/fuzz/compact', methods: ['POST'] },
  { path: '/v1/databases/fuzz/restore-points', methods: ['GET'] },
  { path: '/v1/databases/fuzz/restore', methods: ['POST'] },
  { path: '/v1/databases/fuzz/restores', methods: ['GET'] },
  { path: `/v1/databases/fuzz/restores/${UUID_LIKE[0]}`, methods: ['GET'] },
  { path: '/v1/databases/fuzz/backup', methods: ['GET'] },
  { path: '/v1/cluster', methods: ['GET'] },
  { path: '/v1/keys', methods: ['GET', 'POST'] },
  { path: '/v1/keys/aaaaaaaaaaaa', methods: ['DELETE'] },
];

const METHODS = [
  'GET',
  'POST',
  'PUT',
  'DELETE',
  'PATCH',
  'HEAD',
  'OPTIONS',
  'TRACE',
  'PROPFIND',
  'FOO',
  'get',
  'Post',
  'M-SEARCH',
  'QUERY',
];

const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
const bearer = (key: string): Array<[string, string]> => [['authorization', `Bearer ${key}`]];
const jsonHeaders = (key?: string): Array<[string, string]> => [
  ...(key === undefined ? [] : bearer(key)),
  ['content-type', 'application/json'],
];

function decorate(prng: Prng, sql: string): string {
  let out = sql;
  if (prng.chance(0.3)) out = [...out].map((c) => (prng.chance(0.5) ? c.toUpperCase() : c.toLowerCase())).join('');
  if (prng.chance(0.4)) out = prng.pick(['  ', '\n\t', '/* c */ ', '-- c\n', ';', ' ; ;', '/**/;\n', '\r\n--\n/* a */ ']) + out;
  // A quoted or commented pragma name is the same pragma to SQLite.
  if (/^pragma /i.test(sql) && prng.chance(0.4))
    out = out.replace(/^(\s*)(pragma) /i, prng.pick(['$1$2/**/', '$1$2\t', '$1$2 "main".', '$1$2 ']));
  if (/^pragma\s+(?:main\.)?([a-z_]+)/i.test(sql) && prng.chance(0.4)) {
    out = out.replace(
      /(journal_mode|wal_checkpoint|wal_autocheckpoint|locking_mode|synchronous|writable_schema|journal_size_limit|mmap_size|query_only)/i,
      (name) => prng.pick([`"${name}"`, `[${name}]`, `\`${name}\``, `'${name}'`, name]),
    );
  }
  return out;
}

/** A statement list with one random statement mutated at the character level. */
function mutateSql(prng: Prng, sql: string): string {
  const chars = [...sql];
  const edits = prng.between(1, 3);
  for (let i = 0; i < edits; i++) {
    const at = prng.below(chars.length + 1);
    const kind = prng.below(3);
    if (kind === 0) chars.splice(at, 1);
    else if (kind === 1) chars.splice(at, 0, prng.pick(["'", '"', '(', ')', ';', ',', '?', ':', '*', '-', '/', ' ', '\u0000', 'x']));
    else chars[at] = prng.pick(['?', "'", ')', '1']);
  }
  return chars.join('');
}

function randomParam(prng: Prng): unknown {
  switch (prng.below(26)) {
    case 0:
      return null;
    case 1:
      return prng.between(-1000, 1000);
    case 2:
      return prng.u32() / 7;
    case 3:
      return Number.MAX_SAFE_INTEGER;
    case 4:
      return -Number.MAX_SAFE_INTEGER - 1;
    case 5:
      return 1e308;
    case 6:
      return -0;
    case 7:
      return prng.chance(0.5);
    case 8:
      return nastyString(prng, prng.below(40));
    case 9:
      return {
        $int: prng.pick([
          '9223372036854775807',
          '-9223372036854775808',
          '9223372036854775808',
          '99999999999999999999',
          '1e3',
          '0x10',
          ' 1',
          '+1',
          '-0',
          '',
          '١٢',
          '12345678901234567890',
        ] as const),
      };
    case 10:
      return { $int: prng.between(0, 1000) };
    case 11:
      return {
        $blob: prng.pick([
          '',
          'AA==',
          'AAA',
          '====',
          '@@@@',
          'YWJj',
          'YW Jj',
          'YWJj\n',
          '-_-_',
          Buffer.from(prng.bytes(prng.below(300))).toString('base64'),
        ] as const),
      };
    case 12:
      return { $blob: 'QUFB'.repeat(prng.between(1000, 60_000)) };
    case 13:
      return { $int: '1', $blob: '' };
    case 14:
      return { $int: '1', extra: true };
    case 15:
      return {};
    case 16:
      return [];
    case 17:
      return [1, 2];
    case 18:
      return { nested: { deeper: [1] } };
    case 19:
      return 'x'.repeat(prng.between(10_000, 200_000));
    case 20:
      return { $blob: null };
    case 21:
      return { $INT: '1' };
    case 22:
      return { toString: 'x' };
    case 23:
      return { valueOf: 1 };
    case 24:
      return prng.between(-(2 ** 31), 2 ** 31) * 2 ** 22;
    default:
      return '\u0000\ud800\udfff\ufffe';
  }
}

function randomParams(prng: Prng): unknown {
  const count = prng.pick([0, 1, 2, 3, 5]);
  if (prng.chance(0.5)) return Array.from({ length: count }, () => randomParam(prng));
  const names = [':a', '@a', '$a', 'a', 'b', '1', '2', '', ' ', 'constructor', 'toString', 'hasOwnProperty', 'a:b', '::a', '$$a', 'ä'];
  const out: Record<string, unknown> = {};
  for (let i = 0; i < count; i++) out[prng.pick(names)] = randomParam(prng);
  return out;
}

const PARAM_SQL = [
  'SELECT ?',
  'SELECT ?, ?',
  'SELECT :a',
  'SELECT :a, :b',
  'SELECT @a, $a',
  'SELECT ?1, ?3',
  'SELECT ?2',
  'SELECT 1',
  'SELECT :a, ?',
  'SELECT typeof(?), length(?)',
  'SELECT ?32766',
  'SELECT ?0',
];

type Auth = { label: string; headers: Array<[string, string]>; valid: boolean };

/** Authorization headers that never authenticate as a key allowed to change "fuzz". */
function badAuth(prng: Prng): Auth {
  const root = keys.root;
  const change = (secret: string) => {
    const at = prng.below(secret.length);
    const replacement = secret[at] === 'A' ? 'B' : 'A';
    return secret.slice(0, at) + replacement + secret.slice(at + 1);
  };
  const variants: Array<() => Auth> = [
    () => ({ label: 'no header', headers: [], valid: false }),
    () => ({ label: 'empty', headers: [['authorization', '']], valid: false }),
    () => ({ label: 'Bearer alone', headers: [['authorization', prng.pick(['Bearer', 'Bearer ', 'Bearer    '])]], valid: false }),
    () => ({ label: 'Basic', headers: [['authorization', `Basic ${Buffer.from(`root:${root}`).toString('base64')}`]], valid: false }),
    () => ({ label: 'root without scheme', headers: [['authorization', root]], valid: false }),
    () => ({ label: 'root, one character changed', headers: bearer(change(root)), valid: false }),
    () => ({ label: 'root prefix', headers: bearer(root.slice(0, prng.below(root.length))), valid: false }),
    () => ({ label: 'root plus suffix', headers: bearer(root + prng.pick(['x', '0', '=', '%00'])), valid: false }),
    () => ({ label: 'two tokens', headers: [['authorization', `Bearer ${root} ${root}`]], valid: false }),
    () => ({ label: 'reader, one character changed', headers: bearer(change(keys.reader)), valid: false }),
    () => ({ label: 'revoked', headers: bearer(keys.revoked), valid: false }),
    () => ({ label: 'lb key of nobody', headers: bearer(`lb_${'abcdefghijkl'}_${'Q'.repeat(43)}`), valid: false }),
    () => ({ label: 'lb key with traversal id', headers: bearer(`lb_../../../x_${'Q'.repeat(43)}`), valid: false }),
    () => ({ label: 'reader id, other secret', headers: bearer(`lb_${keys.readerId}_${'Z'.repeat(43)}`), valid: false }),
    () => ({ label: 'huge', headers: bearer('k'.repeat(prng.pick([1000, 8000, 15_000]))), valid: false }),
    () => ({ label: 'oversized header', headers: bearer('k'.repeat(20_000)), valid: false }),
    () => ({
      label: 'latin1 garbage',
      headers: bearer(String.fromCharCode(...Array.from({ length: 20 }, () => prng.between(0x80, 0xff)))),
      valid: false,
    }),
    () => ({ label: 'control character', headers: bearer(`${root.slice(0, 5)}\u0001${root.slice(5)}`), valid: false }),
    () => ({ label: 'unicode', headers: bearer('ключ-🔑'), valid: false }),
    () => ({
      label: 'wrong key first, root second',
      headers: [
        ['authorization', 'Bearer nope'],
        ['authorization', `Bearer ${root}`],
      ],
      valid: false,
    }),
    () => ({ label: 'lower-case scheme, wrong key', headers: [['authorization', 'bearer nope']], valid: false }),
    () => ({ label: 'other-database key', headers: bearer(keys.other), valid: true }),
    () => ({ label: 'cluster key', headers: bearer(keys.cluster), valid: true }),
    () => ({ label: 'read-only key', headers: bearer(keys.reader), valid: true }),
    () => ({ label: 'catastrophic-pattern key', headers: bearer(keys.catastrophic), valid: true }),
  ];
  return prng.pick(variants)();
}

/** A request on "fuzz" that would change it (or the cluster) if the key allowed it. */
function wouldWrite(prng: Prng): { method: string; path: string; body?: unknown; readOnlyForReader?: boolean } {
  const write = { statements: [{ sql: prng.pick(WRITES_SQL) }] };
  const options: Array<() => { method: string; path: string; body?: unknown; readOnlyForReader?: boolean }> = [
    () => ({ method: 'POST', path: '/v1/databases/fuzz/query', body: write }),
    () => ({ method: 'POST', path: '/v1/databases/fuzz/query', body: { ...write, mode: 'independent' } }),
    () => ({ method: 'DELETE', path: '/v1/databases/fuzz' }),
    () => ({ method: 'POST', path: '/v1/databases/fuzz/transactions', body: { timeoutMs: 1000 } }),
    () => ({ method: 'POST', path: `/v1/databases/fuzz/transactions/${prng.pick(UUID_LIKE)}/query`, body: write }),
    () => ({ method: 'POST', path: `/v1/databases/fuzz/transactions/${prng.pick(UUID_LIKE)}/commit` }),
    () => ({ method: 'POST', path: '/v1/databases/fuzz/compact' }),
    () => ({ method: 'POST', path: '/v1/databases/fuzz/restore', body: { position: '1', target: 'restored-by-fuzz' } }),
    () => ({ method: 'POST', path: '/v1/databases', body: { name: 'made-by-fuzz' } }),
    () => ({ method: 'POST', path: '/v1/keys', body: { name: 'fuzz', databases: ['*'], actions: ['admin'] } }),
    () => ({ method: 'DELETE', path: `/v1/keys/${keys.revokedId}` }),
    () => ({ method: 'GET', path: '/v1/keys' }),
  ];
  return prng.pick(options)();
}

const families: ReadonlyArray<readonly [number, (prng: Prng) => FuzzCase]> = [
  [15, authCase],
  [15, readOnlyWriteCase],
  [9, forbiddenCase],
  [8, failingTransactionCase],
  [18, bodyMutationCase],
  [9, paramsCase],
  [8, pathCase],
  [5, methodCase],
  [8, framingCase],
  [3, namesCase],
  [2, existingCase],
  [5, signedCase],
  [2, sandboxCase],
];

function generate(id: number): FuzzCase {
  const prng = caseRng(SEED, id);
  return pickWeighted(prng, families)(prng);
}

/** Every route that changes something, with a key that must not be let in. */
function authCase(prng: Prng): FuzzCase {
  const auth = badAuth(prng);
  const target = wouldWrite(prng);
  const headers: Array<[string, string]> = [
    ...auth.headers,
    ...(target.body === undefined ? [] : ([['content-type', 'application/json']] as Array<[string, string]>)),
  ];
  const independent = (target.body as { mode?: string } | undefined)?.mode === 'independent';
  return {
    family: 'auth',
    label: `${auth.label}: ${target.method} ${target.path}`,
    spec: { method: target.method, path: target.path, headers, ...(target.body === undefined ? {} : { body: json(target.body) }) },
    // A read-only key's independent statements are answered 200 with an error per write.
    refused: !(auth.label === 'read-only key' && independent),
  };
}

/** A key that may only read "fuzz" sends statements that write, alone or hidden among reads. */
function readOnlyWriteCase(prng: Prng): FuzzCase {
  const write = decorate(prng, prng.pick(WRITES_SQL));
  const statements: Array<{ sql: string; params?: unknown }> = [];
  for (let i = prng.below(3); i > 0; i--) statements.push({ sql: prng.pick(READS_SQL) });
  statements.splice(prng.below(statements.length + 1), 0, { sql: prng.chance(0.15) ? mutateSql(prng, write) : write });
  const mode = ([undefined, 'transaction', 'independent'] as const)[prng.below(3)];
  const body = { statements, ...(mode ? { mode } : {}) };
  const viaTransaction = prng.chance(0.1);
  return {
    family: 'read-only write',
    label: `${mode ?? 'default'} ${JSON.stringify(statements).slice(0, 120)}`,
    spec: viaTransaction
      ? {
          method: 'POST',
          path: `/v1/databases/fuzz/transactions/${prng.pick(UUID_LIKE)}/query`,
          headers: jsonHeaders(keys.reader),
          body: json({ statements }),
        }
      : { method: 'POST', path: '/v1/databases/fuzz/query', headers: jsonHeaders(keys.reader), body: json(body) },
    // Some "writes" (PRAGMA optimize on an idle database) prepare as read-only, and a mutated one
    // may not prepare at all; what matters is that fuzz does not change (checked at the end).
    refused: false,
  };
}

/** Statements no key may run, with the root key, decorated so that a text check could miss them. */
function forbiddenCase(prng: Prng): FuzzCase {
  const forbidden = decorate(prng, prng.pick(FORBIDDEN_SQL));
  const before = prng.chance(0.5) ? [{ sql: prng.pick(["INSERT INTO t(b) VALUES ('before')", 'DELETE FROM t', 'SELECT 1']) }] : [];
  return {
    family: 'forbidden',
    label: JSON.stringify(forbidden),
    spec: {
      method: 'POST',
      path: '/v1/databases/fuzz/query',
      headers: jsonHeaders(keys.root),
      body: json({ statements: [...before, { sql: forbidden }] }),
    },
    refused: true,
  };
}

/** Writes with the root key in one transaction whose last statement fails: nothing may remain. */
function failingTransactionCase(prng: Prng): FuzzCase {
  const statements: Array<{ sql: string; params?: unknown }> = [];
  for (let i = prng.between(1, 4); i > 0; i--) {
    statements.push(
      prng.pick([
        { sql: "INSERT INTO t(b, e) VALUES ('doomed', ?)", params: [{ $int: '9223372036854775807' }] },
        { sql: 'UPDATE t SET b = ? WHERE a = ?', params: ['changed', prng.between(1, 40)] },
        { sql: 'DELETE FROM t WHERE a = :a', params: { a: prng.between(1, 40) } },
        { sql: "INSERT INTO u(k) VALUES ('fresh')" },
        { sql: 'CREATE TABLE doomed(a)' },
        { sql: 'DROP INDEX t_b' },
        { sql: 'INSERT INTO t(d) VALUES (?)', params: [{ $blob: Buffer.from(prng.bytes(64)).toString('base64') }] },
      ]),
    );
  }
  const failing = prng.pick(FAILING_LAST);
  statements.push(failing.statement as { sql: string; params?: unknown });
  return {
    family: 'failing transaction',
    label: `${statements.length - 1} writes then ${failing.note}`,
    spec: {
      method: 'POST',
      path: '/v1/databases/fuzz/query',
      headers: jsonHeaders(keys.root),
      body: json({ statements, ...(prng.chance(0.5) ? { mode: 'transaction' } : {}) }),
    },
    refused: true,
  };
}

/** A valid request, mutated structurally or byte by byte. */
function bodyMutationCase(prng: Prng): FuzzCase {
  // The key decides where a mutant that happens to be valid could write: never to fuzz.
  const who = prng.pick(['reader', 'none', 'root'] as const);
  const db = who === 'root' ? 'sandbox' : 'fuzz';
  const key = who === 'reader' ? keys.reader : who === 'root' ? keys.root : undefined;
  const templates: Array<{ path: string; body: Record<string, unknown> }> = [
    {
      path: `/v1/databases/${db}/query`,
      body: {
        statements: [
          { sql: 'INSERT INTO t(a, b) VALUES (?, ?)', params: [prng.between(100, 10_000), 'x'] },
          { sql: 'SELECT count(*) FROM t' },
        ],
        mode: 'transaction',
      },
    },
    {
      path: `/v1/databases/${db}/query`,
      body: { statements: [{ sql: 'SELECT a FROM t WHERE a = :a', params: { a: 1 } }], minPosition: '1' },
    },
    { path: `/v1/databases/${db}/transactions`, body: { timeoutMs: 200 } },
    { path: `/v1/databases/${db}/restore`, body: { timestamp: '2026-11-25T10:00:00.000Z', target: 'restored' } },
    { path: '/v1/databases', body: { name: 'mutant' } },
    { path: '/v1/keys', body: { name: 'mutant', databases: ['fuzz'], actions: ['read'] } },
  ];
  const template = prng.pick(templates);
  // Creating databases, keys and restores with the root key is allowed: keep those to other keys.
  const path = template.path;
  const effectiveKey = who === 'root' && !path.startsWith(`/v1/databases/${db}/q`) && !path.endsWith('/transactions') ? keys.reader : key;
  let body: Buffer;
  let label: string;
  const structural = prng.chance(0.55);
  if (structural) {
    const mutated = structuralMutation(prng, template.body);
    body = Buffer.from(mutated.text);
    label = mutated.label;
  } else {
    const mutated = mutateBytes(prng, json(template.body));
    body = mutated.bytes;
    label = mutated.label;
  }
  const contentType = prng.chance(0.9)
    ? 'application/json'
    : prng.pick([
        'application/json; charset=utf-16',
        'application/json; charset=latin1',
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/jsonx',
        'APPLICATION/JSON',
        '',
        'application/json, text/plain',
        '*/*',
      ]);
  const headers: Array<[string, string]> = [
    ...(effectiveKey === undefined ? [] : bearer(effectiveKey)),
    ...(contentType ? ([['content-type', contentType]] as Array<[string, string]>) : []),
  ];
  return {
    family: 'body mutation',
    label: `${who} ${path} ${label} (${contentType || 'no content-type'})`,
    spec: { method: 'POST', path, headers, body },
    refused: false,
  };
}

function structuralMutation(prng: Prng, original: Record<string, unknown>): { text: string; label: string } {
  const body: Record<string, unknown> = structuredClone(original);
  const keysOf = Object.keys(body);
  const field = prng.pick(keysOf);
  const wrongValues: unknown[] = [
    null,
    true,
    0,
    -1,
    1.5,
    1e308,
    '',
    'x',
    [],
    {},
    [null],
    { a: 1 },
    'x'.repeat(5000),
    Number.MAX_SAFE_INTEGER + 2,
  ];
  switch (prng.below(13)) {
    case 0:
      delete body[field];
      return { text: JSON.stringify(body), label: `without ${field}` };
    case 1:
      body[prng.pick(['extra', 'Statements', 'mode ', 'sql', ''])] = 1;
      return { text: JSON.stringify(body), label: 'unknown property' };
    case 2:
      body[field] = prng.pick(wrongValues);
      return { text: JSON.stringify(body), label: `${field} of the wrong type` };
    case 3: {
      const statements = body.statements as Array<Record<string, unknown>> | undefined;
      if (statements?.[0]) {
        const which = prng.pick(['sql', 'params', 'extra']);
        statements[0][which] = prng.pick(wrongValues);
        return { text: JSON.stringify(body), label: `statement ${which} of the wrong type` };
      }
      return { text: JSON.stringify([body]), label: 'wrapped in an array' };
    }
    case 4: {
      const number = prng.pick([
        '1e400',
        '-1e400',
        '123456789012345678901234567890',
        '1.7976931348623157e309',
        '-0',
        '0.0000000000000000000000001',
        '1E+2',
        '00',
        '01',
        '.5',
        '5.',
        '+1',
        'NaN',
        'Infinity',
        '0x10',
      ]);
      const text = JSON.stringify(body).replace(/(:\s*)(\d+)/, `$1${number}`);
      return { text, label: `number ${number}` };
    }
    case 5: {
      const depth = prng.pick([64, 1000, 10_000, 100_000]);
      const kind = prng.pick(['array', 'object', 'mixed'] as const);
      const text = JSON.stringify(body).replace(/(:\s*)(\[|\{|"[^"]*"|\d+)/, `$1${deepJson(depth, kind)}`);
      return { text, label: `nested ${depth} deep (${kind})` };
    }
    case 6: {
      const duplicate = prng.pick(keysOf);
      const text = JSON.stringify(body).replace(/^\{/, `{${JSON.stringify(duplicate)}:${JSON.stringify(prng.pick(wrongValues))},`);
      return { text, label: `duplicate key ${duplicate} (first)` };
    }
    case 7: {
      const duplicate = prng.pick(keysOf);
      const text = JSON.stringify(body).replace(/\}$/, `,${JSON.stringify(duplicate)}:${JSON.stringify(prng.pick(wrongValues))}}`);
      return { text, label: `duplicate key ${duplicate} (last)` };
    }
    case 8: {
      const poison = prng.pick([
        '"__proto__":{"statements":[{"sql":"DELETE FROM t"}]}',
        '"__proto__":{"isAdmin":true}',
        '"constructor":{"prototype":{"polluted":true}}',
        '"constructor":1',
        '"prototype":{}',
        '"__proto__":null',
        '"\\u005f\\u005fproto\\u005f\\u005f":{"x":1}',
      ]);
      const text = JSON.stringify(body).replace(/^\{/, `{${poison},`);
      return { text, label: `prototype key ${poison.slice(0, 20)}` };
    }
    case 9: {
      const text = JSON.stringify(body);
      return {
        text: text.replace(
          /"([^"]*)"/,
          (_m, inner: string) => `"${inner}${prng.pick(['\\ud800', '\\udfff', '\\u0000', '\\uFFFF', '\\x41', '\\', '\\u12', '\\/'])}"`,
        ),
        label: 'string escape',
      };
    }
    case 10: {
      const text = JSON.stringify(body);
      return {
        text: prng.pick([
          '',
          ' ',
          '\ufeff' + text,
          text + text,
          text + ',',
          `[${text}]`,
          'null',
          'true',
          '"string"',
          '0',
          text.replace(/"/g, "'"),
          `${text}\u0000`,
        ]),
        label: 'whole-body oddity',
      };
    }
    case 11: {
      const statements = body.statements as Array<Record<string, unknown>> | undefined;
      if (statements) {
        const count = prng.pick([0, 1001, 5000]);
        body.statements = Array.from({ length: count }, () => ({ sql: 'SELECT 1' }));
        return { text: JSON.stringify(body), label: `${count} statements` };
      }
      return { text: JSON.stringify({ ...body, name: nastyString(prng, prng.below(80)) }), label: 'nasty name' };
    }
    default: {
      const statements = body.statements as Array<Record<string, unknown>> | undefined;
      if (statements?.[0]) {
        statements[0].sql = mutateSql(prng, String(statements[0].sql));
        return { text: JSON.stringify(body), label: 'mutated SQL' };
      }
      return { text: JSON.stringify(body).replace(/"[a-zA-Z]+":/, '"\u0000":'), label: 'NUL key' };
    }
  }
}

/** Parameters of every type, shape and size, bound by a key that cannot write (or in the sandbox). */
function paramsCase(prng: Prng): FuzzCase {
  const asReader = prng.chance(0.75);
  const sql = asReader
    ? prng.pick([...PARAM_SQL, 'INSERT INTO t(b) VALUES (?)', 'UPDATE t SET b = :a'])
    : prng.pick([...PARAM_SQL, 'INSERT INTO t(b, d) VALUES (?, ?)']);
  let params: unknown = randomParams(prng);
  let raw: string | undefined;
  if (prng.chance(0.08)) params = Array.from({ length: prng.pick([32_766, 32_767, 40_000]) }, () => 1);
  if (prng.chance(0.05))
    raw = JSON.stringify({ statements: [{ sql: 'SELECT ?', params: [0] }] }).replace(
      '[0]',
      prng.pick([
        '[1e400]',
        '[-1e400]',
        '[1e-400]',
        '[123456789012345678901234567890]',
        '["\\ud800"]',
        '[{"$int":"1","$int":"x"}]',
        '{"a":1,"a":2}',
        '[' + deepJson(5000, 'array') + ']',
      ]),
    );
  const body =
    raw === undefined
      ? json({ statements: [{ sql, ...(params === undefined ? {} : { params }) }], ...(prng.chance(0.2) ? { mode: 'independent' } : {}) })
      : Buffer.from(raw);
  return {
    family: 'params',
    label: `${asReader ? 'reader' : 'sandbox'} ${sql} ${body.subarray(0, 120).toString()}`,
    spec: {
      method: 'POST',
      path: `/v1/databases/${asReader ? 'fuzz' : 'sandbox'}/query`,
      headers: jsonHeaders(asReader ? keys.reader : keys.root),
      body,
    },
    refused: false,
  };
}

/** Traversal, encodings, NUL bytes, overlong and unicode segments, on read routes (root key) or any route (reader key). */
function pathCase(prng: Prng): FuzzCase {
  const tricks = [
    '..',
    '%2e%2e',
    '%2E%2E',
    '.%2e',
    '%252e%252e',
    '%25252e',
    '..%2f..%2f',
    '..%5c..%5c',
    '%2f',
    '%5c',
    '%00',
    '%00fuzz',
    'fuzz%00',
    '%',
    '%zz',
    '%e0%80%ae',
    '%c0%ae%c0%ae',
    '%ff',
    '%u002e',
    '....//',
    '.',
    '',
    '//',
    'fuzz;x',
    'fuzz?x=..',
    'fuzz#x',
    'a'.repeat(100),
    'a'.repeat(101),
    'a'.repeat(5000),
    encodeURIComponent('ä😀'),
    encodeURIComponent('../../etc/passwd'),
    '%2e%2e%2f%2e%2e%2fcluster%2fkeys',
    'FUZZ',
    'fuzz%20',
    '%20fuzz',
    'fu%7a%7a',
    '%66uzz',
    'other',
    '*',
    '~',
    '$',
    'con',
    '\\..\\..',
  ];
  const rawOnly = ['\u0000', ' ', '\t', 'ä', '😀', '\u202e', '"', '<', '\\', '{', '^', '`', '|', '\r', '\u00ff'];
  const isRaw = prng.chance(0.15);
  const trick = isRaw ? prng.pick(rawOnly) : prng.pick(tricks);
  const templates = [
    (x: string) => `/v1/databases/${x}`,
    (x: string) => `/v1/databases/${x}/query`,
    (x: string) => `/v1/databases/fuzz/${x}`,
    (x: string) => `/v1/databases/${x}/../fuzz`,
    (x: string) => `/v1/databases/fuzz/${x}/../../keys`,
    (x: string) => `/v1/${x}/databases/fuzz`,
    (x: string) => `/${x}/v1/databases`,
    (x: string) => `/v1/databases/fuzz/restores/${x}`,
    (x: string) => `/v1/databases/fuzz/transactions/${x}/commit`,
    (x: string) => `/v1/keys/${x}`,
    (x: string) => `/healthz/${x}`,
    (x: string) => `/v1/databases?name=${x}`,
    (x: string) => `/v1/databases/fuzz?${x}=${x}`,
  ];
  const path = prng.pick(templates)(trick);
  // With the root key only methods that cannot change anything; the reader key may try everything.
  const asRoot = prng.chance(0.5);
  // (Not HEAD on raw paths: the parser answers a request it cannot read with a body, and the
  // client could not tell where that answer ends.)
  const method = asRoot ? prng.pick(isRaw ? ['GET', 'POST'] : ['GET', 'HEAD', 'POST']) : prng.pick(['GET', 'POST', 'DELETE', 'PUT']);
  const read = { statements: [{ sql: 'SELECT count(*) FROM t' }] };
  const body = method === 'POST' ? json(asRoot ? read : { statements: [{ sql: 'DELETE FROM t' }] }) : undefined;
  const headers = method === 'POST' ? jsonHeaders(asRoot ? keys.root : keys.reader) : bearer(asRoot ? keys.root : keys.reader);
  // POST with the root key stays harmless: the only POST routes under these paths that write
  // would need a body other than a read query (compact takes none but is excluded by the paths).
  const safePath = !(
    asRoot &&
    method === 'POST' &&
    /compact|restore$|transactions$|\/v1\/databases$|\/v1\/keys$/.test(path.split('?')[0] ?? '')
  );
  const spec: RequestSpec = { method: safePath ? method : 'GET', path, headers, ...(safePath && body ? { body } : {}) };
  return {
    family: 'path',
    label: `${asRoot ? 'root' : 'reader'} ${spec.method} ${JSON.stringify(path).slice(0, 100)}`,
    spec,
    refused: false,
  };
}

/** Every route with methods it does not have (root key), and odd method tokens. */
function methodCase(prng: Prng): FuzzCase {
  const route = prng.pick(ROUTES);
  const wrong = METHODS.filter((method) => !route.methods.includes(method.toUpperCase()) || method !== method.toUpperCase());
  const method = prng.pick(wrong);
  const body = prng.chance(0.5) ? json({ statements: [{ sql: 'DELETE FROM t' }], name: 'x' }) : undefined;
  const headAllowed = method === 'HEAD' && route.methods.includes('GET');
  // Lower-case methods never match a route (methods are case-sensitive); node:http upper-cases
  // them, so they go raw.
  const lowerCase = method !== method.toUpperCase();
  const spec: RequestSpec = {
    method,
    path: route.path,
    headers: body ? jsonHeaders(keys.root) : bearer(keys.root),
    ...(body ? { body } : {}),
  };
  return {
    family: 'method',
    label: `${method} ${route.path}`,
    ...(lowerCase ? { raw: { bytes: serialize(spec), methods: [method], stalls: false } } : { spec }),
    // Lower-case methods included: llhttp knows only upper-case ones, and routes match exactly, so
    // `delete /v1/databases/fuzz` with the root key must be refused, not run.
    refused: !headAllowed,
  };
}

/** Broken HTTP/1.1 framing on raw sockets. */
function framingCase(prng: Prng): FuzzCase {
  const auth = `Authorization: Bearer ${prng.chance(0.5) ? keys.reader : keys.root}`;
  // Bodies that change nothing: a read with the root key, a write with the reader key.
  const body = prng.chance(0.5)
    ? JSON.stringify({ statements: [{ sql: 'SELECT 1' }] })
    : JSON.stringify({ statements: [{ sql: 'DELETE FROM t' }] });
  const safeAuth = body.includes('DELETE') ? `Authorization: Bearer ${keys.reader}` : auth;
  const head = (lines: string[]) => lines.join('\r\n') + '\r\n\r\n';
  const post = (extra: string[]) => [
    'POST /v1/databases/fuzz/query HTTP/1.1',
    'Host: 127.0.0.1',
    safeAuth,
    'Content-Type: application/json',
    ...extra,
  ];
  const cases: Array<
    () => { label: string; bytes: Buffer; methods?: string[]; stalls?: boolean; pieces?: number; endAfterWrite?: boolean; bare?: string }
  > = [
    () => ({
      label: 'CL and TE',
      bytes: Buffer.from(
        head(post([`Content-Length: ${body.length}`, 'Transfer-Encoding: chunked'])) +
          `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
      ),
    }),
    () => ({ label: 'two different CLs', bytes: Buffer.from(head(post([`Content-Length: ${body.length}`, 'Content-Length: 3'])) + body) }),
    () => ({ label: 'negative CL', bytes: Buffer.from(head(post(['Content-Length: -1'])) + body) }),
    () => ({
      label: 'non-numeric CL',
      bytes: Buffer.from(
        head(post([`Content-Length: ${prng.pick(['abc', '1e3', '0x10', '+5', ' ', '1,1', '99999999999999999999999'])}`])) + body,
      ),
    }),
    () => ({
      label: 'CL shorter than body (rest is a second request)',
      bytes: Buffer.from(head(post([`Content-Length: ${prng.between(0, body.length - 1)}`, 'Connection: close'])) + body),
      methods: ['POST', 'GET'],
    }),
    () => ({
      label: 'CL longer than body',
      bytes: Buffer.from(head(post([`Content-Length: ${body.length + prng.between(1, 1000)}`])) + body),
      stalls: true,
    }),
    () => ({ label: 'huge CL', bytes: Buffer.from(head(post(['Content-Length: 10000000000'])) + body), stalls: true }),
    () => ({
      label: 'bad chunk size',
      bytes: Buffer.from(
        head(post(['Transfer-Encoding: chunked'])) + `${prng.pick(['zz', '-1', 'ffffffffffffffffff', '1 1', ''])}\r\n${body}\r\n0\r\n\r\n`,
      ),
    }),
    () => ({
      label: 'chunk longer than declared',
      bytes: Buffer.from(head(post(['Transfer-Encoding: chunked'])) + `2\r\n${body}\r\n0\r\n\r\n`),
    }),
    () => ({
      label: 'chunk extensions and trailers',
      bytes: Buffer.from(
        head(post(['Transfer-Encoding: chunked', 'Connection: close'])) +
          `${body.length.toString(16)};ext="a\\"b"\r\n${body}\r\n0\r\nX-Trailer: 1\r\n\r\n`,
      ),
    }),
    () => ({
      label: 'TE gzip, chunked',
      bytes: Buffer.from(head(post(['Transfer-Encoding: gzip, chunked'])) + `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`),
    }),
    () => ({
      label: 'TE identity',
      bytes: Buffer.from(head(post(['Transfer-Encoding: identity', `Content-Length: ${body.length}`])) + body),
    }),
    () => ({ label: 'obs-fold header', bytes: Buffer.from(head(post([`Content-Length: ${body.length}`, 'X-Folded: a', ' b'])) + body) }),
    () => ({ label: 'header without colon', bytes: Buffer.from(head(post([`Content-Length: ${body.length}`, 'NoColonHere'])) + body) }),
    () => ({ label: 'space before colon', bytes: Buffer.from(head(post([`Content-Length : ${body.length}`])) + body) }),
    () => ({ label: 'NUL in header', bytes: Buffer.from(head(post([`Content-Length: ${body.length}`, 'X-Nul: a\u0000b'])) + body) }),
    () => ({ label: 'bare LF', bytes: Buffer.from(post([`Content-Length: ${body.length}`]).join('\n') + '\n\n' + body) }),
    () => ({ label: 'bare CR', bytes: Buffer.from(post([`Content-Length: ${body.length}`]).join('\r') + '\r\r' + body) }),
    () => ({
      label: 'header too large',
      bytes: Buffer.from(head(post([`Content-Length: ${body.length}`, `X-Big: ${'a'.repeat(prng.between(17_000, 40_000))}`])) + body),
    }),
    () => ({
      label: 'many headers',
      bytes: Buffer.from(
        head(post([`Content-Length: ${body.length}`, ...Array.from({ length: prng.between(500, 3000) }, (_, i) => `X-H${i}: ${i}`)])) +
          body,
      ),
    }),
    () => ({
      label: 'no Host',
      bytes: Buffer.from(head(['GET /v1/databases/fuzz HTTP/1.1', auth, 'Connection: close'])),
      bare: 'node refuses HTTP/1.1 without Host itself',
    }),
    () => ({
      label: 'two Hosts',
      bytes: Buffer.from(head(['GET /v1/databases/fuzz HTTP/1.1', 'Host: a', 'Host: b', auth, 'Connection: close'])),
    }),
    () => ({ label: 'HTTP/1.0', bytes: Buffer.from(head(['GET /v1/databases/fuzz HTTP/1.0', auth])) }),
    () => ({ label: 'HTTP/0.9', bytes: Buffer.from('GET /v1/databases/fuzz\r\n'), stalls: true }),
    () => ({
      label: 'unknown version',
      bytes: Buffer.from(head([`GET /v1/databases/fuzz HTTP/${prng.pick(['2.0', '1.2', '9.9', '1', 'x'])}`, 'Host: a', auth])),
    }),
    () => ({ label: 'HTTP/2 preface', bytes: Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n') }),
    () => ({ label: 'TLS client hello', bytes: Buffer.from('16030100a5010000a10303' + '00'.repeat(40), 'hex') }),
    () => ({ label: 'random bytes', bytes: Buffer.from(prng.bytes(prng.between(1, 3000))) }),
    () => ({
      label: 'request line garbage',
      bytes: Buffer.from(
        head([
          prng.pick([
            'GET',
            'GET  /v1/databases  HTTP/1.1',
            ' GET /v1/databases HTTP/1.1',
            'GET /v1/databases HTTP/1.1 extra',
            'GET\t/v1/databases\tHTTP/1.1',
            '/v1/databases',
            'G\u00c9T /v1/databases HTTP/1.1',
            'GET http://evil.example/v1/databases HTTP/1.1',
            'GET * HTTP/1.1',
          ]),
          'Host: a',
          auth,
          'Connection: close',
        ]),
      ),
    }),
    () => ({
      label: 'absolute-form URI',
      bytes: Buffer.from(head(['GET http://127.0.0.1/v1/databases/fuzz HTTP/1.1', 'Host: evil.example', auth, 'Connection: close'])),
    }),
    () => ({ label: 'CONNECT', bytes: Buffer.from(head(['CONNECT 127.0.0.1:22 HTTP/1.1', 'Host: 127.0.0.1:22', auth])), stalls: true }),
    () => ({
      label: 'upgrade',
      bytes: Buffer.from(
        head([
          'GET /v1/databases HTTP/1.1',
          'Host: a',
          auth,
          'Connection: Upgrade',
          'Upgrade: websocket',
          'Sec-WebSocket-Version: 13',
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
        ]),
      ),
      stalls: true,
    }),
    () => ({
      label: 'h2c upgrade',
      bytes: Buffer.from(
        head([
          'GET /v1/databases HTTP/1.1',
          'Host: a',
          auth,
          'Connection: Upgrade, HTTP2-Settings',
          'Upgrade: h2c',
          'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA',
          'Connection: close',
        ]),
      ),
      stalls: true,
    }),
    () => ({
      label: 'Expect: 100-continue',
      bytes: Buffer.from(head(post([`Content-Length: ${body.length}`, 'Expect: 100-continue', 'Connection: close'])) + body),
    }),
    () => ({
      label: 'Expect: unknown',
      bytes: Buffer.from(head(post([`Content-Length: ${body.length}`, 'Expect: 200-ok', 'Connection: close'])) + body),
    }),
    () => ({
      label: 'pipelined',
      bytes: Buffer.from(
        head(['GET /v1/databases/fuzz HTTP/1.1', 'Host: a', auth]) +
          head(post([`Content-Length: ${body.length}`])) +
          body +
          head(['GET /healthz HTTP/1.1', 'Host: a', 'Connection: close']),
      ),
      methods: ['GET', 'POST', 'GET'],
    }),
    () => ({
      label: 'byte by byte',
      bytes: Buffer.from(head(post([`Content-Length: ${body.length}`, 'Connection: close'])) + body),
      pieces: 40,
    }),
    () => ({
      label: 'headers then close',
      bytes: Buffer.from(head(post([`Content-Length: ${body.length}`])).slice(0, prng.between(5, 60))),
      stalls: true,
      endAfterWrite: true,
    }),
    () => ({ label: 'nothing', bytes: Buffer.alloc(0), stalls: true, endAfterWrite: true }),
    () => ({
      label: 'non-ASCII header name',
      bytes: Buffer.from(head(post([`Content-Length: ${body.length}`, 'X-Ünicode: 1', 'Connection: close'])) + body),
    }),
    () => ({ label: 'UTF-8 path', bytes: Buffer.from(head(['GET /v1/databases/füzz HTTP/1.1', 'Host: a', auth, 'Connection: close'])) }),
    () => ({
      label: 'content-type with NUL',
      bytes: Buffer.from(
        head([
          'POST /v1/databases/fuzz/query HTTP/1.1',
          'Host: a',
          safeAuth,
          'Content-Type: application/json\u0000',
          `Content-Length: ${body.length}`,
          'Connection: close',
        ]) + body,
      ),
    }),
  ];
  const made = prng.pick(cases)();
  return {
    family: 'framing',
    label: made.label,
    raw: {
      bytes: made.bytes,
      methods: made.methods ?? ['POST'],
      stalls: made.stalls === true,
      ...(made.pieces ? { pieces: made.pieces } : {}),
      ...(made.endAfterWrite ? { endAfterWrite: true } : {}),
    },
    refused: false,
    mayGoUnanswered: true,
    ...(made.bare ? { bareRefusal: made.bare } : {}),
  };
}

/** Database names of every shape, where names are taken: bodies, paths, restore targets, key patterns. */
function namesCase(prng: Prng): FuzzCase {
  const name = prng.pick(DATABASE_NAMES);
  const where = prng.below(4);
  if (where === 0) {
    // Creating: the root key only with names the pattern refuses; other names with the reader key.
    const valid = /^[a-z0-9][a-z0-9_-]{0,62}$/.test(name);
    return {
      family: 'names',
      label: `create ${JSON.stringify(name)}`,
      spec: { method: 'POST', path: '/v1/databases', headers: jsonHeaders(valid ? keys.reader : keys.root), body: json({ name }) },
      refused: true,
    };
  }
  if (where === 1) {
    const key = prng.pick([keys.root, keys.reader, keys.catastrophic]);
    return {
      family: 'names',
      label: `get ${JSON.stringify(name)}`,
      spec: { method: 'GET', path: `/v1/databases/${encodeURIComponent(name)}`, headers: bearer(key) },
      refused:
        !(['fuzz', 'sandbox', 'other', LONG_NAME].includes(name) && key === keys.root) &&
        !(['fuzz', 'sandbox'].includes(name) && key === keys.reader),
    };
  }
  if (where === 2) {
    return {
      family: 'names',
      label: `restore to ${JSON.stringify(name)}`,
      spec: {
        method: 'POST',
        path: '/v1/databases/fuzz/restore',
        headers: jsonHeaders(keys.reader),
        body: json({ position: '1', target: name }),
      },
      refused: true,
    };
  }
  return {
    family: 'names',
    label: `key pattern ${JSON.stringify(name)}`,
    spec: {
      method: 'POST',
      path: '/v1/keys',
      headers: jsonHeaders(keys.reader),
      body: json({ name: 'n', databases: [name], actions: ['read'] }),
    },
    refused: true,
  };
}

/**
 * Signed requests (X-Litebase-Key-Id, -Date, -Signature; no Authorization): every way of getting
 * them wrong, a correct signature by a key that may not write, and a correct one sent twice.
 */
function signedCase(prng: Prng): FuzzCase {
  const url = (path: string) => `${server.url}${path}`;
  const write = json({ statements: [{ sql: prng.pick(WRITES_SQL) }] });
  const path = '/v1/databases/fuzz/query';
  const headersOf = (record: Record<string, string>): Array<[string, string]> => [
    ...Object.entries(record),
    ['content-type', 'application/json'],
  ];
  const kind = prng.below(10);
  if (kind === 0) {
    // Correct, by the read-only key: signed is not the same as allowed.
    const signed = signatureHeaders({ key: keys.reader, method: 'POST', url: url(path), body: write });
    return {
      family: 'signed',
      label: 'reader key, valid signature, write',
      spec: { method: 'POST', path, headers: headersOf(signed), body: write },
      refused: true,
    };
  }
  if (kind === 1) {
    // Correct, by the root key, on the sandbox, sent twice on one connection: the second is a replay.
    const body = json({ statements: [{ sql: "INSERT INTO t(b) VALUES ('signed')" }] });
    const sandboxPath = '/v1/databases/sandbox/query';
    const signed = signatureHeaders({ key: keys.root, method: 'POST', url: url(sandboxPath), body });
    const once = serialize({ method: 'POST', path: sandboxPath, headers: headersOf(signed), body }, { close: false });
    const twice = Buffer.concat([once, serialize({ method: 'POST', path: sandboxPath, headers: headersOf(signed), body })]);
    return {
      family: 'signed',
      label: 'root signature replayed',
      raw: { bytes: twice, methods: ['POST', 'POST'], stalls: false },
      refused: false,
      checkAll: (responses) => {
        const second = responses[1];
        if (!second) return `${responses.length} answers to two pipelined requests`;
        const code = (JSON.parse(second.body.toString('utf8')) as { error?: { code?: string } }).error?.code;
        return second.status === 401 && code === 'SIGNATURE_REPLAYED'
          ? undefined
          : `the replay was answered ${second.status} ${code ?? ''}`;
      },
    };
  }
  // Everything else is wrong in one way; the key is the root key, so only the flaw can refuse it.
  const date = new Date(Date.now() + (kind === 2 ? prng.pick([-1, 1]) * prng.between(6 * 60_000, 10 ** 12) : 0));
  const signed: Record<string, string> = signatureHeaders({ key: keys.root, method: 'POST', url: url(path), body: write, date });
  let label: string;
  let body = write;
  switch (kind) {
    case 2:
      label = 'date outside the window';
      break;
    case 3: {
      const name = prng.pick(['x-litebase-key-id', 'x-litebase-date', 'x-litebase-signature']);
      delete signed[name];
      label = `without ${name}`;
      break;
    }
    case 4:
      signed['x-litebase-signature'] = prng.pick([
        '',
        'v1=',
        'v2=' + '0'.repeat(64),
        'v1=' + 'g'.repeat(64),
        'v1=' + '0'.repeat(63),
        'v1=' + '0'.repeat(65),
        '0'.repeat(64),
        `v1=${'ab'.repeat(32)} `,
        'v1=' + 'A'.repeat(64),
      ]);
      label = `malformed signature ${signed['x-litebase-signature']?.slice(0, 12)}`;
      break;
    case 5:
      signed['x-litebase-date'] = prng.pick([
        '',
        'yesterday',
        'NaN',
        '-1',
        '1e12',
        '9'.repeat(15),
        '9'.repeat(16),
        '2026-13-45T99:99:99Z',
        '2026-11-25T10:00:00',
        '2026-11-25 10:00:00Z',
        '0x10',
        ' 0',
        `${Date.now()}.5`,
      ]);
      label = `date ${JSON.stringify(signed['x-litebase-date'])}`;
      break;
    case 6:
      signed['x-litebase-key-id'] = prng.pick([
        '',
        'ROOT',
        'Root',
        keys.readerId.toUpperCase(),
        'abcdefghijkl',
        keys.revokedId,
        '../../../etc',
        'a'.repeat(2000),
        'lb_x',
        '*',
      ]);
      label = `key id ${JSON.stringify(signed['x-litebase-key-id']?.slice(0, 20))}`;
      break;
    case 7:
      body = json({ statements: [{ sql: 'DELETE FROM u' }] });
      label = 'body changed after signing';
      break;
    case 8:
      signed['x-litebase-signature'] = `v1=${prng.bytes(32).toString('hex')}`;
      label = 'random signature';
      break;
    default:
      // A signature for another path (sandbox), sent to fuzz.
      Object.assign(signed, signatureHeaders({ key: keys.root, method: 'POST', url: url('/v1/databases/sandbox/query'), body: write }));
      label = 'signature for another path';
  }
  const headers = headersOf(signed);
  if (prng.chance(0.15)) headers.push(['authorization', 'Bearer nope']);
  return { family: 'signed', label, spec: { method: 'POST', path, headers, body }, refused: true };
}

/** With the root key: create or restore over a database that exists (refused), and now and then a compaction (allowed). */
function existingCase(prng: Prng): FuzzCase {
  const existing = prng.pick(['fuzz', 'sandbox', 'other', LONG_NAME]);
  const kind = prng.below(8);
  if (kind === 0) {
    return {
      family: 'existing',
      label: 'compact fuzz',
      spec: { method: 'POST', path: '/v1/databases/fuzz/compact', headers: bearer(keys.root) },
      refused: false,
    };
  }
  if (kind < 4) {
    return {
      family: 'existing',
      label: `create ${existing}`,
      spec: { method: 'POST', path: '/v1/databases', headers: jsonHeaders(keys.root), body: json({ name: existing }) },
      refused: true,
    };
  }
  const source = prng.pick(['fuzz', 'sandbox', 'other']);
  const body = {
    ...(prng.chance(0.5) ? { position: '1' } : { timestamp: new Date(Date.now() - prng.below(60_000)).toISOString() }),
    target: existing,
    ...(prng.chance(0.5) ? { wait: true } : {}),
  };
  return {
    family: 'existing',
    label: `restore ${source} onto ${existing}`,
    spec: { method: 'POST', path: `/v1/databases/${source}/restore`, headers: jsonHeaders(keys.root), body: json(body) },
    refused: true,
  };
}

/** Requests that may succeed, in the sandbox database: writes, interactive transactions. */
function sandboxCase(prng: Prng): FuzzCase {
  const kind = prng.below(4);
  if (kind === 0) {
    const statements = [
      { sql: prng.pick(["INSERT INTO t(b) VALUES ('s')", 'UPDATE t SET c = c + 1 WHERE a < 5', 'DELETE FROM t WHERE a > 35']) },
    ];
    return {
      family: 'sandbox',
      label: 'write',
      spec: { method: 'POST', path: '/v1/databases/sandbox/query', headers: jsonHeaders(keys.root), body: json({ statements }) },
      refused: false,
    };
  }
  if (kind === 1) {
    return {
      family: 'sandbox',
      label: 'begin',
      spec: {
        method: 'POST',
        path: '/v1/databases/sandbox/transactions',
        headers: jsonHeaders(keys.root),
        body: json({ timeoutMs: prng.between(1, 300) }),
      },
      refused: false,
    };
  }
  if (kind === 2) {
    return {
      family: 'sandbox',
      label: 'read',
      spec: {
        method: 'POST',
        path: '/v1/databases/fuzz/query',
        headers: jsonHeaders(keys.reader),
        body: json({ statements: [{ sql: prng.pick(READS_SQL) }] }),
      },
      refused: false,
    };
  }
  const asOther = prng.chance(0.5);
  const checkList = (body: string) => {
    const names = ((JSON.parse(body) as { databases?: Array<{ name: string }> }).databases ?? []).map((database) => database.name);
    const expected = asOther ? ['other'] : [];
    return names.join() === expected.join()
      ? undefined
      : `the ${asOther ? 'other-database' : 'catastrophic-pattern'} key sees ${names.join(', ')}`;
  };
  return {
    family: 'sandbox',
    label: `list as ${asOther ? 'other' : 'catastrophic-pattern'} key`,
    spec: { method: 'GET', path: '/v1/databases', headers: bearer(asOther ? keys.other : keys.catastrophic) },
    refused: false,
    check: checkList,
  };
}

// ---- the run --------------------------------------------------------------------------------------

interface Tally {
  cases: number;
  requests: number;
  byFamily: Map<string, number>;
  msByFamily: Map<string, number>;
  byStatus: Map<string, number>;
  unanswered: number;
  failures: string[];
}

async function runCase(id: number, tally: Tally): Promise<void> {
  const fuzzCase = generate(id);
  const started = performance.now();
  let outcome: Outcome;
  if (fuzzCase.raw) {
    outcome = await sendRaw(port, fuzzCase.raw.bytes, {
      timeoutMs: fuzzCase.raw.stalls ? STALL_MS : REQUEST_TIMEOUT_MS,
      methods: fuzzCase.raw.methods,
      ...(fuzzCase.raw.pieces ? { pieces: fuzzCase.raw.pieces } : {}),
      ...(fuzzCase.raw.endAfterWrite ? { endAfterWrite: true } : {}),
    });
  } else if (fuzzCase.spec) {
    outcome = await sendHttp(agent, port, fuzzCase.spec, REQUEST_TIMEOUT_MS);
  } else {
    throw new Error(`case ${id} has nothing to send`);
  }
  tally.cases++;
  tally.msByFamily.set(fuzzCase.family, (tally.msByFamily.get(fuzzCase.family) ?? 0) + performance.now() - started);
  if (process.env.LITEBASE_FUZZ_SLOW && performance.now() - started > Number(process.env.LITEBASE_FUZZ_SLOW)) {
    console.log(
      `slow: case ${id} [${fuzzCase.family}] ${fuzzCase.label.slice(0, 100)} ${(performance.now() - started).toFixed(0)} ms, ${outcome.responses.length} answers${outcome.timedOut ? ', timed out' : ''}`,
    );
  }
  tally.requests += Math.max(1, fuzzCase.raw?.methods.length ?? 1);
  tally.byFamily.set(fuzzCase.family, (tally.byFamily.get(fuzzCase.family) ?? 0) + 1);
  const where = `case ${id} [${fuzzCase.family}] ${fuzzCase.label.slice(0, 200)}`;
  if (outcome.responses.length === 0) {
    tally.unanswered++;
    tally.byStatus.set(outcome.timedOut ? 'timeout' : 'closed', (tally.byStatus.get(outcome.timedOut ? 'timeout' : 'closed') ?? 0) + 1);
    // node:http requests must be answered, except when the server refused the body early (413,
    // 401) and closed while the client was still writing: the socket error wins over the answer.
    const lostToEarlyClose = outcome.transport === 'http' && outcome.closedEarly && (fuzzCase.spec?.body?.length ?? 0) > 64 * 1024;
    if (!fuzzCase.mayGoUnanswered && !lostToEarlyClose)
      tally.failures.push(`${where}: no answer (${outcome.timedOut ? 'timed out' : 'connection closed'})`);
    return;
  }
  if (outcome.garbage) tally.failures.push(`${where}: unparseable bytes after the answers: ${JSON.stringify(outcome.garbage)}`);
  const overall = fuzzCase.checkAll?.(outcome.responses);
  if (overall) tally.failures.push(`${where}: ${overall}`);
  for (const [index, response] of outcome.responses.entries()) {
    tally.byStatus.set(String(response.status), (tally.byStatus.get(String(response.status)) ?? 0) + 1);
    const method = fuzzCase.raw?.methods[index] ?? fuzzCase.spec?.method ?? 'GET';
    const problems = judge(response, {
      refused: fuzzCase.refused && index === 0,
      head: method.toUpperCase() === 'HEAD',
      emptyErrorBody: fuzzCase.bareRefusal !== undefined && response.status === 400 && response.body.length === 0,
      secrets: [REPO_ROOT, server.dataDir],
    });
    const extra = response.status < 300 ? fuzzCase.check?.(response.body.toString('utf8')) : undefined;
    if (extra) problems.push(extra);
    for (const problem of problems) tally.failures.push(`${where}: ${problem}`);
  }
}

describe('hostile input', () => {
  it('answers the inputs that once got through as it should (regression corpus)', async () => {
    const query = (db: string, statements: unknown[], key = keys.root) =>
      server.request('POST', `/v1/databases/${db}/query`, { statements }, { authorization: `Bearer ${key}` });
    // The statement guard read past neither a leading ";" nor a quoted or commented PRAGMA name:
    // `[INSERT, ";COMMIT"]` committed behind the log's back (500, data the log never saw) and
    // `PRAGMA/**/"locking_mode" = EXCLUSIVE` in a write batch left every later write failing.
    for (const sql of [
      ';BEGIN',
      ' ; ;COMMIT',
      "; ATTACH '/etc/passwd' AS p",
      ';VACUUM',
      ';PRAGMA journal_mode = DELETE',
      'PRAGMA "journal_mode"',
      'PRAGMA/**/locking_mode = EXCLUSIVE',
      'PRAGMA main.[wal_autocheckpoint] = 1',
      "PRAGMA 'synchronous' = OFF",
    ]) {
      const refused = await query('fuzz', [{ sql: "INSERT INTO t(b) VALUES ('x')" }, { sql }]);
      expect(refused.status, sql).toBe(400);
      expect(refused.body.error.code, sql).toMatch(/^(STATEMENT_NOT_ALLOWED|TRANSACTION_CONTROL_NOT_ALLOWED)$/);
    }
    expect(await fingerprint()).toEqual(initial);
    // A schema change behind a comment or a ";" must still drop cached statements and their columns.
    expect((await query('sandbox', [{ sql: 'SELECT * FROM s' }])).body.results[0].columns).toEqual(['x']);
    expect((await query('sandbox', [{ sql: '/* c */ ;ALTER TABLE s ADD COLUMN y INTEGER' }])).status).toBe(200);
    const after = await query('sandbox', [{ sql: 'SELECT * FROM s' }]);
    expect(after.body.results[0].columns).toEqual(['x', 'y']);
    expect(after.body.results[0].rows[0]).toHaveLength(2);
    // A key pattern that a regular expression backtracks on forever (it hung the event loop).
    const started = performance.now();
    expect(
      (await server.request('GET', `/v1/databases/${LONG_NAME}`, undefined, { authorization: `Bearer ${keys.catastrophic}` })).status,
    ).toBe(403);
    expect(
      (await server.request('GET', '/v1/databases', undefined, { authorization: `Bearer ${keys.catastrophic}` })).body.databases,
    ).toEqual([]);
    expect(performance.now() - started).toBeLessThan(2000);
    // What fastify and node answer before our handlers: the API's error shape all the same.
    const shaped = async (spec: RequestSpec | Buffer, status: number, code: string) => {
      const outcome = Buffer.isBuffer(spec)
        ? await sendRaw(port, spec, { timeoutMs: REQUEST_TIMEOUT_MS, methods: ['GET'] })
        : await sendHttp(agent, port, spec, REQUEST_TIMEOUT_MS);
      const response = outcome.responses[0];
      expect(response?.status, code).toBe(status);
      expect(JSON.parse(response?.body.toString() ?? '').error.code).toBe(code);
    };
    await shaped({ method: 'GET', path: '/v1/databases/%zz', headers: bearer(keys.root) }, 400, 'INVALID_URL');
    await shaped({ method: 'GET', path: `/v1/databases/${'a'.repeat(101)}`, headers: bearer(keys.root) }, 414, 'URL_TOO_LONG');
    await shaped(Buffer.from('GARBAGE\r\n\r\n'), 400, 'MALFORMED_REQUEST');
    await shaped(Buffer.from(`GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`), 431, 'HEADERS_TOO_LARGE');
    await shaped(Buffer.from('GET /healthz HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nConnection: close\r\n\r\n'), 417, 'EXPECTATION_FAILED');
  });

  it('interactive transactions on fuzz that are refused, rolled back or left to expire change nothing', async () => {
    const as = (key: string) => ({ authorization: `Bearer ${key}` });
    const begin = await server.request('POST', '/v1/databases/fuzz/transactions', { timeoutMs: 5000 });
    expect(begin.status).toBe(201);
    const id = begin.body.transaction.id as string;
    const write = await server.request('POST', `/v1/databases/fuzz/transactions/${id}/query`, {
      statements: [{ sql: "INSERT INTO t(b) VALUES ('inside')" }, { sql: 'DELETE FROM u' }],
    });
    expect(write.status, JSON.stringify(write.body)).toBe(200);
    // Someone else tries to end it: another key, no key, a revoked key, the id under another database.
    for (const [key, status] of [
      [keys.reader, 403],
      [keys.other, 403],
      [keys.revoked, 401],
    ] as const) {
      expect((await server.request('POST', `/v1/databases/fuzz/transactions/${id}/commit`, undefined, as(key))).status).toBe(status);
    }
    expect((await fetch(`${server.url}/v1/databases/fuzz/transactions/${id}/commit`, { method: 'POST' })).status).toBe(401);
    expect((await server.request('POST', `/v1/databases/sandbox/transactions/${id}/commit`)).status).toBe(404);
    expect((await server.request('POST', `/v1/databases/other/transactions/${id}/commit`, undefined, as(keys.other))).status).toBe(404);
    // A statement the guard refuses inside it, and one hidden behind a semicolon, end nothing early.
    for (const sql of [';COMMIT', 'COMMIT', '/* x */ END', 'PRAGMA/**/"locking_mode" = EXCLUSIVE', "; ATTACH ':memory:' AS m"]) {
      const refused = await server.request('POST', `/v1/databases/fuzz/transactions/${id}/query`, { statements: [{ sql }] });
      expect(refused.status, sql).toBeGreaterThanOrEqual(400);
      expect(refused.status, sql).toBeLessThan(500);
    }
    expect((await server.request('POST', `/v1/databases/fuzz/transactions/${id}/rollback`)).status).toBe(200);
    expect(await fingerprint()).toEqual(initial);

    // One left to expire, with writes in it.
    const short = (await server.request('POST', '/v1/databases/fuzz/transactions', { timeoutMs: 200 })).body.transaction.id as string;
    await server.request('POST', `/v1/databases/fuzz/transactions/${short}/query`, { statements: [{ sql: 'UPDATE t SET b = NULL' }] });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await server.request('POST', `/v1/databases/fuzz/transactions/${short}/commit`)).status).toBe(409);
    expect(await fingerprint()).toEqual(initial);
    const count = await server.request('POST', '/v1/databases/fuzz/query', {
      statements: [{ sql: "SELECT count(*) FROM t WHERE b IS NULL OR b = 'inside'" }],
    });
    expect(count.body.results[0].rows).toEqual([[0]]);
  });

  it(`survives ${CASES} random and mutated requests and changes nothing it refused (seed ${SEED})`, async () => {
    console.log(`hostile-input: seed ${SEED} (replay with LITEBASE_FUZZ_SEED=${SEED}), ${CASES} cases, concurrency ${CONCURRENCY}`);
    const started = Date.now();
    const cpuBefore = { self: process.cpuUsage(), server: serverCpuMs() };
    const tally: Tally = {
      cases: 0,
      requests: 0,
      byFamily: new Map(),
      msByFamily: new Map(),
      byStatus: new Map(),
      unanswered: 0,
      failures: [],
    };
    let next = 0;
    let lastHealthCheck = 0;
    const worker = async () => {
      for (;;) {
        const id = next++;
        if (id >= CASES) return;
        await runCase(id, tally);
        if (server.child.exitCode !== null || server.child.signalCode !== null) {
          throw new Error(
            `the server exited (${server.child.exitCode ?? server.child.signalCode}) after case ${id}:\n${server.output.slice(-3000)}`,
          );
        }
        if (id - lastHealthCheck >= 500) {
          lastHealthCheck = id;
          // A server that stopped answering (an event loop stuck in a regex, say) fails the run now.
          const health = await fetch(`${server.url}/healthz`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) }).catch(
            (error: unknown) => {
              throw new Error(`/healthz did not answer after case ${id}: ${(error as Error).message}`);
            },
          );
          if (health.status !== 200) tally.failures.push(`after case ${id}: /healthz answered ${health.status}`);
        }
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const elapsed = Date.now() - started;
    const cpu = { self: process.cpuUsage(cpuBefore.self), server: serverCpuMs() - cpuBefore.server };

    const families = [...tally.byFamily.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([name, n]) => `${name}=${n} (${((tally.msByFamily.get(name) ?? 0) / n).toFixed(1)} ms avg)`)
      .join(', ');
    const statuses = [...tally.byStatus.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([status, n]) => `${status}:${n}`)
      .join(' ');
    console.log(`hostile-input: ${tally.cases} cases (${tally.requests} requests) in ${elapsed} ms; ${families}`);
    console.log(`hostile-input: statuses ${statuses}; unanswered ${tally.unanswered}`);
    console.log(
      `hostile-input: CPU: this process ${((cpu.self.user + cpu.self.system) / 1000).toFixed(0)} ms, server ${cpu.server.toFixed(0)} ms`,
    );
    // One line per kind of failure (numbers blurred), with its count and first example.
    const kinds = new Map<string, { count: number; example: string }>();
    for (const failure of tally.failures) {
      const kind = failure
        .replace(/^case \d+ /, '')
        .replace(/\d+/g, 'N')
        .slice(0, 160);
      const entry = kinds.get(kind) ?? { count: 0, example: failure };
      entry.count++;
      kinds.set(kind, entry);
    }
    const grouped = [...kinds.values()].map(({ count, example }) => `${count}x ${example.slice(0, 400)}`);
    expect(grouped.slice(0, 30), `${tally.failures.length} failures (seed ${SEED})`).toEqual([]);
    expect(tally.cases).toBe(CASES);

    // The server is alive, logged no failed request, and the refused requests changed nothing.
    expect(server.child.exitCode).toBeNull();
    expect(server.output).not.toMatch(/"msg":"request failed"/);
    expect(await fingerprint()).toEqual(initial);

    // A normal query still works, with the data it had, and is fast.
    const timings: number[] = [];
    for (let i = 0; i < 20; i++) {
      const began = performance.now();
      const response = await server.request('POST', '/v1/databases/fuzz/query', {
        statements: [{ sql: 'SELECT count(*), sum(a) FROM t' }, { sql: 'SELECT k FROM u ORDER BY k' }],
      });
      timings.push(performance.now() - began);
      expect(response.status).toBe(200);
      expect(response.body.results[0].rows).toEqual([[40, 820]]);
      expect(response.body.results[1].rows).toEqual([['dup'], ['one']]);
    }
    timings.sort((a, b) => a - b);
    console.log(`hostile-input: normal query afterwards: median ${timings[10]?.toFixed(1)} ms, max ${timings[19]?.toFixed(1)} ms`);
    expect(timings[10]).toBeLessThan(50);
    // The read-only key is still valid and still read-only.
    const stillReader = await server.request(
      'POST',
      '/v1/databases/fuzz/query',
      { statements: [{ sql: 'DELETE FROM t' }] },
      { authorization: `Bearer ${keys.reader}` },
    );
    expect(stillReader.status).toBe(403);
    expect(await fingerprint()).toEqual(initial);
  }, 120_000);
});
