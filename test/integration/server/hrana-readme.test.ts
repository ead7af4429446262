import { execFile, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliEnv } from '../../support/cli.js';
import { generatePrismaClient } from '../../support/prisma.js';
import { CLI, REPO_ROOT, TestServer } from '../../support/server.js';

/**
 * The README's "Use it from libSQL clients and ORMs" snippets as they are written there:
 * type-checked (strict, Node ESM) and run one after the other against a real node, its URL in
 * place of 127.0.0.1:8080. The Drizzle snippet gets a migrations folder, the Prisma one a client
 * generated from the schema below and its tables made as the README says, through `litebase shell`.
 */
const exec = promisify(execFile);
const SECTION = '## Use it from libSQL clients and ORMs';

/** The models the README's Prisma snippet uses. */
const PRISMA_SCHEMA = `
generator client {
  provider = "prisma-client"
  output   = "../generated/prisma"
}

datasource db {
  provider = "sqlite"
}

model User {
  id    Int    @id @default(autoincrement())
  email String @unique
  posts Post[]
}

model Post {
  id        Int     @id @default(autoincrement())
  title     String
  published Boolean @default(false)
  author    User    @relation(fields: [authorId], references: [id])
  authorId  Int
}
`;

/** What `prisma migrate diff --from-empty --to-schema prisma/schema.prisma --script` writes for it. */
const PRISMA_MIGRATION = `-- CreateTable
CREATE TABLE "User" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "email" TEXT NOT NULL
);

-- CreateTable
CREATE TABLE "Post" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "title" TEXT NOT NULL,
    "published" BOOLEAN NOT NULL DEFAULT false,
    "authorId" INTEGER NOT NULL,
    CONSTRAINT "Post_authorId_fkey" FOREIGN KEY ("authorId") REFERENCES "User" ("id") ON DELETE RESTRICT ON UPDATE CASCADE
);

-- CreateIndex
CREATE UNIQUE INDEX "User_email_key" ON "User"("email");
`;

function readmeSnippets(): string[] {
  const readme = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf(SECTION);
  const end = readme.indexOf('\n## ', start + SECTION.length);
  expect(start).toBeGreaterThan(0);
  return [...readme.slice(start, end).matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1] ?? '');
}

/** `litebase shell <database>` with `script` on stdin, as the README says to apply a migration. */
function shell(node: TestServer, database: string, script: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'shell', database, '--url', node.url, '--key', node.key], { env: cliEnv() });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(script);
  });
}

let node: TestServer;
let folder: string;
let files: string[];

beforeAll(async () => {
  node = await TestServer.start();
  expect((await node.request('POST', '/v1/databases', { name: 'app' })).status).toBe(201);
  folder = await generatePrismaClient(PRISMA_SCHEMA);
  // Drizzle's migrator reads a drizzle-kit folder: a journal and one SQL file for the snippet's table.
  mkdirSync(path.join(folder, 'drizzle', 'meta'), { recursive: true });
  writeFileSync(
    path.join(folder, 'drizzle', 'meta', '_journal.json'),
    JSON.stringify({
      version: '7',
      dialect: 'sqlite',
      entries: [{ idx: 0, version: '6', when: 1765000000000, tag: '0000_init', breakpoints: true }],
    }),
  );
  writeFileSync(
    path.join(folder, 'drizzle', '0000_init.sql'),
    'CREATE TABLE `users` (`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL, `name` text NOT NULL);\n',
  );
  const address = new URL(node.url).host;
  files = readmeSnippets().map((snippet, index) => {
    const file = `snippet-${index + 1}.mts`;
    writeFileSync(path.join(folder, file), snippet.replaceAll('127.0.0.1:8080', address));
    return file;
  });
}, 120_000);

afterAll(async () => {
  await node?.stop();
  node?.cleanup();
  if (folder) rmSync(folder, { recursive: true, force: true });
});

describe("the README's libSQL snippets", () => {
  it('are one per client: @libsql/client, @tursodatabase/serverless, Drizzle, Kysely, Prisma', () => {
    const imports = files.map((file) => /from '([^']+)'/.exec(readFileSync(path.join(folder, file), 'utf8'))?.[1]);
    expect(imports).toEqual([
      '@libsql/client',
      '@tursodatabase/serverless',
      '@libsql/client',
      '@libsql/kysely-libsql',
      '@prisma/adapter-libsql',
    ]);
  });

  it('type-check as a strict Node ESM program', async () => {
    const compilerOptions = {
      noEmit: true,
      strict: true,
      module: 'nodenext',
      moduleResolution: 'nodenext',
      target: 'es2022',
      types: ['node'],
      skipLibCheck: true,
    };
    writeFileSync(path.join(folder, 'tsconfig.json'), JSON.stringify({ compilerOptions, files }));
    const tsc = path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = await exec(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: folder }).catch((error: { stdout?: string }) => error);
    expect('stdout' in result ? result.stdout : '').toBe('');
  }, 120_000);

  it('run against a real node, one after the other', async () => {
    const migration = await shell(node, 'app', PRISMA_MIGRATION);
    expect(migration.code, migration.output).toBe(0);
    const tsx = path.join(REPO_ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs');
    const outputs: string[] = [];
    for (const file of files) {
      const { stdout } = await exec(process.execPath, [tsx, file], {
        cwd: folder,
        env: { ...process.env, LITEBASE_KEY: node.key },
        timeout: 60_000,
      });
      outputs.push(stdout);
    }
    const [libsql, serverless, drizzle, kysely, prisma] = outputs;
    expect(libsql).toContain("name: 'plum'");
    expect(serverless).toContain("name: 'fig'");
    expect(drizzle).toContain("name: 'Ada'");
    expect(kysely).toContain("name: 'rex'");
    expect(prisma).toContain("email: 'ada@example.com'");
    // The rows each snippet left, as the node has them.
    const rows = async (sql: string) =>
      (await node.request('POST', '/v1/databases/app/query', { statements: [{ sql }] })).body.results[0].rows;
    expect(await rows('SELECT name FROM items ORDER BY id')).toEqual([['plum'], ['pear'], ['fig']]);
    expect(await rows('SELECT published FROM "Post"')).toEqual([[1]]);
  }, 120_000);
});
