import { rmSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PrismaLibSql } from '@prisma/adapter-libsql';
import { Decimal, PrismaClientKnownRequestError } from '@prisma/client/runtime/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { litebaseFetch, LitebaseSession } from '../../../src/client/portable/index.js';
import { generatePrismaClient } from '../../support/prisma.js';
import { startClusterNode, tempDir, type TestServer } from '../../support/server.js';
import { waitFor } from '../../support/wait.js';

/**
 * Prisma 7 over Hrana with `@prisma/adapter-libsql`, against the Primary and through a Replica of a
 * real two-node cluster. Prisma 7's `prisma-client` generator with a driver adapter needs no
 * engine binary at run time (the query compiler is WebAssembly inside @prisma/client); the client
 * is generated here, by `prisma generate`, into .tmp/ (nothing generated is committed).
 *
 * The tables are made by the SQL that `prisma migrate diff --from-empty --script` writes for the
 * schema, run through the adapter's `executeScript` (what `migrate deploy` would send): Prisma's
 * migration commands need its native schema engine, which is not on npm (docs/HRANA.md, "Prisma").
 */

const SCHEMA = `
generator client {
  provider     = "prisma-client"
  output       = "../generated"
  runtime      = "nodejs"
  moduleFormat = "esm"
}

datasource db {
  provider = "sqlite"
}

enum Role {
  READER
  WRITER
}

model Author {
  id    Int     @id @default(autoincrement())
  email String  @unique
  name  String?
  role  Role    @default(READER)
  posts Post[]
}

model Post {
  id        Int      @id @default(autoincrement())
  title     String
  published Boolean  @default(false)
  createdAt DateTime @default(now())
  author    Author   @relation(fields: [authorId], references: [id], onDelete: Cascade)
  authorId  Int
}

model Sample {
  id      Int      @id @default(autoincrement())
  int     Int
  big     BigInt
  float   Float
  decimal Decimal
  text    String
  flag    Boolean
  at      DateTime
  json    Json
  bytes   Bytes
  role    Role
  note    String?
}
`;

/** The SQL Prisma's SQLite migrations write for SCHEMA (migrate diff --from-empty --script). */
const MIGRATION = `-- CreateTable
CREATE TABLE "Author" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "email" TEXT NOT NULL,
    "name" TEXT,
    "role" TEXT NOT NULL DEFAULT 'READER'
);

-- CreateTable
CREATE TABLE "Post" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "title" TEXT NOT NULL,
    "published" BOOLEAN NOT NULL DEFAULT false,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "authorId" INTEGER NOT NULL,
    CONSTRAINT "Post_authorId_fkey" FOREIGN KEY ("authorId") REFERENCES "Author" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateTable
CREATE TABLE "Sample" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "int" INTEGER NOT NULL,
    "big" BIGINT NOT NULL,
    "float" REAL NOT NULL,
    "decimal" DECIMAL NOT NULL,
    "text" TEXT NOT NULL,
    "flag" BOOLEAN NOT NULL,
    "at" DATETIME NOT NULL,
    "json" JSONB NOT NULL,
    "bytes" BLOB NOT NULL,
    "role" TEXT NOT NULL,
    "note" TEXT
);

-- CreateIndex
CREATE UNIQUE INDEX "Author_email_key" ON "Author"("email");
`;

/*
 * The generated client is imported at run time, so its types are not there when the test files
 * are type-checked: these are the parts of it this test uses, as the generated ones describe them.
 */
type Role = 'READER' | 'WRITER';
interface Author {
  id: number;
  email: string;
  name: string | null;
  role: Role;
}
interface Post {
  id: number;
  title: string;
  published: boolean;
  createdAt: Date;
  authorId: number;
}
interface Sample {
  id: number;
  int: number;
  big: bigint;
  float: number;
  decimal: Decimal;
  text: string;
  flag: boolean;
  at: Date;
  json: unknown;
  bytes: Uint8Array;
  role: Role;
  note: string | null;
}
type Args = Record<string, unknown>;
interface Delegate<Row> {
  create(args: Args): Promise<Row & Args>;
  createMany(args: Args): Promise<{ count: number }>;
  createManyAndReturn(args: Args): Promise<Row[]>;
  findUnique(args: Args): Promise<(Row & Args) | null>;
  findUniqueOrThrow(args: Args): Promise<Row & Args>;
  findMany(args?: Args): Promise<(Row & Args)[]>;
  update(args: Args): Promise<Row & Args>;
  updateMany(args: Args): Promise<{ count: number }>;
  upsert(args: Args): Promise<Row & Args>;
  delete(args: Args): Promise<Row>;
  deleteMany(args?: Args): Promise<{ count: number }>;
  count(args?: Args): Promise<number>;
  aggregate(args: Args): Promise<Record<string, Record<string, unknown>>>;
  groupBy(args: Args): Promise<Args[]>;
}
interface Client {
  author: Delegate<Author>;
  post: Delegate<Post>;
  sample: Delegate<Sample>;
  $transaction<T>(work: (tx: Client) => Promise<T>): Promise<T>;
  $transaction(queries: Promise<unknown>[]): Promise<unknown[]>;
  $queryRaw<T = unknown>(strings: TemplateStringsArray, ...values: unknown[]): Promise<T>;
  $executeRaw(strings: TemplateStringsArray, ...values: unknown[]): Promise<number>;
  $disconnect(): Promise<void>;
}
interface GeneratedModule {
  PrismaClient: new (options: { adapter: PrismaLibSql }) => Client;
}

const servers: TestServer[] = [];
const clients: Client[] = [];
let generatedDir: string;
let dataDir: string;
let generated: GeneratedModule;
let primary: TestServer;
let replica: TestServer;

async function roleOf(node: TestServer): Promise<string | undefined> {
  const status = (await node.request('GET', '/v1/cluster')).body;
  return status?.nodes?.find((entry: { address: string }) => entry.address === node.url)?.role;
}

beforeAll(async () => {
  generatedDir = await generatePrismaClient(SCHEMA);
  generated = (await import(pathToFileURL(path.join(generatedDir, 'generated', 'client.ts')).href)) as GeneratedModule;
  dataDir = tempDir('litebase-hrana-prisma-');
  primary = await startClusterNode(dataDir, 'n1', servers);
  await waitFor(async () => (await roleOf(primary)) === 'primary', 15_000, 'n1 to be the Primary');
  replica = await startClusterNode(dataDir, 'n2', servers);
  await waitFor(async () => (await roleOf(replica)) === 'replica', 15_000, 'n2 to be a replica');
  for (const name of ['prisma-primary', 'prisma-replica']) {
    expect((await primary.request('POST', '/v1/databases', { name })).status).toBe(201);
    await waitFor(async () => (await replica.request('GET', `/v1/databases/${name}`)).status === 200, 10_000, `${name} on the replica`);
  }
}, 120_000);

afterAll(async () => {
  for (const client of clients.splice(0)) await client.$disconnect();
  for (const server of servers.splice(0)) await server.stop('SIGKILL');
  for (const folder of [generatedDir, dataDir]) if (folder) rmSync(folder, { recursive: true, force: true });
});

/** The adapter as Prisma's docs show it; intMode 'bigint' so that BigInt columns keep all 64 bits. */
function adapterFor(node: TestServer, database: string, fetch?: typeof globalThis.fetch): PrismaLibSql {
  return new PrismaLibSql({
    url: `${node.url}/v1/databases/${database}/`,
    authToken: node.key,
    intMode: 'bigint',
    ...(fetch ? { fetch } : {}),
  });
}

function prismaFor(node: TestServer, database: string, fetch?: typeof globalThis.fetch): Client {
  const client = new generated.PrismaClient({ adapter: adapterFor(node, database, fetch) });
  clients.push(client);
  return client;
}

describe.each([
  ['the Primary', () => primary, 'primary'],
  ['a Replica', () => replica, 'replica'],
] as const)('Prisma over Hrana on %s', (_where, node, suffix) => {
  const database = `prisma-${suffix}`;
  let prisma: Client;

  it('creates the schema with the migration script, through the adapter', async () => {
    const driver = await adapterFor(node(), database).connect();
    try {
      await driver.executeScript(MIGRATION);
    } finally {
      await driver.dispose();
    }
    prisma = prismaFor(node(), database);
    expect(await prisma.author.count()).toBe(0);
  });

  it('CRUD: nested writes, relations, filters, upserts, aggregates, cascading deletes', async () => {
    const ada = await prisma.author.create({
      data: { email: 'ada@example.com', name: 'Ada', posts: { create: [{ title: 'Notes', published: true }, { title: 'Draft' }] } },
      include: { posts: { orderBy: { id: 'asc' } } },
    });
    expect(ada).toMatchObject({ id: 1, email: 'ada@example.com', name: 'Ada', role: 'READER' });
    const adaPosts = ada.posts as Post[];
    expect(adaPosts.map((post) => [post.title, post.published, post.authorId])).toEqual([
      ['Notes', true, 1],
      ['Draft', false, 1],
    ]);
    // DEFAULT CURRENT_TIMESTAMP comes back as a Date.
    expect(adaPosts[0]?.createdAt).toBeInstanceOf(Date);
    expect(Math.abs((adaPosts[0]?.createdAt.getTime() ?? 0) - Date.now())).toBeLessThan(10 * 60_000);

    expect(await prisma.author.createMany({ data: [{ email: 'bob@example.com' }, { email: 'cy@example.com', role: 'WRITER' }] })).toEqual({
      count: 2,
    });
    const returned = await prisma.post.createManyAndReturn({
      data: [
        { title: 'B1', authorId: 2 },
        { title: 'B2', authorId: 2, published: true },
      ],
    });
    expect(returned.map((post) => post.title)).toEqual(['B1', 'B2']);

    const published = await prisma.post.findMany({
      where: { published: true, author: { email: { endsWith: '@example.com' } } },
      orderBy: { title: 'asc' },
      select: { title: true, author: { select: { name: true } } },
    });
    expect(published).toEqual([
      { title: 'B2', author: { name: null } },
      { title: 'Notes', author: { name: 'Ada' } },
    ]);
    expect((await prisma.author.findMany({ orderBy: { id: 'asc' }, skip: 1, take: 1 })).map((author) => author.email)).toEqual([
      'bob@example.com',
    ]);
    expect(await prisma.author.findUnique({ where: { email: 'nobody@example.com' } })).toBeNull();

    expect(await prisma.author.update({ where: { email: 'bob@example.com' }, data: { name: 'Bob', role: 'WRITER' } })).toMatchObject({
      id: 2,
      name: 'Bob',
      role: 'WRITER',
    });
    expect(await prisma.post.updateMany({ where: { published: false }, data: { published: true } })).toEqual({ count: 2 });
    // Both branches of an upsert.
    expect(
      await prisma.author.upsert({ where: { email: 'cy@example.com' }, update: { name: 'Cy' }, create: { email: 'cy@example.com' } }),
    ).toMatchObject({ id: 3, name: 'Cy' });
    expect(
      await prisma.author.upsert({ where: { email: 'dee@example.com' }, update: {}, create: { email: 'dee@example.com', name: 'Dee' } }),
    ).toMatchObject({ email: 'dee@example.com', name: 'Dee' });

    expect(await prisma.post.count({ where: { authorId: 1 } })).toBe(2);
    expect(await prisma.post.aggregate({ _count: { _all: true }, _max: { id: true } })).toEqual({ _count: { _all: 4 }, _max: { id: 4 } });
    expect(await prisma.author.groupBy({ by: ['role'], _count: { _all: true }, orderBy: { role: 'asc' } })).toEqual([
      { role: 'READER', _count: { _all: 2 } },
      { role: 'WRITER', _count: { _all: 2 } },
    ]);

    // ON DELETE CASCADE: foreign keys are enforced on every connection.
    await prisma.author.delete({ where: { id: 1 } });
    expect(await prisma.post.count()).toBe(2);
    expect(await prisma.author.deleteMany({ where: { posts: { none: {} } } })).toEqual({ count: 2 });
    expect((await prisma.author.findMany()).map((author) => author.email)).toEqual(['bob@example.com']);
  });

  it('reports constraint violations as database errors with SQLite message', async () => {
    // Prisma maps UNIQUE and FOREIGN KEY failures to P2002/P2003 by SQLite's extended result code,
    // which Hrana over HTTP does not carry (@libsql/client has no rawCode then, with any server):
    // they come back as P2039 with SQLite's message.
    const unique = await prisma.author.create({ data: { email: 'bob@example.com' } }).catch((error: unknown) => error);
    expect(unique).toBeInstanceOf(PrismaClientKnownRequestError);
    expect((unique as PrismaClientKnownRequestError).message).toContain('UNIQUE constraint failed: Author.email');
    const foreign = await prisma.post.create({ data: { title: 'orphan', authorId: 999 } }).catch((error: unknown) => error);
    expect(foreign).toBeInstanceOf(PrismaClientKnownRequestError);
    expect((foreign as PrismaClientKnownRequestError).message).toContain('FOREIGN KEY constraint failed');
    expect(await prisma.post.count({ where: { title: 'orphan' } })).toBe(0);
  });

  it('transactions: interactive (commit and rollback) and batched', async () => {
    const bob = await prisma.author.findUniqueOrThrow({ where: { email: 'bob@example.com' } });
    const moved = await prisma.$transaction(async (tx) => {
      const post = await tx.post.create({ data: { title: 'In a transaction', authorId: bob.id } });
      // The transaction reads its own write.
      expect(await tx.post.count({ where: { authorId: bob.id } })).toBe(3);
      await tx.author.update({ where: { id: bob.id }, data: { name: 'Robert' } });
      return post.id;
    });
    expect(await prisma.post.findUnique({ where: { id: moved } })).toMatchObject({ title: 'In a transaction' });
    expect((await prisma.author.findUniqueOrThrow({ where: { id: bob.id } })).name).toBe('Robert');

    await expect(
      prisma.$transaction(async (tx) => {
        await tx.author.create({ data: { email: 'ghost@example.com' } });
        await tx.post.deleteMany();
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    expect(await prisma.author.findUnique({ where: { email: 'ghost@example.com' } })).toBeNull();
    expect(await prisma.post.count()).toBe(3);

    // A failing statement rolls the whole transaction back.
    await expect(
      prisma.$transaction(async (tx) => {
        await tx.post.create({ data: { title: 'lost', authorId: bob.id } });
        await tx.author.create({ data: { email: 'bob@example.com' } });
      }),
    ).rejects.toThrow(/UNIQUE constraint failed/);
    expect(await prisma.post.count({ where: { title: 'lost' } })).toBe(0);

    const [created, count] = await prisma.$transaction([
      prisma.author.create({ data: { email: 'eve@example.com', role: 'WRITER' } }),
      prisma.author.count(),
    ]);
    expect(created).toMatchObject({ email: 'eve@example.com', role: 'WRITER' });
    expect(count).toBe(2);
    // A batch that fails writes nothing.
    await expect(
      prisma.$transaction([
        prisma.author.create({ data: { email: 'fay@example.com' } }),
        prisma.author.create({ data: { email: 'eve@example.com' } }),
      ]),
    ).rejects.toThrow(/UNIQUE constraint failed/);
    expect(await prisma.author.findUnique({ where: { email: 'fay@example.com' } })).toBeNull();
  });

  it('round-trips every scalar type Prisma maps on SQLite, extremes included, and filters on them', async () => {
    const rows = [
      {
        int: 2147483647,
        big: 9223372036854775807n,
        // Number.MAX_VALUE itself turns into Infinity inside Prisma's client, before any request.
        float: 1.5e308,
        decimal: new Decimal('12345.6789'),
        text: 'héllo ✓ 🚀 "quoted" \n second line',
        flag: true,
        at: new Date('2024-02-29T12:34:56.789Z'),
        json: { nested: { list: [1, 'two', null, true], float: 1.5 }, empty: {} },
        bytes: new Uint8Array([0, 1, 127, 128, 255]),
        role: 'WRITER' as const,
        note: 'present',
      },
      {
        int: -2147483648,
        big: -9223372036854775808n,
        float: Number.MIN_VALUE,
        decimal: new Decimal('-0.5'),
        text: '',
        flag: false,
        at: new Date('1970-01-01T00:00:00.000Z'),
        json: [1, 'a', [2, { b: null }]],
        bytes: new Uint8Array([]),
        role: 'READER' as const,
        note: null,
      },
    ];
    for (const data of rows) await prisma.sample.create({ data });
    const back = await prisma.sample.findMany({ orderBy: { id: 'asc' } });
    expect(back.map(({ id: _id, ...row }) => ({ ...row, decimal: row.decimal.toString(), bytes: Array.from(row.bytes) }))).toEqual(
      rows.map((row) => ({ ...row, decimal: row.decimal.toString(), bytes: Array.from(row.bytes) })),
    );
    expect(back[0]?.decimal).toBeInstanceOf(Decimal);
    expect(typeof back[0]?.big).toBe('bigint');
    expect(back[0]?.at).toBeInstanceOf(Date);
    expect(back[0]?.bytes).toBeInstanceOf(Uint8Array);

    // Filters bind each type as an argument.
    const ids = async (where: Args) => (await prisma.sample.findMany({ where, orderBy: { id: 'asc' } })).map((row) => row.id);
    const [first, second] = back.map((row) => row.id);
    expect(await ids({ big: 9223372036854775807n })).toEqual([first]);
    expect(await ids({ big: { lt: 0n } })).toEqual([second]);
    expect(await ids({ int: { gte: 0 } })).toEqual([first]);
    expect(await ids({ float: Number.MIN_VALUE })).toEqual([second]);
    expect(await ids({ flag: false })).toEqual([second]);
    expect(await ids({ at: { gt: new Date('2000-01-01T00:00:00Z') } })).toEqual([first]);
    expect(await ids({ bytes: new Uint8Array([0, 1, 127, 128, 255]) })).toEqual([first]);
    expect(await ids({ text: { contains: '🚀' } })).toEqual([first]);
    expect(await ids({ note: null })).toEqual([second]);
    expect(await ids({ role: 'WRITER' })).toEqual([first]);
    expect(await ids({ decimal: { lt: new Decimal(0) } })).toEqual([second]);
    expect(await prisma.sample.aggregate({ _max: { big: true, at: true }, _min: { big: true } })).toEqual({
      _max: { big: 9223372036854775807n, at: new Date('2024-02-29T12:34:56.789Z') },
      _min: { big: -9223372036854775808n },
    });
  });

  it('raw queries: tagged parameters of each type and typed results', async () => {
    const [row] = await prisma.$queryRaw<
      Record<string, unknown>[]
    >`SELECT ${-9223372036854775808n} AS big, ${2.5} AS float, ${'text ✓'} AS text, ${new Uint8Array([9, 8])} AS bytes, ${null} AS absent, typeof(${1.0}) AS kind`;
    expect(row).toEqual({
      big: -9223372036854775808n,
      float: 2.5,
      text: 'text ✓',
      bytes: new Uint8Array([9, 8]),
      absent: null,
      kind: 'real',
    });
    expect(await prisma.$executeRaw`UPDATE "Sample" SET "note" = ${'raw'} WHERE "note" IS NULL`).toBe(1);
    expect(await prisma.sample.count({ where: { note: 'raw' } })).toBe(1);
  });
});

describe('Prisma with litebaseFetch', () => {
  it('reads its writes through the Replica: the session carries the position of each answer', async () => {
    const session = new LitebaseSession();
    const fetch = litebaseFetch({ session });
    const onPrimary = prismaFor(primary, 'prisma-primary', fetch);
    const onReplica = prismaFor(replica, 'prisma-primary', fetch);
    const before = BigInt(session.position('prisma-primary') ?? '0');
    const author = await onPrimary.author.create({ data: { email: 'session@example.com', posts: { create: { title: 'Mine' } } } });
    expect(BigInt(session.position('prisma-primary') ?? '0')).toBeGreaterThan(before);
    expect(await onReplica.author.findUnique({ where: { id: author.id }, include: { posts: true } })).toMatchObject({
      email: 'session@example.com',
      posts: [{ title: 'Mine' }],
    });
  });
});
