import type { Command } from 'commander';
import type { DatabaseInfo } from '../client/client.js';
import { connect, withConnectionOptions, type CliIo, type ConnectionOptions } from './common.js';
import { renderTable } from './output.js';

interface JsonFlag {
  json?: boolean;
}

function describe(database: DatabaseInfo): string {
  const rows = Object.entries(database).map(([key, value]) => [key, typeof value === 'string' ? value : JSON.stringify(value)]);
  return renderTable(['field', 'value'], rows);
}

/** `litebase db create|list|get|drop`. */
export function registerDbCommands(program: Command, io: CliIo): void {
  const db = program.command('db').description('create, list, inspect and drop databases');

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

  withConnectionOptions(
    db
      .command('list')
      .description('list databases')
      .option('--json', "print the server's JSON answer"),
  ).action(async (options: ConnectionOptions & JsonFlag) => {
    const answer = await connect(options).listDatabasesRaw();
    if (options.json) return io.out(JSON.stringify(answer));
    if (answer.databases.length === 0) return io.out('no databases');
    const rows = answer.databases.map((database) => [database.name, database.position, database.createdAt, database.id]);
    io.out(renderTable(['name', 'position', 'created', 'id'], rows));
  });

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
      .command('drop')
      .description('drop a database')
      .argument('<name>', 'database name'),
  ).action(async (name: string, options: ConnectionOptions) => {
    await connect(options).dropDatabase(name);
    io.out(`dropped database ${name}`);
  });
}
