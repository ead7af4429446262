import { useMemo } from 'preact/hooks';
import { TimeChart } from '../chart.js';
import { usePoll } from '../hooks.js';
import type { PageProps } from '../main.js';
import {
  histogram,
  histogramDelta,
  histogramQuantile,
  maxByLabel,
  parsePrometheusText,
  ratePerSecond,
  sumSeries,
  type Histogram,
} from '../prometheus.js';
import { RollingSeries } from '../series.js';
import { ErrorBox } from '../ui.js';

/** The route whose latency the p99 chart shows: the query endpoint. */
const QUERY_ROUTE = '/v1/databases/:db/query';

interface Scrape {
  t: number;
  transactions: number;
  queryLatency: Histogram;
  segmentWrite: Histogram;
}

/** Charts kept while the tab is open, from successive scrapes of this node's /metrics. */
const charts = {
  transactions: new RollingSeries(),
  latency: new RollingSeries(),
  segments: new RollingSeries(),
  lag: new RollingSeries(),
};
let previous: Scrape | null = null;
/** The newest value of each chart, shown as text above them. */
let latest: { transactionsPerSecond: number; p99Ms: number | null; segmentP99Ms: number | null; maxLag: number | null } | null = null;

const toMs = (seconds: number | null): number | null => (seconds === null ? null : seconds * 1000);

/** One scrape of /metrics: what it adds to each chart, from its difference with the previous one. */
function record(text: string, t: number): void {
  const samples = parsePrometheusText(text);
  const scrape: Scrape = {
    t,
    transactions: sumSeries(samples, 'litebase_transactions_committed_total'),
    queryLatency: histogram(samples, 'litebase_http_request_duration_seconds', (labels) => labels.route === QUERY_ROUTE),
    segmentWrite: histogram(samples, 'litebase_segment_write_seconds'),
  };
  const lags = maxByLabel(samples, 'litebase_replica_lag_positions', 'node');
  charts.lag.add(t, lags);
  if (previous && t > previous.t) {
    const seconds = t - previous.t;
    charts.transactions.add(t, { 'transactions/s': ratePerSecond(scrape.transactions, previous.transactions, seconds) });
    const latency = histogramDelta(scrape.queryLatency, previous.queryLatency);
    charts.latency.add(t, { 'p50 ms': toMs(histogramQuantile(0.5, latency)), 'p99 ms': toMs(histogramQuantile(0.99, latency)) });
    const segments = histogramDelta(scrape.segmentWrite, previous.segmentWrite);
    charts.segments.add(t, {
      'mean ms': segments.count > 0 ? (segments.sum / segments.count) * 1000 : null,
      'p99 ms': toMs(histogramQuantile(0.99, segments)),
    });
    const lagValues = Object.values(lags);
    latest = {
      transactionsPerSecond: ratePerSecond(scrape.transactions, previous.transactions, seconds),
      p99Ms: toMs(histogramQuantile(0.99, latency)),
      segmentP99Ms: toMs(histogramQuantile(0.99, segments)),
      maxLag: lagValues.length > 0 ? Math.max(...lagValues) : null,
    };
  }
  previous = scrape;
}

const ms = (value: number) => `${value.toFixed(value < 10 ? 2 : 0)} ms`;

/** Metrics: transactions/s, p99 query latency, segment write time, replica lag, from /metrics. */
export function MetricsPage({ api, permissions }: PageProps) {
  const scrape = usePoll(async () => {
    record(await api.text('/metrics'), Date.now() / 1000);
    return Date.now();
  }, 2000);
  const tick = scrape.value;
  const transactions = useMemo(() => charts.transactions.data(['transactions/s']), [tick]);
  const latency = useMemo(() => charts.latency.data(['p50 ms', 'p99 ms']), [tick]);
  const segments = useMemo(() => charts.segments.data(['mean ms', 'p99 ms']), [tick]);
  const lagLabels = charts.lag.labels();
  const lag = useMemo(() => charts.lag.data(lagLabels), [tick, lagLabels.join()]);

  if (!permissions.global('cluster')) {
    return (
      <p class="hint" data-testid="metrics-denied">
        Metrics need a key with the cluster permission on "*".
      </p>
    );
  }
  return (
    <section class="metrics" data-testid="metrics">
      <ErrorBox error={scrape.error} />
      <p class="hint">This node's /metrics, read every 2 s; rates and quantiles are over each interval.</p>
      <p data-testid="metrics-latest">
        {latest ? (
          <>
            Now: <strong data-testid="metrics-tps">{latest.transactionsPerSecond.toFixed(1)}</strong> transactions/s · query p99{' '}
            <strong>{latest.p99Ms === null ? '–' : ms(latest.p99Ms)}</strong> · segment write p99{' '}
            <strong>{latest.segmentP99Ms === null ? '–' : ms(latest.segmentP99Ms)}</strong> · largest replica lag{' '}
            <strong>{latest.maxLag ?? '–'}</strong>
          </>
        ) : (
          'Collecting (rates need two readings)…'
        )}
      </p>
      <TimeChart
        title="Transactions committed per second"
        labels={['transactions/s']}
        data={transactions}
        format={(value) => value.toFixed(1)}
        testId="chart-transactions"
      />
      <TimeChart title={`Query latency (${QUERY_ROUTE})`} labels={['p50 ms', 'p99 ms']} data={latency} format={ms} testId="chart-latency" />
      <TimeChart
        title="Segment write time (write + fsync)"
        labels={['mean ms', 'p99 ms']}
        data={segments}
        format={ms}
        testId="chart-segments"
      />
      <TimeChart
        title="Replica lag (positions behind the Primary)"
        labels={lagLabels}
        data={lag}
        format={(value) => String(Math.round(value))}
        testId="chart-lag"
      />
    </section>
  );
}
