/** Whatever answers GET /metrics: a BenchServer, or a cluster node's JsonClient. */
export interface MetricsSource {
  request(method: 'GET', urlPath: string): Promise<{ status: number; text: string }>;
}

/**
 * Scrape GET /metrics and sum every sample of each metric over its labels. Only a few totals are
 * needed (transactions, segments, group size), and the label sets are the server's business.
 */
export async function scrapeMetrics(server: MetricsSource): Promise<Map<string, number>> {
  const totals = new Map<string, number>();
  const response = await server.request('GET', '/metrics');
  if (response.status !== 200) return totals;
  for (const line of response.text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match?.[1] || !match[3]) continue;
    // Histogram buckets are cumulative per label set; summing them would mean nothing.
    if (match[1].endsWith('_bucket')) continue;
    const value = Number(match[3]);
    if (!Number.isFinite(value)) continue;
    totals.set(match[1], (totals.get(match[1]) ?? 0) + value);
  }
  return totals;
}

export interface CommitStats {
  /** Client transactions made durable during the window. */
  transactions: number | null;
  /** Log segments written (each one fsync) during the window. */
  segments: number | null;
  /** Transactions per segment: about 1 without group commit, many with it. */
  avg_group_size: number | null;
  avg_segment_write_ms: number | null;
}

function delta(before: Map<string, number>, after: Map<string, number>, name: string): number | null {
  const end = after.get(name);
  if (end === undefined) return null;
  return end - (before.get(name) ?? 0);
}

/** What the server says it did between two scrapes; null where it does not export the metric. */
export function commitStats(before: Map<string, number>, after: Map<string, number>): CommitStats {
  const groups = delta(before, after, 'litebase_commit_group_size_count');
  const grouped = delta(before, after, 'litebase_commit_group_size_sum');
  const writes = delta(before, after, 'litebase_segment_write_seconds_count');
  const writeSeconds = delta(before, after, 'litebase_segment_write_seconds_sum');
  return {
    transactions: delta(before, after, 'litebase_transactions_committed_total'),
    segments: delta(before, after, 'litebase_segments_written_total'),
    avg_group_size: groups && grouped !== null ? grouped / groups : null,
    avg_segment_write_ms: writes && writeSeconds !== null ? (writeSeconds / writes) * 1000 : null,
  };
}
