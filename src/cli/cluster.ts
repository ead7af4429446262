import type { Command } from 'commander';
import type { ClusterNodeStatus, ClusterStatus } from '../client/client.js';
import { connect, withConnectionOptions, type CliIo, type ConnectionOptions } from './common.js';
import { renderTable } from './output.js';

/** `litebase cluster status`: the term, the Primary and every node (GET /v1/cluster). */
export function registerClusterCommands(program: Command, io: CliIo): void {
  const cluster = program.command('cluster').description('inspect the cluster (needs a key with the cluster action on "*")');

  withConnectionOptions(
    cluster
      .command('status')
      .description("show the term, the Primary, and each node's role, heartbeat and per-database position and lag")
      .option('--json', "print the server's JSON answer on one line"),
  ).action(async (options: ConnectionOptions & { json?: boolean }) => {
    const answer = await connect(options).cluster();
    io.out(options.json ? JSON.stringify(answer) : describeCluster(answer));
  });
}

/** The answer for people: a line for the term and the Primary, then a row per node. */
export function describeCluster(status: ClusterStatus, now = Date.now()): string {
  const primary = status.primary
    ? `primary ${status.primary.nodeId} (${status.primary.address})`
    : 'no primary (an election may be under way)';
  const lines = [`term ${status.term}, ${primary}`];
  const nodes = Array.isArray(status.nodes) ? status.nodes : [];
  if (nodes.length === 0) {
    lines.push('no nodes have sent a heartbeat');
    return lines.join('\n');
  }
  lines.push(
    renderTable(
      ['node', 'role', 'address', 'alive', 'heartbeat', 'databases (position, lag)'],
      nodes.map((node) => [
        node.nodeId,
        node.role,
        node.address,
        node.alive ? 'yes' : 'no',
        heartbeatAge(node.lastHeartbeat, now),
        describeDatabases(node),
      ]),
    ),
  );
  return lines.join('\n');
}

function heartbeatAge(lastHeartbeat: string, now: number): string {
  const at = Date.parse(lastHeartbeat);
  if (!Number.isFinite(at)) return 'never';
  // Clocks of two machines may disagree a little: a heartbeat "from the future" is just now.
  const seconds = Math.max(0, now - at) / 1000;
  return seconds < 60
    ? `${seconds.toFixed(1)} s ago`
    : seconds < 3600
      ? `${(seconds / 60).toFixed(1)} min ago`
      : `${(seconds / 3600).toFixed(1)} h ago`;
}

/** One line per database: its applied position and lag behind the Primary (and a refused segment). */
function describeDatabases(node: ClusterNodeStatus): string {
  const entries = Object.entries(node.databases ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (entries.length === 0) return '-';
  return entries
    .map(([name, { position, lag, error }]) => {
      const behind = lag === null || lag === undefined ? 'lag unknown' : `lag ${lag}`;
      const refused = error ? `; refused segment ${error.position}: ${error.code}` : '';
      return `${name}: ${position}, ${behind}${refused}`;
    })
    .join('\n');
}
