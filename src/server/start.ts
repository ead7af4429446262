import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import { ClusterMember } from '../cluster/cluster-member.js';
import { warmUpSegmentReader } from '../log/segment-prefetch.js';
import { ReplicaNudger, type NudgePeer } from '../cluster/replica-nudger.js';
import { encodeNudge, NUDGE_CONTENT_TYPE } from '../format/nudge-codec.js';
import type { LitebaseConfig } from '../config/config.js';
import { NodeDatabases, type NodeRole } from '../node/node-databases.js';
import { Metrics } from '../metrics.js';
import { errorMessage, LitebaseError } from '../errors.js';
import { DatabaseCatalog } from '../storage/catalog.js';
import { LocalLayout, SharedLayout } from '../storage/layout.js';
import { LocalDirLock } from '../storage/local-dir-lock.js';
import { processIdentity } from '../cluster/process-identity.js';
import { redactUrl, type ObjectStore } from '../storage/object-store.js';
import { openObjectStore } from '../storage/open-object-store.js';
import { AccessKeys } from './access-keys.js';
import { buildApp } from './app.js';
import { loadRootKey } from './root-key.js';
import { fetchTrustingCa } from '../client/tls.js';

export interface RunningNode {
  url: string;
  /** The root key, when this start generated it (shown once by the CLI); undefined otherwise. */
  generatedRootKey: string | undefined;
  rootKeyFile: string | undefined;
  close(): Promise<void>;
}

const engineRole = (role: string): NodeRole => (role === 'primary' ? 'primary' : 'replica');

/**
 * Start one Litebase node: join the cluster on the shared folder (a node alone elects itself),
 * open every database as Primary or Replica according to the role it got, then listen.
 */
export async function startNode(config: LitebaseConfig, logger: Logger = pino({ level: config.logLevel })): Promise<RunningNode> {
  // Read first: a wrong path stops the start before the node joins the cluster.
  const tls = config.tls
    ? { cert: readPem(config.tls.certFile, 'certificate'), key: readPem(config.tls.keyFile, 'private key') }
    : undefined;
  const peerCa = config.tlsCaFile ? readPem(config.tlsCaFile, 'CA certificate') : undefined;
  const shared = new SharedLayout(config.dataDir);
  const local = new LocalLayout(config.localDir);
  mkdirSync(shared.databasesDir, { recursive: true });
  mkdirSync(shared.clusterDir, { recursive: true });
  mkdirSync(config.localDir, { recursive: true });
  // Held until exit: one process per local folder, and the proof a restart needs to take over
  // the lease of this node's crashed process at once (docs/CLUSTER.md, "Instant restart").
  const localLock = LocalDirLock.acquire(local);

  // The read-ahead thread starts while the node joins the cluster, ready for a long catch-up.
  warmUpSegmentReader();
  let rootKey: Awaited<ReturnType<typeof loadRootKey>>;
  let objectStore: ObjectStore;
  let member: ClusterMember;
  try {
    rootKey = await loadRootKey(config.rootKey, shared.rootKeyFile);
    // Opened once for the node; a missing bucket or wrong credentials stop the start here.
    objectStore = await openVerifiedObjectStore(config, logger);
    try {
      member = await ClusterMember.start({
        dataDir: config.dataDir,
        nodeId: config.nodeId,
        address: config.advertiseAddress,
        leaseTtlMs: config.leaseTtlMs,
        holder: processIdentity(localLock.instanceId),
        logger,
      });
    } catch (error) {
      await objectStore.close();
      throw error;
    }
  } catch (error) {
    localLock.release();
    throw error;
  }
  const metrics = new Metrics();
  // A start that fails from here on (a port in use, a database that will not open) gives back what
  // it took, the lease first among them, before the error reaches the caller.
  const undo: Array<() => Promise<void> | void> = [() => localLock.release(), () => objectStore.close(), () => member.stop()];
  let listening: { url: string; app: ReturnType<typeof buildApp>; databases: NodeDatabases; housekeeping: NodeJS.Timeout };
  try {
    const catalog = new DatabaseCatalog(shared);
    // Forwarding and nudges verify peers' certificates against --tls-ca, or the system CAs without it.
    const peerFetch = peerCa ? fetchTrustingCa(peerCa) : undefined;
    /** Peers that refused a nudge body with segments (an older version): sent names only, as JSON. */
    const namesOnly = new Set<string>();
    const nudger = new ReplicaNudger({
      logger,
      carrySegments: config.nudgeSegments,
      send: async (address, entries) => {
        const withSegments = !namesOnly.has(address) && entries.some((entry) => entry.segments.length > 0);
        const response = await (peerFetch ?? fetch)(new URL('/v1/cluster/nudge', address), {
          method: 'POST',
          headers: {
            authorization: `Bearer ${rootKey.secret}`,
            'content-type': withSegments ? NUDGE_CONTENT_TYPE : 'application/json',
          },
          body: withSegments ? encodeNudge(entries) : JSON.stringify({ databases: entries.map((entry) => entry.database) }),
          signal: AbortSignal.timeout(2000),
        });
        const text = await response.text();
        if (response.status === 415 && withSegments) namesOnly.add(address);
        if (!response.ok) throw new Error(`${address} answered ${response.status}`);
        // An older node answers 204 with no body: it always counts as needing nudges.
        const answer = text ? (JSON.parse(text) as { watching?: unknown }) : {};
        return { watching: answer.watching === true };
      },
    });
    const databases = new NodeDatabases(
      {
        catalog,
        shared,
        local,
        config,
        logger,
        metrics,
        term: () => member.term,
        canWrite: () => member.canWrite(),
        writeFence: member.writeFence,
        onDeposed: (reason) => member.stepDown(reason),
        objectStore,
        replicaFeed: {
          wantsSegments: () => nudger.wantsSegments(),
          durable: (name, segments) => nudger.nudge(name, segments),
        },
      },
      engineRole(member.role),
    );
    undo.push(() => databases.close());
    member.on('role', (role, term) => {
      logger.info({ role, term: term.toString() }, 'cluster role changed');
      void databases.setRole(engineRole(role));
    });
    await databases.openAll();

    // Heartbeats carry each database's position; replicas also pick up databases created or
    // dropped by the Primary.
    const housekeeping = setInterval(
      () => {
        void (async () => {
          if (databases.role === 'replica') await databases.syncWithCatalog();
          member.setDatabasePositions(await databases.positions());
          if (databases.role === 'primary') nudger.setPeers(await livePeers(member, config.nodeId, config.leaseTtlMs));
        })().catch((error: unknown) => logger.warn({ err: error }, 'housekeeping failed'));
      },
      Math.min(1000, config.replicaPollMs),
    );
    housekeeping.unref();
    undo.push(() => clearInterval(housekeeping));

    const cluster = {
      nodeId: config.nodeId,
      role: () => databases.role,
      primaryAddress: () => member.lease.primaryAddress,
      member,
      ...(peerFetch ? { fetch: peerFetch } : {}),
    };
    const keys = new AccessKeys(path.join(shared.clusterDir, 'keys'));
    const app = buildApp({
      config,
      keys,
      databases,
      cluster,
      metrics,
      rootKey: rootKey.secret,
      logger,
      objectStore,
      shared,
      local,
      ...(tls ? { tls } : {}),
    });
    undo.push(() => app.close());
    await app.listen({ port: config.port, host: config.host });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    const url = `${tls ? 'https' : 'http'}://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
    logger.info(
      { url, dataDir: config.dataDir, localDir: config.localDir, nodeId: config.nodeId, role: member.role },
      'litebase listening',
    );
    listening = { url, app, databases, housekeeping };
  } catch (error) {
    for (const step of undo.reverse()) {
      try {
        await step();
      } catch (cleanupError) {
        logger.warn({ err: cleanupError }, 'cleaning up after a failed start');
      }
    }
    throw error;
  }
  const { url, app, databases, housekeeping } = listening;

  let closing: Promise<void> | undefined;
  return {
    url,
    generatedRootKey: rootKey.generated ? rootKey.secret : undefined,
    rootKeyFile: rootKey.file,
    close: () => {
      closing ??= (async () => {
        clearInterval(housekeeping);
        await app.close();
        await databases.close();
        // Last: a Primary hands its lease over only once its databases are closed.
        await member.stop();
        await objectStore.close();
        localLock.release();
      })();
      return closing;
    },
  };
}

/** The other nodes whose heartbeat is recent: the ones worth nudging. */
async function livePeers(member: ClusterMember, nodeId: string, leaseTtlMs: number): Promise<NudgePeer[]> {
  const staleAfter = Math.max(3000, leaseTtlMs);
  return (await member.nodes())
    .filter((node) => node.nodeId !== nodeId && Date.now() - node.lastHeartbeat < staleAfter)
    .map(({ nodeId: id, address, startedAt }) => (startedAt === undefined ? { nodeId: id, address } : { nodeId: id, address, startedAt }));
}

async function openVerifiedObjectStore(config: LitebaseConfig, logger: Logger): Promise<ObjectStore> {
  const store = openObjectStore(config.objectStore, { ...config.objectStoreOptions, logger });
  try {
    await store.verify();
  } catch (error) {
    await store.close();
    const code = error instanceof LitebaseError ? error.code : 'OBJECT_STORE_UNAVAILABLE';
    throw new LitebaseError(code, `the object store ${redactUrl(config.objectStore)} is not usable: ${errorMessage(error)}`, {
      cause: error,
    });
  }
  return store;
}

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new LitebaseError('CONFIG_INVALID', `cannot read the TLS ${what} ${file}: ${errorMessage(error)}`, { cause: error });
  }
}
