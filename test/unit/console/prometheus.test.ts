import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import {
  histogram,
  histogramDelta,
  histogramQuantile,
  maxByLabel,
  parsePrometheusText,
  ratePerSecond,
  sumSeries,
} from '../../../console/src/prometheus.js';

/** The console's Prometheus parser against what prom-client (the node's own library) writes. */
describe('console Prometheus parsing', () => {
  it('reads counters, gauges and labelled histograms exactly as prom-client writes them', async () => {
    const registry = new Registry();
    const counter = new Counter({ name: 'tx_total', help: 'tx', labelNames: ['database'], registers: [registry] });
    counter.labels('a').inc(3);
    counter.labels('b').inc(4);
    const gauge = new Gauge({ name: 'lag', help: 'lag', labelNames: ['node', 'database'], registers: [registry] });
    gauge.labels('n1', 'a').set(0);
    gauge.labels('n2', 'a').set(7);
    gauge.labels('n2', 'b').set(2);
    const durations = new Histogram({
      name: 'dur_seconds',
      help: 'd',
      labelNames: ['route'],
      buckets: [0.01, 0.1, 1],
      registers: [registry],
    });
    for (const value of [0.005, 0.005, 0.05, 0.5]) durations.labels('/q').observe(value);
    durations.labels('/other').observe(5);

    const samples = parsePrometheusText(await registry.metrics());
    expect(sumSeries(samples, 'tx_total')).toBe(7);
    expect(sumSeries(samples, 'tx_total', (labels) => labels.database === 'b')).toBe(4);
    expect(maxByLabel(samples, 'lag', 'node')).toEqual({ n1: 0, n2: 7 });

    const query = histogram(samples, 'dur_seconds', (labels) => labels.route === '/q');
    expect(query.count).toBe(4);
    expect(query.sum).toBeCloseTo(0.56);
    expect(query.buckets).toEqual([
      { le: 0.01, count: 2 },
      { le: 0.1, count: 3 },
      { le: 1, count: 4 },
      { le: Infinity, count: 4 },
    ]);
    const all = histogram(samples, 'dur_seconds');
    expect(all.count).toBe(5);
    expect(all.buckets.at(-1)).toEqual({ le: Infinity, count: 5 });
  });

  it('unescapes label values with quotes, backslashes, newlines and commas', () => {
    const [sample] = parsePrometheusText('m{a="x\\"y",b="c\\\\d",e="f\\ng",h="1,2"} 1.5e3 1700000000000\n');
    expect(sample).toEqual({ name: 'm', labels: { a: 'x"y', b: 'c\\d', e: 'f\ng', h: '1,2' }, value: 1500 });
    expect(parsePrometheusText('x +Inf\ny NaN\n# HELP z a comment\n\n').map((s) => s.value)).toEqual([Infinity, NaN]);
    expect(() => parsePrometheusText('not a sample\n')).toThrow(/not a sample/);
  });

  it('estimates quantiles as Prometheus histogram_quantile does', () => {
    const h = {
      buckets: [
        { le: 0.1, count: 50 },
        { le: 0.2, count: 100 },
        { le: Infinity, count: 100 },
      ],
      sum: 0,
      count: 100,
    };
    expect(histogramQuantile(0.5, h)).toBeCloseTo(0.1);
    expect(histogramQuantile(0.75, h)).toBeCloseTo(0.15);
    expect(histogramQuantile(0.25, h)).toBeCloseTo(0.05);
    // A rank in the +Inf bucket answers the highest finite bound.
    const tail = {
      buckets: [
        { le: 1, count: 1 },
        { le: Infinity, count: 10 },
      ],
      sum: 0,
      count: 10,
    };
    expect(histogramQuantile(0.99, tail)).toBe(1);
    expect(histogramQuantile(0.99, { buckets: [{ le: Infinity, count: 0 }], sum: 0, count: 0 })).toBeNull();
  });

  it('takes the difference of two scrapes and rates counters, a restart counting from zero', () => {
    const earlier = {
      buckets: [
        { le: 1, count: 2 },
        { le: Infinity, count: 3 },
      ],
      sum: 4,
      count: 3,
    };
    const later = {
      buckets: [
        { le: 1, count: 5 },
        { le: Infinity, count: 7 },
      ],
      sum: 10,
      count: 7,
    };
    expect(histogramDelta(later, earlier)).toEqual({
      buckets: [
        { le: 1, count: 3 },
        { le: Infinity, count: 4 },
      ],
      sum: 6,
      count: 4,
    });
    expect(ratePerSecond(30, 10, 2)).toBe(10);
    expect(ratePerSecond(4, 10, 2)).toBe(2);
    expect(ratePerSecond(4, 10, 0)).toBe(0);
  });
});
