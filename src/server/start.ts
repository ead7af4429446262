import { mkdirSync } from 'node:fs';
import { pino, type Logger } from 'pino';
import type { LitebaseConfig } from '../config/config.js';
import { NodeDatabases } from '../engine/node-databases.js';
import { Metrics } from '../metrics.js';
import { DatabaseCatalog } from '../storage/catalog.js';
import { LocalLayout, SharedLayout } from '../storage/layout.js';
import { buildApp } from './app.js';
import { loadRootKey } from './root-key.js';

export interface RunningNode {
  url: string;
  /** The root key, when this start generated it (shown once by the CLI); undefined otherwise. */
  generatedRootKey: string | undefined;
  rootKeyFile: string | undefined;
  close(): Promise<void>;
}

/**
 * Start one Litebase node: open every database (rebuilding local copies from the log as needed),
 * then listen. Until clusters exist this node is the Primary of every database, at term 0.
 */
export async function startNode(config: LitebaseConfig, logger: Logger = pino({ level: config.logLevel })): Promise<RunningNode> {
  const shared = new SharedLayout(config.dataDir);
  const local = new LocalLayout(config.localDir);
  mkdirSync(shared.databasesDir, { recursive: true });
  mkdirSync(shared.clusterDir, { recursive: true });
  mkdirSync(config.localDir, { recursive: true });

  const rootKey = await loadRootKey(config.rootKey, shared.rootKeyFile);
  const metrics = new Metrics();
  const databases = new NodeDatabases({
    catalog: new DatabaseCatalog(shared),
    shared,
    local,
    config,
    logger,
    metrics,
    term: () => 0n,
    canWrite: () => true,
    onDeposed: (reason) => logger.error({ reason }, 'deposed'),
  }, 'primary');
  await databases.openAll();
  const cluster = { nodeId: config.nodeId, role: () => databases.role, primaryAddress: () => config.advertiseAddress };

  const app = buildApp({ config, databases, cluster, metrics, rootKey: rootKey.secret, logger });
  await app.listen({ port: config.port, host: config.host });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  logger.info({ url, dataDir: config.dataDir, localDir: config.localDir, nodeId: config.nodeId }, 'litebase listening');

  let closing: Promise<void> | undefined;
  return {
    url,
    generatedRootKey: rootKey.generated ? rootKey.secret : undefined,
    rootKeyFile: rootKey.file,
    close: () => {
      closing ??= (async () => {
        await app.close();
        await databases.close();
      })();
      return closing;
    },
  };
}
