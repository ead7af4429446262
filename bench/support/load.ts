import autocannon from 'autocannon';
import { CpuMonitor, type CpuUsage } from './machine.js';

export interface LoadSpec {
  title: string;
  /** Server base URL, e.g. http://127.0.0.1:8080. */
  url: string;
  method: 'GET' | 'POST';
  path: string;
  headers?: Record<string, string>;
  /**
   * Request bodies, prepared before the run (see `prepareBodies`). Each becomes one pre-built
   * request; every connection cycles through them in order, so the load generator does no
   * per-request work beyond writing a ready buffer. Omitted: one request without a body.
   * A body adds `content-type: application/json` to the headers.
   */
  bodies?: readonly string[];
  connections: number;
  seconds: number;
  /** The server's process id, to report its CPU use during the run. */
  serverPid?: number;
  /**
   * A check of every 200 answer's body (e.g. "answered by a Replica"). A 200 it rejects is not a
   * success: it counts in `rejected` and in the error rate, not in `ok`. The body is there anyway
   * (autocannon collects it for every response), so the cost is the check itself.
   */
  accept?: (body: string) => boolean;
}

export interface LoadResult {
  title: string;
  /** Wall time of the load as autocannon measured it, minus its connection set-up, seconds. */
  seconds: number;
  /** Responses with status 200 (that the spec's `accept` accepted): the only answers that count as a success. */
  ok: number;
  /** 200 answers that the spec's `accept` rejected (0 without one). */
  rejected: number;
  /** ok / seconds. */
  rps: number;
  /** Latency percentiles of the 200 responses, milliseconds (microsecond resolution). */
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** Responses outside 2xx, as autocannon counts them. */
  non2xx: number;
  /** Responses that were not 200 (includes non2xx; differs only if a 2xx other than 200 came back). */
  non200: number;
  /** Count per status code, for the report when something went wrong. */
  statusCounts: Record<string, number>;
  /** Connection errors, including timeouts. */
  errors: number;
  timeouts: number;
  /** (non200 + rejected + errors) / (responses + errors). */
  errorRate: number;
  /** The first few distinct connection error messages. */
  errorSamples: string[];
  cpu: CpuUsage;
  /**
   * Milliseconds autocannon spent creating its connections and their request buffers before the
   * first request. It falls inside autocannon's duration (and so lowers rps a little, alike for
   * every load with the same number of prepared requests).
   */
  clientSetupMs: number;
}

/** How many distinct prepared requests a load cycles through. */
export const PREPARED_REQUESTS = 1000;

/**
 * `count` request bodies made up front by `make(0..count-1)`. The Litebase load and the HTTP
 * ceiling it is compared with are given the same array, so both send byte-identical bodies and
 * cost the load generator the same per request.
 */
export function prepareBodies(make: (index: number) => string, count = PREPARED_REQUESTS): string[] {
  return Array.from({ length: count }, (_, index) => make(index));
}

/** Smallest and largest body in bytes, for the report. */
export function bodyBytes(bodies: readonly string[]): { min: number; max: number } {
  const sizes = bodies.map((body) => Buffer.byteLength(body));
  return { min: Math.min(...sizes), max: Math.max(...sizes) };
}

/**
 * autocannon turns each entry of `requests` into a complete request buffer (request line, headers,
 * content-length, body) once per connection when the run starts, and then only cycles through the
 * buffers. No `setupRequest` callback: with one, it would rebuild the buffer for every request.
 */
function buildRequests(spec: LoadSpec, onResponse?: autocannon.Request['onResponse']): autocannon.Request[] {
  const headers: Record<string, string> = { ...(spec.headers ?? {}) };
  const hook = onResponse === undefined ? {} : { onResponse };
  if (spec.bodies === undefined) return [{ method: spec.method, path: spec.path, headers, ...hook }];
  if (spec.bodies.length === 0) throw new Error(`${spec.title}: no request bodies prepared`);
  headers['content-type'] = 'application/json';
  // A copy of the headers per request: autocannon adds each body's content-length to them.
  return spec.bodies.map((body) => ({ method: spec.method, path: spec.path, headers: { ...headers }, body, ...hook }));
}

function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  // Nearest-rank: the smallest value with at least p% of the samples at or below it.
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] ?? 0;
}

/**
 * Run autocannon for `spec.seconds` and summarise it. Latencies are recorded from the 'response'
 * event rather than taken from autocannon's histogram, which rounds to whole milliseconds: the
 * HTTP ceiling's p50 is well under 1 ms on a fast machine and would otherwise read as 0 or 1.
 *
 * autocannon first builds every connection and its prepared request buffers, synchronously (about
 * 0.3-1 s for 64 connections x 1000 requests on a 2-core machine), and counts that time in its
 * duration. So the window here starts when that set-up ends: the CPU accounting starts then, the
 * set-up time is taken off the duration that divides the 200s, and the first response of each
 * connection (whose clock started before the set-up and which also pays the TCP connect) is left
 * out of the latencies.
 */
export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  return (await runLoadWithSamples(spec)).result;
}

/** `runLoad`, also handing back the sorted latency samples (to merge windows: `runInterleaved`). */
async function runLoadWithSamples(spec: LoadSpec): Promise<{ result: LoadResult; latencies: Float64Array }> {
  // autocannon 8 calls a request's onResponse (with the body) and then, synchronously and for the
  // same response, emits 'response' (with the client); the flag carries the verdict from one to the other.
  let rejectedCount = 0;
  let lastRejected = false;
  const accept = spec.accept;
  const requests = buildRequests(
    spec,
    accept === undefined
      ? undefined
      : (status, body) => {
          lastRejected = status === 200 && !accept(body);
          if (lastRejected) rejectedCount++;
        },
  );

  // Growable buffer: a plain number[] of 200k+ boxed values would add GC work to the load generator,
  // which shares the machine's two cores with the server under test.
  let latencies = new Float64Array(1 << 16);
  let latencyCount = 0;
  let okCount = 0;
  const errorSamples = new Set<string>();
  const answeredClients = new Set<unknown>();

  // The promise executor runs synchronously: autocannon has built its connections when it returns.
  const setupStarted = performance.now();
  const finished = new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: spec.url,
        connections: spec.connections,
        duration: spec.seconds,
        requests,
        // Keep-alive and no pipelining: 64 independent clients, each with one request in flight.
        pipelining: 1,
        timeout: 30,
      },
      (error: unknown, done: autocannon.Result) => {
        if (error) reject(error instanceof Error ? error : new Error(String(error)));
        else resolve(done);
      },
    );
    instance.on('response', (client, statusCode, _bytes, responseTime) => {
      const first = !answeredClients.has(client);
      if (first) answeredClients.add(client);
      const rejected = lastRejected;
      lastRejected = false;
      if (statusCode !== 200 || rejected) return;
      okCount++;
      if (first) return;
      if (latencyCount === latencies.length) {
        const bigger = new Float64Array(latencies.length * 2);
        bigger.set(latencies);
        latencies = bigger;
      }
      latencies[latencyCount++] = responseTime;
    });
    instance.on('reqError', (error: unknown) => {
      if (errorSamples.size < 5) errorSamples.add(error instanceof Error ? error.message : String(error));
    });
  });

  const clientSetupMs = performance.now() - setupStarted;
  const monitor = new CpuMonitor(spec.serverPid);
  const result = await finished;
  const cpu = monitor.stop();
  const sorted = latencies.subarray(0, latencyCount).sort();
  const statusCounts: Record<string, number> = {};
  let responses = 0;
  for (const [code, stats] of Object.entries(result.statusCodeStats ?? {})) {
    const count = stats.count ?? 0;
    statusCounts[code] = count;
    responses += count;
  }
  // A rejected 200 never reached okCount; anything else that did not is a status other than 200.
  const non200 = responses - okCount - rejectedCount;
  const loadSeconds = result.duration - clientSetupMs / 1000;
  const seconds = loadSeconds > 0 ? round3(loadSeconds) : spec.seconds;
  const attempts = responses + result.errors;
  const summary: LoadResult = {
    title: spec.title,
    seconds,
    ok: okCount,
    rejected: rejectedCount,
    rps: okCount / seconds,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.length > 0 ? (sorted[sorted.length - 1] ?? 0) : 0,
    non2xx: result.non2xx,
    non200,
    statusCounts,
    errors: result.errors,
    timeouts: result.timeouts,
    errorRate: attempts === 0 ? 1 : (non200 + rejectedCount + result.errors) / attempts,
    errorSamples: [...errorSamples],
    cpu,
    clientSetupMs,
  };
  return { result: summary, latencies: sorted };
}

export interface MeasuredLoad {
  warmup: LoadResult;
  measured: LoadResult;
}

/**
 * A warm-up run (JIT, SQLite page cache, TCP connections, WAL growth) whose numbers are discarded
 * except for error checks, then the measured run with fresh connections.
 */
export async function warmAndMeasure(
  spec: Omit<LoadSpec, 'seconds'>,
  warmupSeconds: number,
  measureSeconds: number,
): Promise<MeasuredLoad> {
  const warmup = await runLoad({ ...spec, title: `${spec.title} (warm-up)`, seconds: warmupSeconds });
  const measured = await runLoad({ ...spec, seconds: measureSeconds });
  return { warmup, measured };
}

/**
 * A description of the problem when more than `maxErrorRate` of the attempts failed (the figure
 * would then be meaningless), else undefined. The caller finishes the report and then exits 1.
 */
export function errorRateProblem(result: LoadResult, maxErrorRate = 0.01): string | undefined {
  if (result.errorRate <= maxErrorRate) return undefined;
  return (
    `${result.title}: ${(result.errorRate * 100).toFixed(2)}% of requests failed (limit ${(maxErrorRate * 100).toFixed(0)}%): ` +
    `statuses ${JSON.stringify(result.statusCounts)}, connection errors ${result.errors} (timeouts ${result.timeouts})` +
    (result.rejected > 0 ? `, 200 answers rejected by the check ${result.rejected}` : '') +
    (result.errorSamples.length > 0 ? `, e.g. ${result.errorSamples.join('; ')}` : '')
  );
}

/**
 * How many alternating windows `measureSeconds` is split into for `runInterleaved`: windows of
 * about `windowSeconds`, or one window when the measured time is shorter than two of them.
 */
export function interleavedRounds(measureSeconds: number, windowSeconds: number): number {
  return measureSeconds >= 2 * windowSeconds ? Math.floor(measureSeconds / windowSeconds) : 1;
}

/**
 * Loads measured side by side on one server: `rounds` rounds of one `windowSeconds` window per
 * load, the order reversed every other round (A B, B A, A B, B A), so whatever drifts during the
 * run (other work on the machine, the page cache, the disk's writeback, the log's growth) falls
 * on every load alike instead of on whichever runs later. Each load's result is its windows
 * together: its 200s over its seconds, percentiles over all its latencies, CPU weighted by time.
 */
export async function runInterleaved(
  specs: ReadonlyArray<Omit<LoadSpec, 'seconds'>>,
  windowSeconds: number,
  rounds: number,
): Promise<LoadResult[]> {
  const windows = specs.map(() => [] as Array<{ result: LoadResult; latencies: Float64Array }>);
  for (let round = 0; round < rounds; round++) {
    const order = specs.map((_, index) => index);
    if (round % 2 === 1) order.reverse();
    for (const index of order) {
      const spec = specs[index] as Omit<LoadSpec, 'seconds'>;
      windows[index]?.push(await runLoadWithSamples({ ...spec, seconds: windowSeconds }));
    }
  }
  return windows.map((runs, index) => mergeWindows((specs[index] as LoadSpec).title, runs));
}

/** One load's windows as one result (see `runInterleaved`). */
function mergeWindows(title: string, runs: ReadonlyArray<{ result: LoadResult; latencies: Float64Array }>): LoadResult {
  const results = runs.map((run) => run.result);
  const sum = (pick: (result: LoadResult) => number): number => results.reduce((total, result) => total + pick(result), 0);
  const all = new Float64Array(runs.reduce((total, run) => total + run.latencies.length, 0));
  let offset = 0;
  for (const run of runs) {
    all.set(run.latencies, offset);
    offset += run.latencies.length;
  }
  all.sort();
  const seconds = round3(sum((result) => result.seconds));
  const ok = sum((result) => result.ok);
  const rejected = sum((result) => result.rejected);
  const non200 = sum((result) => result.non200);
  const errors = sum((result) => result.errors);
  const statusCounts: Record<string, number> = {};
  for (const result of results) {
    for (const [code, count] of Object.entries(result.statusCounts)) statusCounts[code] = (statusCounts[code] ?? 0) + count;
  }
  const attempts = Object.values(statusCounts).reduce((total, count) => total + count, 0) + errors;
  const weighted = (pick: (cpu: CpuUsage) => number | null): number | null => {
    let total = 0;
    for (const result of results) {
      const value = pick(result.cpu);
      if (value === null) return null;
      total += value * result.seconds;
    }
    return seconds > 0 ? Math.round(total / seconds) : null;
  };
  return {
    title,
    seconds,
    ok,
    rejected,
    rps: seconds > 0 ? ok / seconds : 0,
    p50: percentile(all, 50),
    p90: percentile(all, 90),
    p99: percentile(all, 99),
    max: all.length > 0 ? (all[all.length - 1] ?? 0) : 0,
    non2xx: sum((result) => result.non2xx),
    non200,
    statusCounts,
    errors,
    timeouts: sum((result) => result.timeouts),
    errorRate: attempts === 0 ? 1 : (non200 + rejected + errors) / attempts,
    errorSamples: [...new Set(results.flatMap((result) => result.errorSamples))].slice(0, 5),
    cpu: {
      server_pct: weighted((cpu) => cpu.server_pct),
      bench_pct: weighted((cpu) => cpu.bench_pct) ?? 0,
      other_pct: weighted((cpu) => cpu.other_pct),
      capacity_pct: results[0]?.cpu.capacity_pct ?? 0,
    },
    clientSetupMs: sum((result) => result.clientSetupMs),
  };
}
