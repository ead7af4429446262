import { useMemo } from 'preact/hooks';
import { TimeChart } from '../chart.js';
import { usePoll } from '../hooks.js';
import type { PageProps } from '../main.js';
import { RollingSeries } from '../series.js';
import type { ClusterInfo } from '../types.js';
import { ErrorBox, formatAge } from '../ui.js';

/** Replica lag per node (the largest over its databases), kept while the tab is open. */
const lagHistory = new RollingSeries();

/** Cluster: nodes, roles, heartbeats, term, replica lag over time. */
export function ClusterPage({ api, permissions }: PageProps) {
  const cluster = usePoll(async () => {
    const info = await api.get<ClusterInfo>('/v1/cluster');
    const lags: Record<string, number | null> = {};
    for (const node of info.nodes) {
      if (!node.alive) continue;
      const values = Object.values(node.databases).map((entry) => entry.lag ?? 0);
      lags[node.nodeId] = values.length === 0 ? 0 : Math.max(...values);
    }
    lagHistory.add(Date.now() / 1000, lags);
    return info;
  }, 1000);
  const info = cluster.value;
  const labels = lagHistory.labels();
  const data = useMemo(() => lagHistory.data(labels), [info, labels.join()]);

  if (!permissions.global('cluster')) {
    return (
      <p class="hint" data-testid="cluster-denied">
        This key may not see the cluster (it needs the cluster permission on "*").
      </p>
    );
  }
  return (
    <section>
      <ErrorBox error={cluster.error} />
      {info && (
        <>
          <p data-testid="cluster-summary">
            Term <strong data-testid="cluster-term">{info.term}</strong> · Primary{' '}
            <strong data-testid="cluster-primary">
              {info.primary ? `${info.primary.nodeId} (${info.primary.address})` : 'none (election under way)'}
            </strong>
          </p>
          <table data-testid="cluster-nodes">
            <thead>
              <tr>
                <th>Node</th>
                <th>Address</th>
                <th>Role</th>
                <th>Term</th>
                <th>Last heartbeat</th>
                <th>Alive</th>
                <th>Databases (position / lag)</th>
              </tr>
            </thead>
            <tbody>
              {info.nodes.map((node) => (
                <tr data-testid={`node-${node.nodeId}`} class={node.alive ? '' : 'dead'}>
                  <td>{node.nodeId}</td>
                  <td>{node.address}</td>
                  <td data-testid="node-role">{node.role}</td>
                  <td>{node.term}</td>
                  <td title={node.lastHeartbeat}>{formatAge(node.lastHeartbeat)}</td>
                  <td>{node.alive ? 'yes' : 'no'}</td>
                  <td>
                    {Object.entries(node.databases).map(([name, entry]) => (
                      <span class="pill" title={entry.error ? `${entry.error.code}: ${entry.error.message}` : ''}>
                        {name}: {entry.position} / {entry.lag ?? '?'}
                        {entry.error ? ' ⚠' : ''}
                      </span>
                    ))}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      <TimeChart
        title="Replica lag (positions behind the Primary, largest over databases)"
        labels={labels}
        data={data}
        testId="lag-chart"
      />
    </section>
  );
}
