import type { FastifyPluginAsync } from 'fastify';
import { requirePermission, type AppContext } from '../context.js';
import { LitebaseError } from '../../errors.js';
import { decodeNudge, NUDGE_CONTENT_TYPE, NudgeFormatError, type NudgeEntry } from '../../format/nudge-codec.js';

/**
 * A JSON nudge: `{"databases": [names]}` (at most 10,000 names of at most 64 characters, nothing
 * else). Checked by hand: typebox's Value module, used for nothing else, added ~0.15 s to every
 * node's start.
 */
export function isJsonNudge(body: unknown): body is { databases: string[] } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
  const keys = Object.keys(body);
  if (keys.length !== 1 || keys[0] !== 'databases') return false;
  const { databases } = body as { databases: unknown };
  return (
    Array.isArray(databases) &&
    databases.length <= 10_000 &&
    databases.every((name: unknown) => typeof name === 'string' && name.length <= 64)
  );
}

/** A nudge body with segments: a few MiB at most (the Primary's nudger drops segments past 4 MiB per database). */
const NUDGE_BODY_LIMIT = 64 * 1024 * 1024;

/**
 * GET /v1/cluster: the term, the Primary, and every node's role, last heartbeat and per-database
 * position with its lag behind the Primary (in positions). Positions come from heartbeats, except
 * this node's, which are live.
 */
export function clusterRoutes(context: AppContext): FastifyPluginAsync {
  return async (app) => {
    // The Primary's nudge (src/cluster/replica-nudger.ts): these databases' logs grew. Internal;
    // nodes send it with the root key.
    // The answer says whether this node's watchers see those logs change (a local file system),
    // so the Primary can stop nudging a node that does not need it.
    // It comes as JSON ({databases}: the logs grew) or, from this version on, as the binary body
    // of src/format/nudge-codec.ts that also carries the new segments (docs/FORMAT.md §13).
    app.addContentTypeParser(NUDGE_CONTENT_TYPE, { parseAs: 'buffer', bodyLimit: NUDGE_BODY_LIMIT }, (_request, body, done) => {
      done(null, body);
    });
    app.post('/v1/cluster/nudge', { bodyLimit: NUDGE_BODY_LIMIT }, async (request) => {
      requirePermission(request, 'cluster');
      return { watching: await context.databases.nudge(nudgeEntries(request.body)) };
    });

    app.get('/v1/cluster', async (request) => {
      requirePermission(request, 'cluster');
      const { member } = context.cluster;
      const lease = member.lease;
      const heartbeats = await member.nodes();
      const ownPositions = await context.databases.positions();
      const ownErrors = await context.databases.logErrors();
      const nodes = heartbeats.map((heartbeat) =>
        heartbeat.nodeId === context.config.nodeId
          ? { ...heartbeat, role: member.role, databases: ownPositions, lastHeartbeat: Date.now() }
          : heartbeat,
      );
      const primary = nodes.find((node) => node.nodeId === lease.primaryNodeId);
      const staleAfter = Math.max(3 * 1000, context.config.leaseTtlMs);
      return {
        term: member.term.toString(),
        primary: lease.primaryNodeId ? { nodeId: lease.primaryNodeId, address: lease.primaryAddress } : null,
        nodes: nodes.map((node) => ({
          nodeId: node.nodeId,
          address: node.address,
          role: node.role,
          term: node.term,
          lastHeartbeat: new Date(node.lastHeartbeat).toISOString(),
          alive: Date.now() - node.lastHeartbeat < staleAfter,
          databases: Object.fromEntries(
            Object.entries(node.databases).map(([name, { position }]) => {
              const primaryPosition = primary?.databases[name]?.position;
              const lag = primaryPosition === undefined ? null : Number(BigInt(primaryPosition) - BigInt(position));
              // Only this node's own refused segments are known here; others report theirs.
              const error = node.nodeId === context.config.nodeId ? ownErrors[name] : undefined;
              return [name, { position, lag: lag === null ? null : Math.max(0, lag), ...(error ? { error } : {}) }];
            }),
          ),
        })),
      };
    });
  };
}

/** The databases (and segments) a nudge names, from either body. */
function nudgeEntries(body: unknown): NudgeEntry[] {
  if (Buffer.isBuffer(body)) {
    try {
      return decodeNudge(body);
    } catch (error) {
      if (error instanceof NudgeFormatError) throw new LitebaseError('INVALID_REQUEST', error.message, { status: 400 });
      throw error;
    }
  }
  if (!isJsonNudge(body)) {
    throw new LitebaseError('INVALID_REQUEST', 'a nudge is {"databases": [names]} or a binary nudge body', { status: 400 });
  }
  return body.databases.map((database) => ({ database, segments: [] }));
}
