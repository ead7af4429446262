import { randomBytes } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { Command } from 'commander';
import type { DatabaseInfo } from '../client/client.js';
import { LitebaseError } from '../errors.js';
import { pathExists } from '../storage/fs-util.js';
import { quickCheckFile } from '../storage/sqlite-file.js';
import { CliUsageError, connect, withConnectionOptions, type CliIo, type ConnectionOptions } from './common.js';
import { renderTable } from './output.js';

interface JsonFlag {
  json?: boolean;
}

function describe(database: DatabaseInfo): string {
  const rows = Object.entries(database).map(([key, value]) => [key, typeof value === 'string' ? value : JSON.stringify(value)]);
  return renderTable(['field', 'value'], rows);
}

interface BackupFlags extends ConnectionOptions, JsonFlag {
  output: string;
  minPosition?: string;
  force?: boolean;
  check?: boolean;
}

/** `litebase db create|list|get|drop|backup`. */
export function registerDbCommands(program: Command, io: CliIo): void {
  const db = program.command('db').description('create, list, inspect, back up and drop databases');

  withConnectionOptions(
    db
      .command('create')
      .description('create a database')
      .argument('<name>', 'database name: lowercase letters, digits, _ and -, at most 63 characters')
      .option('--json', "print the server's JSON answer"),
  ).action(async (name: string, options: ConnectionOptions & JsonFlag) => {
    const answer = await connect(options).createDatabaseRaw(name);
    io.out(options.json ? JSON.stringify(answer) : `created database ${answer.database.name} (id ${answer.database.id})`);
  });

  withConnectionOptions(db.command('list').description('list databases').option('--json', "print the server's JSON answer")).action(
    async (options: ConnectionOptions & JsonFlag) => {
      const answer = await connect(options).listDatabasesRaw();
      if (options.json) return io.out(JSON.stringify(answer));
      if (answer.databases.length === 0) return io.out('no databases');
      const rows = answer.databases.map((database) => [database.name, database.position, database.createdAt, database.id]);
      io.out(renderTable(['name', 'position', 'created', 'id'], rows));
    },
  );

  withConnectionOptions(
    db
      .command('get')
      .description("show one database's details")
      .argument('<name>', 'database name')
      .option('--json', "print the server's JSON answer"),
  ).action(async (name: string, options: ConnectionOptions & JsonFlag) => {
    const answer = await connect(options).getDatabaseRaw(name);
    io.out(options.json ? JSON.stringify(answer) : describe(answer.database));
  });

  withConnectionOptions(
    db
      .command('backup')
      .description('download a consistent copy of a database as a SQLite file (from the node --url names)')
      .argument('<name>', 'database name')
      .requiredOption('--output <file>', 'where to write the SQLite file')
      .option('--min-position <n>', 'wait until the node has applied this position (read your writes on a Replica)')
      .option('--force', 'replace an existing --output file')
      .option('--no-check', 'skip SQLite quick_check of the downloaded file')
      .option('--json', 'print the result as one JSON line'),
  ).action(async (name: string, options: BackupFlags) => {
    if (options.minPosition !== undefined && !/^\d{1,20}$/.test(options.minPosition)) {
      throw new CliUsageError('INVALID_ARGUMENTS', `--min-position ${options.minPosition}: expected a decimal integer`);
    }
    const result = await downloadBackup(name, options);
    if (options.json) return io.out(JSON.stringify(result));
    io.out(`backed up ${name} at position ${result.position} into ${result.output} (${result.bytes} bytes)`);
  });

  withConnectionOptions(db.command('drop').description('drop a database').argument('<name>', 'database name')).action(
    async (name: string, options: ConnectionOptions) => {
      await connect(options).dropDatabase(name);
      io.out(`dropped database ${name}`);
    },
  );
}

/**
 * Stream the backup into a temporary file beside `--output` (never into memory), check it, then
 * rename it into place: an interrupted download leaves no half-written file under the name.
 */
async function downloadBackup(
  name: string,
  options: BackupFlags,
): Promise<{ database: string; position: string; output: string; bytes: number }> {
  const output = path.resolve(options.output);
  if (!options.force && (await pathExists(output))) {
    throw new LitebaseError('OUTPUT_EXISTS', `${output} exists; choose another file or pass --force`);
  }
  // The download may take as long as the database is large: no client-side time limit.
  const backup = await connect(options, { timeoutMs: 0 }).backup(
    name,
    options.minPosition === undefined ? {} : { minPosition: options.minPosition },
  );
  const temp = path.join(path.dirname(output), `.${path.basename(output)}.backup-${randomBytes(6).toString('hex')}`);
  try {
    await pipeline(Readable.fromWeb(backup.body as WebReadableStream<Uint8Array>), createWriteStream(temp, { flags: 'wx' }));
    const { size } = await fs.stat(temp);
    if (backup.bytes !== undefined && size !== backup.bytes) {
      throw new LitebaseError('BACKUP_INCOMPLETE', `the download ended after ${size} of ${backup.bytes} bytes`);
    }
    if (options.check !== false) await quickCheckFile(temp, 'BACKUP_VERIFY_FAILED', 'the downloaded database');
    await fs.rename(temp, output);
    return { database: name, position: backup.position, output, bytes: size };
  } finally {
    await fs.rm(temp, { force: true });
  }
}
