#!/usr/bin/env node
// Builds the SQLite extensions in src/native (statement-deadline.c, malloc-tuning.c) into
// dist/src/native/<name>.so, against the sqlite3ext.h of the better-sqlite3 in node_modules (the
// SQLite the server links). Run by `npm run build`, `npm install` (prepare) and `npm test`; skips
// a compile when the library is newer than its source.
//
// Without a C compiler the server still runs: it logs that a looping write statement is then
// stopped only by the event-loop watchdog (docs/SECURITY.md, "Limits"), and leaves glibc's mmap
// threshold as it is (docs/ARCHITECTURE.md §2.6). LITEBASE_REQUIRE_NATIVE=1 (set by .ci/run) turns
// a failed build into an error. CC names another compiler.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const libraries = ['statement-deadline', 'malloc-tuning'].map((name) => ({
  source: join(root, `src/native/${name}.c`),
  output: join(root, `dist/src/native/${name}.so`),
}));
const required = process.env.LITEBASE_REQUIRE_NATIVE === '1';

function fail(message) {
  if (required) {
    console.error(`build-native: ${message}`);
    process.exit(1);
  }
  console.warn(
    `build-native: ${message}; a looping write statement will be stopped only by the watchdog (docs/SECURITY.md), and glibc's mmap threshold is left as it is`,
  );
  process.exit(0);
}

const stale = libraries.filter(({ source, output }) => !existsSync(output) || statSync(output).mtimeMs < statSync(source).mtimeMs);
if (stale.length === 0) process.exit(0);

let headers;
try {
  const require = createRequire(join(root, 'package.json'));
  headers = join(dirname(require.resolve('better-sqlite3/package.json')), 'deps/sqlite3');
} catch {
  fail('better-sqlite3 is not installed (run npm install)');
}
if (!existsSync(join(headers, 'sqlite3ext.h'))) fail(`no sqlite3ext.h in ${headers}`);

const compiler = process.env.CC || 'cc';
for (const { source, output } of stale) {
  mkdirSync(dirname(output), { recursive: true });
  const args = ['-O2', '-fPIC', '-shared', '-Wall', '-Wextra', '-I', headers, '-o', output, source, '-lpthread'];
  try {
    execFileSync(compiler, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  } catch (error) {
    fail(`${compiler} could not build ${output} (${error.code === 'ENOENT' ? 'no C compiler found' : error.message})`);
  }
}
