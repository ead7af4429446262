import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { LitebaseConfig } from '../config/config.js';
import type { NodeDatabases } from '../node/node-databases.js';
import { LitebaseError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { LocalLayout, SharedLayout } from '../storage/layout.js';
import type { ObjectStore } from '../storage/object-store.js';
import type { ClusterMember } from '../cluster/cluster-member.js';
import type { AccessKeys, Action, Principal } from './access-keys.js';

/*
 * What every route module is given and needs: the node's context, the app's type, and the
 * permission check. Kept apart from app.ts (which builds the app and registers the routes) so
 * that routes never import the module that imports them.
 */

declare module 'fastify' {
  interface FastifyRequest {
    /** Who sent the request (set by the auth hook; null only on public routes). */
    principal: Principal | null;
  }
}

/** Throw 403 unless the caller's key allows `action` (on `database`, when given). */
export function requirePermission(request: { principal: Principal | null }, action: Action, database?: string): void {
  if (request.principal?.can(action, database)) return;
  throw new LitebaseError('PERMISSION_DENIED', `this key may not ${action}${database === undefined ? '' : ` database ${database}`}`, {
    details: { action, ...(database === undefined ? {} : { database }) },
  });
}
export interface AppContext {
  config: LitebaseConfig;
  keys: AccessKeys;
  databases: NodeDatabases;
  cluster: ClusterView;
  metrics: Metrics;
  rootKey: string;
  /** PEM certificate chain and key (read by start.ts): the API is served over HTTPS. */
  tls?: { cert: Buffer; key: Buffer };
  logger: Logger;
  /** The archive (compaction, restore); opened once by start.ts. */
  objectStore: ObjectStore;
  shared: SharedLayout;
  local: LocalLayout;
}

export type App = FastifyInstance<
  import('node:http').Server,
  import('node:http').IncomingMessage,
  import('node:http').ServerResponse,
  Logger,
  TypeBoxTypeProvider
>;

/** Who the Primary is, as this node currently sees it. */
export interface ClusterView {
  readonly nodeId: string;
  role(): 'primary' | 'replica';
  primaryAddress(): string | undefined;
  /** The election and heartbeats (GET /v1/cluster). */
  readonly member: ClusterMember;
  /** How to reach other nodes: trusting --tls-ca for https; the global fetch when absent. */
  readonly fetch?: typeof fetch;
}
