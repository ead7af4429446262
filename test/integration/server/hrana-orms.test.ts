import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createClient, type Client } from '@libsql/client';
import { LibsqlDialect } from '@libsql/kysely-libsql';
import { eq, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/libsql';
import { migrate } from 'drizzle-orm/libsql/migrator';
import { integer, real, sqliteTable, text } from 'drizzle-orm/sqlite-core';
import { Kysely, type Generated } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startClusterNode, tempDir, type TestServer } from '../../support/server.js';
import { waitFor } from '../../support/wait.js';

/**
 * ORMs over Hrana, each against the Primary and through a Replica of a real two-node cluster:
 * Drizzle with its libSQL driver (migrator, CRUD, transactions) and Kysely with @libsql/kysely-libsql.
 */
const servers: TestServer[] = [];
const clients: Client[] = [];
let primary: TestServer;
let replica: TestServer;

async function roleOf(node: TestServer): Promise<string | undefined> {
  const status = (await node.request('GET', '/v1/cluster')).body;
  return status?.nodes?.find((entry: { address: string }) => entry.address === node.url)?.role;
}

beforeAll(async () => {
  const dataDir = tempDir('litebase-hrana-orms-');
  primary = await startClusterNode(dataDir, 'n1', servers);
  await waitFor(async () => (await roleOf(primary)) === 'primary', 15_000, 'n1 to be the Primary');
  replica = await startClusterNode(dataDir, 'n2', servers);
  await waitFor(async () => (await roleOf(replica)) === 'replica', 15_000, 'n2 to be a replica');
  for (const name of ['drizzle-primary', 'drizzle-replica', 'kysely-primary', 'kysely-replica']) {
    expect((await primary.request('POST', '/v1/databases', { name })).status).toBe(201);
    await waitFor(async () => (await replica.request('GET', `/v1/databases/${name}`)).status === 200, 10_000, `${name} on the replica`);
  }
}, 90_000);

afterAll(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const server of servers.splice(0)) await server.stop('SIGKILL');
});

function clientFor(node: TestServer, database: string): Client {
  const client = createClient({ url: `${node.url}/v1/databases/${database}/`, authToken: node.key });
  clients.push(client);
  return client;
}

const users = sqliteTable('users', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull().unique(),
  score: real('score'),
});

/** A drizzle-kit style migrations folder: a journal and one SQL file. */
function migrationsFolder(): string {
  const folder = tempDir('litebase-drizzle-');
  mkdirSync(path.join(folder, 'meta'));
  writeFileSync(
    path.join(folder, 'meta', '_journal.json'),
    JSON.stringify({
      version: '7',
      dialect: 'sqlite',
      entries: [{ idx: 0, version: '6', when: 1765000000000, tag: '0000_init', breakpoints: true }],
    }),
  );
  writeFileSync(
    path.join(folder, '0000_init.sql'),
    'CREATE TABLE `users` (`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL, `name` text NOT NULL, `score` real);\n--> statement-breakpoint\nCREATE UNIQUE INDEX `users_name_unique` ON `users` (`name`);\n',
  );
  return folder;
}

interface KyselyDatabase {
  pets: { id: Generated<number>; name: string; age: number | null };
}

describe.each([
  ['the Primary', () => primary, 'primary'],
  ['a Replica', () => replica, 'replica'],
] as const)('ORMs over Hrana on %s', (_where, node, suffix) => {
  it('Drizzle: migrator, CRUD, transactions and nested transactions', async () => {
    const db = drizzle(clientFor(node(), `drizzle-${suffix}`));
    await migrate(db, { migrationsFolder: migrationsFolder() });
    await db.insert(users).values([{ name: 'ada', score: 1.5 }, { name: 'bob' }]);
    await db.update(users).set({ score: 2 }).where(eq(users.name, 'bob'));
    expect(await db.select().from(users).orderBy(users.id)).toEqual([
      { id: 1, name: 'ada', score: 1.5 },
      { id: 2, name: 'bob', score: 2 },
    ]);
    await db.transaction(async (tx) => {
      await tx.insert(users).values({ name: 'cy' });
      await tx.delete(users).where(eq(users.name, 'ada'));
    });
    await expect(
      db.transaction(async (tx) => {
        await tx.insert(users).values({ name: 'dee' });
        tx.rollback();
      }),
    ).rejects.toThrow();
    // A nested transaction is a savepoint: its rollback keeps the outer transaction's work.
    await db.transaction(async (tx) => {
      await tx.insert(users).values({ name: 'eve' });
      await expect(
        tx.transaction(async (nested) => {
          await nested.insert(users).values({ name: 'fay' });
          nested.rollback();
        }),
      ).rejects.toThrow();
      await tx.transaction(async (nested) => {
        await nested.update(users).set({ score: 5 }).where(eq(users.name, 'eve'));
      });
    });
    const names = (await db.select({ name: users.name }).from(users).orderBy(users.name)).map((row) => row.name);
    expect(names).toEqual(['bob', 'cy', 'eve']);
    const [count] = await db.select({ n: sql<number>`count(*)` }).from(users);
    expect(count?.n).toBe(3);
    expect((await db.select({ score: users.score }).from(users).where(eq(users.name, 'eve')))[0]?.score).toBe(5);
    // Running the migrator again applies nothing.
    await migrate(db, { migrationsFolder: migrationsFolder() });
  });

  it('Kysely: schema, CRUD and transactions', async () => {
    // As the README shows it: the dialect makes its own @libsql/client (its own, older version).
    const db = new Kysely<KyselyDatabase>({
      dialect: new LibsqlDialect({ url: `${node().url}/v1/databases/kysely-${suffix}/`, authToken: node().key }),
    });
    await db.schema
      .createTable('pets')
      .addColumn('id', 'integer', (column) => column.primaryKey().autoIncrement())
      .addColumn('name', 'text', (column) => column.notNull().unique())
      .addColumn('age', 'integer')
      .execute();
    await db
      .insertInto('pets')
      .values([
        { name: 'rex', age: 3 },
        { name: 'tom', age: null },
      ])
      .execute();
    await db.updateTable('pets').set({ age: 4 }).where('name', '=', 'rex').execute();
    await db.transaction().execute(async (trx) => {
      await trx.insertInto('pets').values({ name: 'kit', age: 1 }).execute();
      await trx.deleteFrom('pets').where('name', '=', 'tom').execute();
    });
    await expect(
      db.transaction().execute(async (trx) => {
        await trx.insertInto('pets').values({ name: 'rex', age: 9 }).execute();
      }),
    ).rejects.toThrow(/UNIQUE constraint failed/);
    const pets = await db.selectFrom('pets').select(['name', 'age']).orderBy('name').execute();
    expect(pets).toEqual([
      { name: 'kit', age: 1 },
      { name: 'rex', age: 4 },
    ]);
    await db.destroy();
  });
});
