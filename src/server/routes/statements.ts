import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { mergeStatementReports } from '../../engine/statement-merge.js';
import { STATEMENT_ORDERS, type StatementOrder, type StatementReport } from '../../engine/statement-stats.js';
import { errorMessage } from '../../errors.js';
import { requirePermission, type AppContext } from '../context.js';
import { DatabaseParams } from '../schemas.js';

/** Most statements one answer lists (and one node sends for a cluster view). */
const MAX_LIMIT = 1000;
/** How long the answering node waits for each other node's counts. */
const PEER_TIMEOUT_MS = 5000;

const StatementsQuery = Type.Object(
  {
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })),
    order: Type.Optional(Type.Union(STATEMENT_ORDERS.map((order) => Type.Literal(order)))),
    scope: Type.Optional(Type.Union([Type.Literal('node'), Type.Literal('cluster')])),
    /** Add each statement's run-time sketch (what a node asks the others for, to merge them). */
    sketches: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')])),
  },
  { additionalProperties: false },
);

/** Another node answered with an error (its code and message go into the cluster view). */
class PeerError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** One node's part in a cluster view. */
type NodePart =
  | { node: string; role: string; ok: true; since: string | null; tracked: number; evicted: number }
  | { node: string; ok: false; error: { code: string; message: string } };

interface NodeAnswer {
  node: string;
  role: string;
  since: string | null;
  tracked: number;
  evicted: number;
  statements: StatementReport[];
}

/**
 * Statement metrics (docs/API.md "Statement metrics"): `GET /v1/databases/:db/statements` lists the
 * statements this node ran on the database, normalized, with counts, errors, latency quantiles and
 * rows; with `scope=cluster`, every live node's, merged. `DELETE` starts this node's counts again.
 * Neither is forwarded: each node keeps its own counts.
 */
export function statementRoutes(context: AppContext): FastifyPluginAsync {
  const { databases, config } = context;

  const own = (name: string, order: StatementOrder, limit: number, withSketches: boolean): NodeAnswer => {
    const report = databases.statements.report(name, order, limit, withSketches);
    return {
      node: config.nodeId,
      role: databases.role,
      since: report?.since ?? null,
      tracked: report?.tracked ?? 0,
      evicted: report?.evicted ?? 0,
      statements: report?.statements ?? [],
    };
  };

  /** Another live node's counts with their sketches, asked with the root key (as nudges are): the caller's read permission was checked here. */
  const peer = async (address: string, name: string): Promise<NodeAnswer> => {
    const url = new URL(`/v1/databases/${encodeURIComponent(name)}/statements?limit=${MAX_LIMIT}&sketches=true`, address);
    const response = await (context.cluster.fetch ?? fetch)(url, {
      headers: { authorization: `Bearer ${context.rootKey}` },
      signal: AbortSignal.timeout(PEER_TIMEOUT_MS),
    });
    const body = (await response.json()) as NodeAnswer & { error?: { code: string; message: string } };
    if (!response.ok)
      throw new PeerError(body.error?.code ?? `HTTP_${response.status}`, body.error?.message ?? `answered ${response.status}`);
    return body;
  };

  const cluster = async (name: string): Promise<{ parts: NodePart[]; answers: NodeAnswer[] }> => {
    const staleAfter = Math.max(3000, config.leaseTtlMs);
    const nodes = (await context.cluster.member.nodes()).filter(
      (node) => node.nodeId !== config.nodeId && Date.now() - node.lastHeartbeat < staleAfter,
    );
    const answers: NodeAnswer[] = [own(name, 'total', MAX_LIMIT, true)];
    const parts: NodePart[] = [];
    const settled = await Promise.allSettled(nodes.map((node) => peer(node.address, name)));
    settled.forEach((result, index) => {
      const nodeId = (nodes[index] as { nodeId: string }).nodeId;
      if (result.status === 'fulfilled') answers.push(result.value);
      else {
        const error = result.reason as unknown;
        const code = error instanceof PeerError ? error.code : 'NODE_UNREACHABLE';
        parts.push({ node: nodeId, ok: false, error: { code, message: errorMessage(error) } });
      }
    });
    for (const answer of answers) {
      parts.push({ node: answer.node, role: answer.role, ok: true, since: answer.since, tracked: answer.tracked, evicted: answer.evicted });
    }
    return { parts: parts.sort((a, b) => (a.node < b.node ? -1 : 1)), answers };
  };

  return async (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();

    app.get('/v1/databases/:db/statements', { schema: { params: DatabaseParams, querystring: StatementsQuery } }, async (request) => {
      const name = request.params.db;
      requirePermission(request, 'read', name);
      // 404 for a database that does not exist (counts of a dropped one are gone with it).
      await databases.get(name);
      const limit = Math.min(MAX_LIMIT, Math.max(1, Number(request.query.limit ?? 20)));
      const order: StatementOrder = request.query.order ?? 'total';
      const stats = databases.statements;
      const common = {
        database: name,
        node: config.nodeId,
        role: databases.role,
        enabled: stats.enabled,
        order,
        maxTracked: stats.options.maxPerDatabase,
      };
      if (request.query.scope !== 'cluster') {
        const answer = own(name, order, limit, request.query.sketches === 'true');
        return {
          ...common,
          scope: 'node',
          since: answer.since,
          tracked: answer.tracked,
          evicted: answer.evicted,
          statements: answer.statements,
        };
      }
      const { parts, answers } = await cluster(name);
      const sinces = answers.map((answer) => answer.since).filter((since): since is string => since !== null);
      const merged = mergeStatementReports(
        answers.map((answer) => answer.statements),
        order,
        Infinity,
      );
      return {
        ...common,
        scope: 'cluster',
        nodes: parts,
        since: sinces.length === 0 ? null : sinces.reduce((a, b) => (Date.parse(a) <= Date.parse(b) ? a : b)),
        tracked: merged.length,
        evicted: answers.reduce((sum, answer) => sum + answer.evicted, 0),
        statements: merged.slice(0, limit),
      };
    });

    app.delete('/v1/databases/:db/statements', { schema: { params: DatabaseParams } }, async (request, reply) => {
      const name = request.params.db;
      requirePermission(request, 'admin', name);
      await databases.get(name);
      databases.statements.reset(name);
      return reply.status(204).send();
    });
  };
}
