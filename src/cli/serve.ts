import { setFlagsFromString } from 'node:v8';
import { Option, type Command } from 'commander';
import { loadConfig, type ConfigInput } from '../config/config.js';
import { errorMessage } from '../errors.js';
import type { CliIo } from './common.js';

/** Serve flags, by the ConfigInput key they set. Only flags typed on the command line are passed on. */
function serveOptions(): Array<[keyof ConfigInput, Option]> {
  return [
    ['dataDir', new Option('--data-dir <dir>', 'shared DFS root: log, cluster state (env LITEBASE_DATA_DIR; default ./litebase-data)')],
    ['localDir', new Option('--local-dir <dir>', 'node-local page cache (env LITEBASE_LOCAL_DIR; default <data-dir>/local/<node-id>)')],
    [
      'objectStore',
      new Option(
        '--object-store <url>',
        's3://bucket/prefix or file:///path (env LITEBASE_OBJECT_STORE; default a folder in the data dir)',
      ),
    ],
    ['port', new Option('--port <n>', 'HTTP port (env LITEBASE_PORT; default 8080)')],
    ['host', new Option('--host <addr>', 'HTTP listen address (env LITEBASE_HOST; default 127.0.0.1)')],
    ['nodeId', new Option('--node-id <id>', "this node's id in the cluster (env LITEBASE_NODE_ID; default node-<hostname>)")],
    ['advertiseAddress', new Option('--advertise-address <url>', 'address other nodes reach this one at (env LITEBASE_ADVERTISE_ADDRESS)')],
    ['rootKey', new Option('--root-key <secret>', 'root access key (env LITEBASE_ROOT_KEY); generated and saved on first start if absent')],
    [
      'tlsCert',
      new Option('--tls-cert <file>', 'PEM certificate chain: serve HTTPS, and reach other nodes over https (env LITEBASE_TLS_CERT)'),
    ],
    ['tlsKey', new Option('--tls-key <file>', 'PEM private key of --tls-cert (env LITEBASE_TLS_KEY)')],
    [
      'tlsCa',
      new Option('--tls-ca <file>', "PEM CA to verify other nodes' certificates with, instead of the system CAs (env LITEBASE_TLS_CA)"),
    ],
    ['config', new Option('--config <file>', 'JSON config file; flags > environment > file > defaults (env LITEBASE_CONFIG)')],
    [
      'logLevel',
      new Option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (env LITEBASE_LOG_LEVEL; default info)'),
    ],
    ['authDisabled', new Option('--auth-disabled', 'turn authentication off: local development only (env LITEBASE_AUTH_DISABLED)')],
    ['groupCommit', new Option('--no-group-commit', 'one segment per transaction: for benchmarks only (env LITEBASE_GROUP_COMMIT=false)')],
    [
      'walCheckpointBytes',
      new Option('--wal-checkpoint-bytes <n>', 'checkpoint the local WAL past this size (env LITEBASE_WAL_CHECKPOINT_BYTES)'),
    ],
    [
      'logFormat',
      new Option(
        '--log-format <format>',
        'how the Primary appends to the log: segments (a file per segment) or terms (records of one file per term; env LITEBASE_LOG_FORMAT, default terms)',
      ),
    ],
    [
      'leaseTtlMs',
      new Option('--lease-ttl-ms <n>', 'Primary lease time to live, renewed every third of it (env LITEBASE_LEASE_TTL_MS, default 5000)'),
    ],
    [
      'replicaPollMs',
      new Option('--replica-poll-ms <n>', 'how often replicas poll the log folder (env LITEBASE_REPLICA_POLL_MS, default 1000)'),
    ],
    ['replicaWatch', new Option('--no-replica-watch', 'poll only, do not watch log folders (env LITEBASE_REPLICA_WATCH=false)')],
    [
      'nudgeSegments',
      new Option(
        '--no-nudge-segments',
        "a Primary's nudges name the databases only; replicas read new segments from the log (env LITEBASE_NUDGE_SEGMENTS=false)",
      ),
    ],
    ['maxResultRows', new Option('--max-result-rows <n>', 'rows in one response (env LITEBASE_MAX_RESULT_ROWS, default 100000)')],
    [
      'maxResultBytes',
      new Option('--max-result-bytes <n>', "estimated JSON bytes of one response's rows (env LITEBASE_MAX_RESULT_BYTES, default 32 MiB)"),
    ],
    [
      'statementTimeoutMs',
      new Option(
        '--statement-timeout-ms <n>',
        'run time of one statement, checked between rows (env LITEBASE_STATEMENT_TIMEOUT_MS, default 10000)',
      ),
    ],
    [
      'maxTransactionsPerDatabase',
      new Option(
        '--max-transactions <n>',
        'interactive transactions open or waiting, per database (env LITEBASE_MAX_TRANSACTIONS_PER_DATABASE, default 16)',
      ),
    ],
    [
      'readProcesses',
      new Option(
        '--read-processes <n>',
        'child processes for looping reads, killed at the statement timeout; 0: in-process (env LITEBASE_READ_PROCESSES, default 2)',
      ),
    ],
    [
      'statementMetricsMax',
      new Option(
        '--statement-metrics-max <n>',
        'statements tracked per database for GET .../statements; 0: off (env LITEBASE_STATEMENT_METRICS_MAX, default 1000)',
      ),
    ],
    [
      'statementMetricsTop',
      new Option(
        '--statement-metrics-top <n>',
        'statements per database with their own Prometheus label, the rest "other" (env LITEBASE_STATEMENT_METRICS_TOP, default 20)',
      ),
    ],
    [
      'watchdogMs',
      new Option(
        '--watchdog-ms <n>',
        'kill the node when its event loop is blocked for the statement timeout plus this; 0: off (env LITEBASE_WATCHDOG_MS, default 30000)',
      ),
    ],
  ];
}

/** The flags the user typed, as ConfigInput; flags left out stay undefined so env and file apply. */
export function serveFlags(command: Command, options: Array<[keyof ConfigInput, Option]>): ConfigInput {
  const values = command.opts<Record<string, unknown>>();
  const input: Record<string, unknown> = {};
  for (const [key, option] of options) {
    const name = option.attributeName();
    if (command.getOptionValueSource(name) === 'cli') input[key] = values[name];
  }
  return input as ConfigInput;
}

/** `litebase serve`: one node, until SIGINT or SIGTERM. */
export function registerServeCommand(program: Command, io: CliIo): void {
  const serve = program.command('serve').description('run a Litebase node (with no flags: data in ./litebase-data, port 8080)');
  const options = serveOptions();
  for (const [, option] of options) serve.addOption(option);
  serve.action(async (_options: unknown, command: Command) => {
    const config = loadConfig(serveFlags(command, options), process.env);
    // When asked (LITEBASE_OPTIMIZE_FOR_SIZE), before the server's modules load and its heap grows:
    // V8 then collects garbage before the heap grows far past what is live. Loading with requests
    // of ~10 MiB (their bodies, parsed and decoded) peaked at 407 MiB resident without it, 256 with
    // it (npm run bench -- memory, both with MALLOC_MMAP_THRESHOLD_); small INSERTs were about a
    // quarter slower with it (bench/README.md).
    // A heap-sizing flag, set once, before anything depends on it.
    if (config.optimizeForSize) setFlagsFromString('--optimize-for-size');
    // Large blocks go back to the system when freed (malloc-tuning.ts), before the server allocates any.
    try {
      const { fixMmapThreshold } = await import('../native/malloc-tuning.js');
      const outcome = fixMmapThreshold(config.mallocMmapThreshold);
      if (outcome === 'refused' || outcome === 'not-built') {
        io.err(
          `litebase: glibc's mmap threshold is left as it is (${outcome === 'refused' ? 'mallopt refused it' : 'the native library was not built'})`,
        );
      }
    } catch (error) {
      io.err(`litebase: glibc's mmap threshold is left as it is: ${(error as Error).message}`);
    }
    // Loaded here, not at the top: client commands should not pay for the server's start-up.
    const { startNode } = await import('../server/start.js');

    // Handlers go in before the node starts, so a signal during start-up still closes it cleanly.
    let started: ReturnType<typeof startNode> | undefined;
    let stopping = false;
    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        io.err(`${signal} again: exiting without waiting`);
        process.exit(1);
      }
      stopping = true;
      io.err(`${signal}: shutting down`);
      void (async () => {
        try {
          const node = await started;
          await node?.close();
          process.exit(0);
        } catch (error) {
          io.err(`error SHUTDOWN_FAILED: ${errorMessage(error)}`);
          process.exit(1);
        }
      })();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);

    started = startNode(config);
    let node: Awaited<typeof started>;
    try {
      node = await started;
    } catch (error) {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      // startNode gave back what it took; should anything still hold the event loop open, a node
      // that failed to start must not linger half-alive: end it once the error has been printed.
      setTimeout(() => process.exit(process.exitCode ?? 1), 2000).unref();
      throw error;
    }
    if (config.limits.watchdogMs > 0) {
      // A statement SQLite cannot interrupt (a looping write) must not hold the node forever.
      const { startWatchdog } = await import('../server/event-loop-watchdog.js');
      startWatchdog(config.limits.statementTimeoutMs + config.limits.watchdogMs);
    }
    if (node.generatedRootKey !== undefined) {
      io.err(
        `Generated root key (saved to ${node.rootKeyFile ?? config.dataDir}): ${node.generatedRootKey} — it will not be shown again. ` +
          'Clients pass it as --key or LITEBASE_KEY.',
      );
    }
    if (config.authDisabled) {
      io.err(`WARNING: authentication is disabled: anyone who can reach ${node.url} can read and change every database.`);
    }
    io.err(`Litebase node ${config.nodeId} listening on ${node.url} (data dir ${config.dataDir})`);
  });
}
