import { LitebaseSession, MIN_POSITION_HEADER, POSITION_HEADER } from './session.js';

/**
 * Read your writes for libSQL clients (`@libsql/client`, `@tursodatabase/serverless`, ORMs on
 * them): a `fetch` to give them that carries Litebase's position headers. Each answer's
 * `x-litebase-position` is remembered in the session (per database, from the URL
 * `.../v1/databases/<db>/...`), and each request sends `x-litebase-min-position` with the highest
 * position seen, so a Replica waits until it has applied it:
 *
 *     const session = new LitebaseSession();
 *     const db = createClient({ url: 'http://node-2:8080/v1/databases/app/', authToken: key, fetch: litebaseFetch({ session }) });
 *
 * A request that already has `x-litebase-min-position` keeps it. Several clients (ours too) may
 * share one session.
 */
export interface LitebaseFetchOptions {
  /** Where positions are kept; a new one by default (then read it back from `.session`). */
  session?: LitebaseSession;
  /** The fetch to wrap; the global one by default. */
  fetch?: typeof fetch;
}

export type LitebaseFetch = typeof fetch & { readonly session: LitebaseSession };

const DATABASE_IN_PATH = /\/v1\/databases\/([^/]+)(?:\/|$)/;

/** The database a request is for, from `/v1/databases/<db>/` in its URL; '' when it names none. */
export function databaseOfUrl(url: string | URL): string {
  const match = DATABASE_IN_PATH.exec(new URL(url).pathname);
  if (match?.[1] === undefined) return '';
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return match[1];
  }
}

function urlOf(input: string | URL | Request): string {
  return typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
}

function isRequest(input: string | URL | Request): input is Request {
  return typeof input === 'object' && !(input instanceof URL);
}

export function litebaseFetch(options: LitebaseFetchOptions = {}): LitebaseFetch {
  const session = options.session ?? new LitebaseSession();
  const inner = options.fetch ?? ((input: string | URL | Request, init?: RequestInit) => globalThis.fetch(input, init));
  const wrapped = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const database = databaseOfUrl(urlOf(input));
    // Headers given in init replace a Request's own, as in fetch itself: start from whichever applies.
    const headers = new Headers(init?.headers ?? (isRequest(input) ? input.headers : undefined));
    const minPosition = session.position(database);
    if (minPosition !== undefined && !headers.has(MIN_POSITION_HEADER)) headers.set(MIN_POSITION_HEADER, minPosition);
    const response = await inner(input, { ...init, headers });
    session.observe(database, response.headers.get(POSITION_HEADER));
    return response;
  };
  return Object.assign(wrapped, { session }) as LitebaseFetch;
}
