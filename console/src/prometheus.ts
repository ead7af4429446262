/**
 * The Prometheus text exposition format (version 0.0.4), as /metrics answers it, and the few
 * calculations the metrics page makes from two scrapes: counter rates and histogram quantiles.
 * Pure functions, unit-tested in test/unit/console-prometheus.test.ts.
 *
 * Written here rather than taken from npm: the one small parser there (parse-prometheus-text-format)
 * merges every labelled series of a histogram into one and drops their sums and counts.
 */

export type Labels = Readonly<Record<string, string>>;

export interface Sample {
  /** The series name as written, with any _bucket/_sum/_count suffix. */
  name: string;
  labels: Labels;
  value: number;
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(\s+-?\d+)?\s*$/;

function parseValue(text: string): number {
  if (text === '+Inf' || text === 'Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  const value = Number(text);
  if (Number.isNaN(value)) throw new Error(`not a sample value: ${text}`);
  return value;
}

/** `{a="x",b="y\"z"}` to an object; label values may hold escaped \\, \" and \n, and commas. */
function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let index = 1; // after "{"
  const end = text.length - 1; // the "}"
  while (index < end) {
    while (text[index] === ' ' || text[index] === ',') index++;
    if (index >= end) break;
    const equals = text.indexOf('=', index);
    if (equals < 0 || text[equals + 1] !== '"') throw new Error(`malformed labels: ${text}`);
    const name = text.slice(index, equals).trim();
    let value = '';
    index = equals + 2;
    for (; index < end && text[index] !== '"'; index++) {
      const char = text[index];
      if (char === '\\') {
        const next = text[++index];
        value += next === 'n' ? '\n' : (next ?? '');
      } else {
        value += char;
      }
    }
    if (text[index] !== '"') throw new Error(`unterminated label value: ${text}`);
    labels[name] = value;
    index++;
  }
  return labels;
}

/** Every sample line of an exposition; comments (HELP, TYPE) and blank lines are skipped. */
export function parsePrometheusText(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = SAMPLE_LINE.exec(line);
    if (!match?.[1] || match[3] === undefined) throw new Error(`not a sample line: ${line}`);
    samples.push({ name: match[1], labels: match[2] ? parseLabels(match[2]) : {}, value: parseValue(match[3]) });
  }
  return samples;
}

type LabelFilter = (labels: Labels) => boolean;
const everything: LabelFilter = () => true;

/** The sum of a counter or gauge over the series `filter` keeps (0 when there is none). */
export function sumSeries(samples: readonly Sample[], name: string, filter: LabelFilter = everything): number {
  let total = 0;
  for (const sample of samples) if (sample.name === name && filter(sample.labels)) total += sample.value;
  return total;
}

/** A gauge's value per value of one label (the largest, when several series share it). */
export function maxByLabel(samples: readonly Sample[], name: string, label: string): Record<string, number> {
  const result: Record<string, number> = {};
  for (const sample of samples) {
    if (sample.name !== name) continue;
    const key = sample.labels[label] ?? '';
    result[key] = Math.max(result[key] ?? -Infinity, sample.value);
  }
  return result;
}

/** A histogram, its series added together: cumulative counts per upper bound, ascending. */
export interface Histogram {
  buckets: Array<{ le: number; count: number }>;
  sum: number;
  count: number;
}

export function histogram(samples: readonly Sample[], name: string, filter: LabelFilter = everything): Histogram {
  const byBound = new Map<number, number>();
  let sum = 0;
  let count = 0;
  for (const sample of samples) {
    if (!filter(sample.labels)) continue;
    if (sample.name === `${name}_bucket`) {
      const le = parseValue(sample.labels.le ?? '+Inf');
      byBound.set(le, (byBound.get(le) ?? 0) + sample.value);
    } else if (sample.name === `${name}_sum`) {
      sum += sample.value;
    } else if (sample.name === `${name}_count`) {
      count += sample.value;
    }
  }
  const buckets = [...byBound].map(([le, bucketCount]) => ({ le, count: bucketCount })).sort((a, b) => a.le - b.le);
  return { buckets, sum, count };
}

/** What was observed between two scrapes of the same histogram (later minus earlier). */
export function histogramDelta(later: Histogram, earlier: Histogram): Histogram {
  const before = new Map(earlier.buckets.map((bucket) => [bucket.le, bucket.count]));
  return {
    buckets: later.buckets.map((bucket) => ({ le: bucket.le, count: Math.max(0, bucket.count - (before.get(bucket.le) ?? 0)) })),
    sum: Math.max(0, later.sum - earlier.sum),
    count: Math.max(0, later.count - earlier.count),
  };
}

/**
 * The q-quantile (0..1) of a histogram, as Prometheus's histogram_quantile estimates it: linear
 * inside the bucket the rank falls in; the highest finite bound when it falls in the +Inf bucket.
 * Null when the histogram holds no observation.
 */
export function histogramQuantile(q: number, histogramValue: Histogram): number | null {
  const { buckets } = histogramValue;
  const total = buckets.at(-1)?.count ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let previousBound = 0;
  let previousCount = 0;
  for (const bucket of buckets) {
    if (bucket.count >= rank) {
      if (bucket.le === Infinity) return previousBound;
      const inBucket = bucket.count - previousCount;
      if (inBucket <= 0) return bucket.le;
      return previousBound + (bucket.le - previousBound) * ((rank - previousCount) / inBucket);
    }
    previousBound = bucket.le;
    previousCount = bucket.count;
  }
  return previousBound;
}

/** Per-second increase of a counter between two readings; a counter that went down restarted. */
export function ratePerSecond(later: number, earlier: number, seconds: number): number {
  if (seconds <= 0) return 0;
  return (later >= earlier ? later - earlier : later) / seconds;
}
