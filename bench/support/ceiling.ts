import { errorRateProblem, runLoad, type LoadResult, type LoadSpec } from './load.js';
import { progress, type BenchOptions } from './report.js';

/** What a ceiling needs of the server it measures: to notice that it died. */
export interface RunningServer {
  assertRunning(): void;
}

/** The route of the HTTP ceiling the goals are judged against, as reported in the JSON. */
export const HTTP_CEILING_ROUTE = 'POST /v1/ping (same headers and bodies as the measured load)';

/** Table labels of the two ceilings. */
export const POST_CEILING_LABEL = 'HTTP ceiling: POST /v1/ping, same bodies';
export const GET_CEILING_LABEL = 'HTTP ceiling (secondary): GET /healthz';

export interface Ceilings {
  /** `POST /v1/ping` with the measured load's method, headers and bodies: the ceiling for the goals. */
  post: LoadResult;
  /** `GET /healthz` without a body: the cheapest request there is, kept for reference. */
  get: LoadResult;
}

/** A measured request load without its title and duration: what a ceiling is derived from. */
export type LoadShape = Omit<LoadSpec, 'seconds' | 'title'>;

/*
 * The POST ceiling is the measured load with only the path changed to `/v1/ping`, an authenticated
 * route that ignores its body and touches no database: the same method, headers (authorization,
 * content-type, content-length) and the very same prepared bodies, so the load generator spends
 * the same per request on both and the ratio measures the server's work, not the client's.
 */

/** The GET ceiling alone (warm-up, then the measured window), with the load's headers and connections. */
export async function measureGetCeiling(
  server: RunningServer,
  load: LoadShape,
  options: BenchOptions,
  failures: string[],
): Promise<LoadResult> {
  const getSpec: Omit<LoadSpec, 'seconds'> = {
    title: 'HTTP ceiling (GET /healthz)',
    url: load.url,
    method: 'GET',
    path: '/healthz',
    // /healthz does not need the key; sending it keeps the request line and headers close to the others.
    ...(load.headers === undefined ? {} : { headers: load.headers }),
    connections: load.connections,
    ...(load.serverPid === undefined ? {} : { serverPid: load.serverPid }),
  };
  return measureWindow(server, getSpec, options, failures);
}

/**
 * The POST ceiling's load: `load` with the path changed to `/v1/ping`. A body check of the load
 * (`accept`) is replaced by one that accepts every answer, so the load generator still does the
 * same work per response.
 */
export function postCeilingSpec(load: LoadShape, title = 'HTTP ceiling (POST /v1/ping)'): Omit<LoadSpec, 'seconds'> {
  const postSpec: Omit<LoadSpec, 'seconds'> = {
    ...load,
    title,
    path: '/v1/ping',
    ...(load.accept === undefined ? {} : { accept: (body: string) => body.length >= 0 }),
  };
  if (postSpec.method !== 'POST' || postSpec.bodies === undefined) throw new Error('the POST ceiling needs a POST load with bodies');
  return postSpec;
}

async function measureWindow(
  server: RunningServer,
  spec: Omit<LoadSpec, 'seconds'>,
  options: BenchOptions,
  failures: string[],
): Promise<LoadResult> {
  progress(`${spec.title}: warm-up ${options.warmupSeconds} s`);
  const warmup = await runLoad({ ...spec, title: `${spec.title} (warm-up)`, seconds: options.warmupSeconds });
  progress(`${spec.title}: measuring ${options.measureSeconds} s`);
  const measured = await runLoad({ ...spec, seconds: options.measureSeconds });
  server.assertRunning();
  for (const result of [warmup, measured]) {
    const problem = errorRateProblem(result);
    if (problem) failures.push(problem);
  }
  return measured;
}
