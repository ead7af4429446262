import { Histogram, Registry, type Metric } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { RouteDurations } from '../../../src/server/operational-metrics.js';

describe('RouteDurations', () => {
  it('writes exactly what a prom-client Histogram with the same buckets writes', async () => {
    const ours = new RouteDurations();
    const oursRegistry = new Registry();
    oursRegistry.registerMetric(ours as unknown as Metric);
    const referenceRegistry = new Registry();
    const reference = new Histogram({
      name: 'litebase_http_request_duration_seconds',
      help: 'Time from receiving a request to sending its answer, by route',
      labelNames: ['route'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
      registers: [referenceRegistry],
    });
    const observations: Array<[string, number]> = [
      ['/v1/databases/:db/query', 0.0001],
      ['/v1/databases/:db/query', 0.0005], // on a bound: counted in that bucket (le)
      ['/v1/databases/:db/query', 0.003],
      ['/v1/databases/:db/query', 42], // above every bound: +Inf only
      ['/healthz', 0.2],
      ['unmatched', 0],
    ];
    for (const [route, seconds] of observations) {
      ours.observe(route, seconds);
      reference.labels(route).observe(seconds);
    }
    const expected = await reference.get();
    const actual = await ours.get();
    const normalize = (metric: { values: Array<{ labels: Record<string, unknown>; value: number; metricName?: string }> }) =>
      metric.values.map((value) => `${value.metricName}${JSON.stringify(Object.entries(value.labels).sort())} ${value.value}`).sort();
    expect(normalize(actual)).toEqual(normalize(expected));
    const sortedLines = (text: string) => text.split('\n').sort();
    expect(sortedLines(await oursRegistry.metrics())).toEqual(sortedLines(await referenceRegistry.metrics()));
    expect(await oursRegistry.metrics()).toContain(
      'litebase_http_request_duration_seconds_bucket{le="+Inf",route="/v1/databases/:db/query"} 4',
    );
    expect(await oursRegistry.metrics()).toContain('# TYPE litebase_http_request_duration_seconds histogram');

    oursRegistry.resetMetrics();
    expect((await ours.get()).values).toEqual([]);
  });
});
