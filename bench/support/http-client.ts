import http from 'node:http';

/**
 * A small JSON client on node:http with keep-alive, for request loops that must measure
 * milliseconds: one TCP connection is reused for every request of a loop (no connect in the
 * timings), and there is less client work per request than with fetch.
 */
export interface JsonAnswer {
  status: number;
  body: unknown;
  text: string;
}

export class JsonClient {
  private readonly agent: http.Agent;
  private readonly host: string;
  private readonly port: number;

  /** `maxSockets` 1 for a sequential loop; more when requests overlap (one per request in flight). */
  constructor(
    baseUrl: string,
    private readonly key: string,
    maxSockets = 1,
  ) {
    const url = new URL(baseUrl);
    this.host = url.hostname;
    this.port = Number(url.port);
    this.agent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  }

  request(method: 'GET' | 'POST', urlPath: string, body?: unknown, timeoutMs = 30_000): Promise<JsonAnswer> {
    return this.send(method, urlPath, body === undefined ? undefined : Buffer.from(JSON.stringify(body)), timeoutMs);
  }

  /** A request whose JSON body is already text (a large body built piece by piece, not stringified again). */
  requestJsonText(method: 'POST', urlPath: string, json: string, timeoutMs = 30_000): Promise<JsonAnswer> {
    return this.send(method, urlPath, Buffer.from(json), timeoutMs);
  }

  private send(method: 'GET' | 'POST', urlPath: string, payload: Buffer | undefined, timeoutMs: number): Promise<JsonAnswer> {
    const headers: http.OutgoingHttpHeaders = { authorization: `Bearer ${this.key}` };
    if (payload) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = payload.length;
    }
    return new Promise((resolve, reject) => {
      const request = http.request({ host: this.host, port: this.port, method, path: urlPath, headers, agent: this.agent }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = undefined;
          try {
            parsed = text === '' ? undefined : JSON.parse(text);
          } catch {
            // Not JSON (a proxy error page, /metrics): the caller has the text.
          }
          resolve({ status: response.statusCode ?? 0, body: parsed, text });
        });
      });
      request.setTimeout(timeoutMs, () => request.destroy(new Error(`${method} ${urlPath} timed out after ${timeoutMs} ms`)));
      request.on('error', reject);
      request.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function field(value: unknown, name: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[name] : undefined;
}

/** `position` of a query answer, as a bigint; undefined when absent. */
export function answerPosition(body: unknown): bigint | undefined {
  const position = field(body, 'position');
  return typeof position === 'string' && /^\d+$/.test(position) ? BigInt(position) : undefined;
}

/** `database.position` of GET /v1/databases/:db. */
export function databasePosition(body: unknown): bigint | undefined {
  const position = field(field(body, 'database'), 'position');
  return typeof position === 'string' && /^\d+$/.test(position) ? BigInt(position) : undefined;
}

export function databaseChecksum(body: unknown): string | undefined {
  const checksum = field(field(body, 'database'), 'checksum');
  return typeof checksum === 'string' ? checksum : undefined;
}

/** The first statement's result of a query answer. */
function firstResult(body: unknown): unknown {
  const results = field(body, 'results');
  return Array.isArray(results) ? results[0] : undefined;
}

/** lastInsertRowid of the first statement, when it is a plain number. */
export function lastInsertRowid(body: unknown): number | undefined {
  const id = field(firstResult(body), 'lastInsertRowid');
  return typeof id === 'number' ? id : undefined;
}

/** The single value of a one-row, one-column SELECT (null for an empty table's max()). */
export function scalar(body: unknown): number | null | undefined {
  const rows = field(firstResult(body), 'rows');
  if (!Array.isArray(rows)) return undefined;
  const row: unknown = rows[0];
  if (!Array.isArray(row)) return undefined;
  const value: unknown = row[0];
  return typeof value === 'number' || value === null ? value : undefined;
}

/** `error.code` of an error answer. */
export function errorCode(body: unknown): string | undefined {
  const code = field(field(body, 'error'), 'code');
  return typeof code === 'string' ? code : undefined;
}

/** A cluster view's primary address (GET /v1/cluster). */
export function primaryAddress(body: unknown): string | undefined {
  const address = field(field(body, 'primary'), 'address');
  return typeof address === 'string' ? address : undefined;
}
