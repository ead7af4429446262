import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './server.js';

const run = promisify(execFile);
const PRISMA_CLI = path.join(REPO_ROOT, 'node_modules', 'prisma', 'build', 'index.js');

/**
 * `prisma generate` for `schema` (its generator's `output` is relative to the schema file), offline,
 * in a new folder under .tmp/ that the caller removes: inside the repository, so that the generated
 * code finds @prisma/client in node_modules. Returns the folder.
 *
 * The CLI makes sure its schema engine binary is there before any command, generate included, and
 * would download it (it is not on npm; docs/HRANA.md, "Prisma"). Generate never runs it, so the
 * variable Prisma reads for a custom engine names a stand-in that says so if it is ever started.
 */
export async function generatePrismaClient(schema: string): Promise<string> {
  mkdirSync(path.join(REPO_ROOT, '.tmp'), { recursive: true });
  const folder = mkdtempSync(path.join(REPO_ROOT, '.tmp', 'prisma-'));
  mkdirSync(path.join(folder, 'prisma'));
  writeFileSync(path.join(folder, 'prisma', 'schema.prisma'), schema);
  const standIn = path.join(folder, 'schema-engine-not-installed');
  writeFileSync(standIn, '#!/bin/sh\necho "Prisma schema engine: not installed (not on npm)" >&2\nexit 1\n');
  chmodSync(standIn, 0o755);
  await run(process.execPath, [PRISMA_CLI, 'generate', '--schema', path.join(folder, 'prisma', 'schema.prisma')], {
    cwd: folder,
    env: {
      ...process.env,
      PRISMA_SCHEMA_ENGINE_BINARY: standIn,
      // No update check, no telemetry: both would be requests to Prisma's servers.
      PRISMA_HIDE_UPDATE_MESSAGE: '1',
      CHECKPOINT_DISABLE: '1',
    },
  });
  return folder;
}
