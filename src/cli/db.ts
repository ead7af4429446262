import { randomBytes } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { Command } from 'commander';
import type { DatabaseInfo, StatementsResponse } from '../client/client.js';
import { LitebaseError } from '../errors.js';
import { pathExists } from '../storage/fs-util.js';
import { quickCheckFile } from '../storage/sqlite-file.js';
import { CliUsageError, connect, withConnectionOptions, type CliIo, type ConnectionOptions } from './common.js';
import { plural, renderTable } from './output.js';

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

/** `litebase db create|list|get|drop|backup|statements`. */
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

  withConnectionOptions(
    db
      .command('statements')
      .description('statement metrics of a database on the node --url names: normalized statements, runs, errors, p50/p90/p99 ms, rows')
      .argument('<name>', 'database name')
      .option('--limit <n>', 'how many statements (1..1000)', '20')
      .option('--order <by>', 'total (time), count, p99, mean or errors', 'total')
      .option('--cluster', "every live node's counts, merged (default: the node --url names)")
      .option('--reset', "start the node's counts for the database again (needs admin on it)")
      .option('--json', "print the server's JSON answer"),
  ).action(async (name: string, options: StatementsFlags) => {
    const client = connect(options);
    if (options.reset) {
      await client.resetStatements(name);
      return io.out(options.json ? JSON.stringify({ reset: true, database: name }) : `reset the statement metrics of ${name}`);
    }
    if (!/^\d{1,4}$/.test(options.limit)) throw new CliUsageError('INVALID_ARGUMENTS', `--limit ${options.limit}: expected 1..1000`);
    if (!ORDERS.includes(options.order as StatementsResponse['order'])) {
      throw new CliUsageError('INVALID_ARGUMENTS', `--order ${options.order}: expected one of ${ORDERS.join(', ')}`);
    }
    const answer = await client.statements(name, {
      limit: Number(options.limit),
      order: options.order as StatementsResponse['order'],
      ...(options.cluster ? { scope: 'cluster' as const } : {}),
    });
    io.out(options.json ? JSON.stringify(answer) : renderStatements(answer));
  });

  withConnectionOptions(db.command('drop').description('drop a database').argument('<name>', 'database name')).action(
    async (name: string, options: ConnectionOptions) => {
      await connect(options).dropDatabase(name);
      io.out(`dropped database ${name}`);
    },
  );
}

interface StatementsFlags extends ConnectionOptions, JsonFlag {
  limit: string;
  order: string;
  cluster?: boolean;
  reset?: boolean;
}

const ORDERS: ReadonlyArray<StatementsResponse['order']> = ['total', 'count', 'p99', 'mean', 'errors'];

/** Milliseconds as people read them: three significant digits. */
const ms = (value: number): string => (value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toPrecision(3));

function renderStatements(answer: StatementsResponse): string {
  const where =
    answer.scope === 'cluster'
      ? `on ${(answer.nodes ?? []).map((part) => (part.ok ? part.node : `${part.node} (${part.error.code})`)).join(', ')}`
      : `on node ${answer.node} (${answer.role})`;
  const head = `${answer.database} ${where}: ${plural(answer.tracked, 'statement')} tracked since ${answer.since ?? 'none yet'}${
    answer.evicted > 0 ? `, ${answer.evicted} dropped to stay within ${answer.maxTracked}` : ''
  }; by ${answer.order}`;
  if (!answer.enabled) return `${head}\nstatement metrics are off on this node (--statement-metrics-max 0)`;
  if (answer.statements.length === 0) return `${head}\nno statements yet`;
  const rows = answer.statements.map((statement) => [
    statement.sql.length > 80 ? `${statement.sql.slice(0, 79)}…` : statement.sql,
    String(statement.count),
    String(statement.errors),
    ms(statement.totalMs),
    ms(statement.p50Ms),
    ms(statement.p90Ms),
    ms(statement.p99Ms),
    String(statement.rowsRead),
    String(statement.rowsWritten),
    statement.lastSeen,
  ]);
  return `${head}\n${renderTable(['statement', 'runs', 'errors', 'total ms', 'p50', 'p90', 'p99', 'rows read', 'rows written', 'last seen'], rows)}`;
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
