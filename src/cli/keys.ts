import { Option, type Command } from 'commander';
import type { AccessKeyInfo } from '../client/client.js';
import { connect, withConnectionOptions, type CliIo, type ConnectionOptions } from './common.js';
import { renderTable } from './output.js';

const ACTIONS = ['read', 'write', 'admin', 'restore', 'cluster'] as const;

interface CreateOptions extends ConnectionOptions {
  name: string;
  database: string[];
  action: Array<(typeof ACTIONS)[number]>;
  json?: boolean;
}

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** `litebase keys create|list|revoke`: access keys with per-database permissions. */
export function registerKeyCommands(program: Command, io: CliIo): void {
  const keys = program.command('keys').description('create, list and revoke access keys (needs an admin key for "*")');

  withConnectionOptions(
    keys
      .command('create')
      .description('create an access key; its secret is printed once')
      .requiredOption('--name <name>', 'a label for people')
      .requiredOption('--database <pattern>', 'database name or pattern with * (repeatable; "*" for all)', collect)
      .addOption(new Option('--action <action>', 'permitted action (repeatable)').choices(ACTIONS).argParser(collect).makeOptionMandatory())
      .option('--json', "print the server's JSON answer"),
  ).action(async (options: CreateOptions) => {
    const key = await connect(options).createKey({ name: options.name, databases: options.database, actions: options.action });
    if (options.json) return io.out(JSON.stringify({ key }));
    io.out(`created key ${key.id} (${key.name}): ${key.actions.join(', ')} on ${key.databases.join(', ')}`);
    io.out(`secret (shown once): ${key.secret ?? ''}`);
  });

  withConnectionOptions(
    keys.command('list').description('list access keys (never their secrets)').option('--json', "print the server's JSON answer"),
  ).action(async (options: ConnectionOptions & { json?: boolean }) => {
    const list: AccessKeyInfo[] = await connect(options).listKeys();
    if (options.json) return io.out(JSON.stringify({ keys: list }));
    if (list.length === 0) return io.out('no access keys (the root key is not listed)');
    io.out(
      renderTable(
        ['id', 'name', 'databases', 'actions', 'created', 'revoked'],
        list.map((key) => [key.id, key.name, key.databases.join(','), key.actions.join(','), key.createdAt, key.revokedAt ?? '']),
      ),
    );
  });

  withConnectionOptions(
    keys.command('revoke').description('revoke an access key (every node refuses it within a second)').argument('<id>', 'key id'),
  ).action(async (id: string, options: ConnectionOptions) => {
    await connect(options).revokeKey(id);
    io.out(`revoked key ${id}`);
  });
}
