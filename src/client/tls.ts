import type { IncomingMessage } from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';

/**
 * A `fetch` for https:// URLs that trusts the given CA certificates (PEM) instead of the system
 * ones, as `curl --cacert` does: for self-signed or private-CA node certificates. Node's built-in
 * fetch only takes a CA through the undici package's Agent, which is not a dependency; this one
 * is built on node:https and covers what Litebase sends: a URL, a method, headers, a string or
 * byte body and an abort signal. The answer is read whole before it resolves (API answers are
 * JSON), unless `stream` is set: then it resolves with the headers and the body still arriving, as
 * fetch does (for backups, which may be many GiB). http:// URLs go to the global fetch.
 */
export function fetchTrustingCa(ca: string | Buffer, options: { stream?: boolean } = {}): typeof fetch {
  // Keep-alive matters for forwarding between nodes; idle sockets are unref'd by the agent, so a
  // CLI process still exits when it is done.
  const agent = new https.Agent({ ca, keepAlive: true });
  const trustingFetch = (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    if (typeof input !== 'string' && !(input instanceof URL)) {
      return Promise.reject(new TypeError('fetchTrustingCa takes a URL, not a Request'));
    }
    const url = new URL(input);
    if (url.protocol !== 'https:') return fetch(input, init);
    return httpsRequest(agent, url, init, options.stream === true);
  };
  return trustingFetch as typeof fetch;
}

const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

function requestBody(body: RequestInit['body']): Buffer | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return Buffer.from(body);
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  throw new TypeError('fetchTrustingCa sends string and byte bodies only');
}

function httpsRequest(agent: https.Agent, url: URL, init: RequestInit, stream: boolean): Promise<Response> {
  return new Promise<Response>((resolve, reject) => {
    const signal = init.signal ?? undefined;
    if (signal?.aborted) return reject(signal.reason);
    let body: Buffer | undefined;
    try {
      body = requestBody(init.body);
    } catch (error) {
      return reject(error);
    }
    const headers: Record<string, string> = {};
    new Headers(init.headers).forEach((value, name) => (headers[name] = value));
    if (body !== undefined) headers['content-length'] = String(body.length);

    let settled = false;
    const fail = (error: unknown) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      // As fetch does: "fetch failed", the reason (ECONNREFUSED, a certificate error) in `cause`.
      reject(error === signal?.reason ? error : new TypeError('fetch failed', { cause: error }));
    };
    const onAbort = () => {
      fail(signal?.reason);
      request.destroy();
    };
    /** Resolve at once with the body still arriving (an abort later ends the stream with an error). */
    const resolveStreaming = (response: IncomingMessage) => {
      if (settled) return;
      settled = true;
      response.once('close', () => signal?.removeEventListener('abort', onAbort));
      const status = response.statusCode ?? 0;
      if (NULL_BODY_STATUSES.has(status)) response.resume();
      try {
        const body = NULL_BODY_STATUSES.has(status) ? null : (Readable.toWeb(response) as ReadableStream<Uint8Array>);
        resolve(new Response(body, { status, statusText: response.statusMessage ?? '', headers: headersOf(response) }));
      } catch (error) {
        response.destroy();
        reject(error);
      }
    };
    const request = https.request(url, { method: init.method ?? 'GET', headers, agent }, (response: IncomingMessage) => {
      if (stream) return resolveStreaming(response);
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', fail);
      response.on('end', () => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        const status = response.statusCode ?? 0;
        try {
          resolve(
            new Response(NULL_BODY_STATUSES.has(status) ? null : Buffer.concat(chunks), {
              status,
              statusText: response.statusMessage ?? '',
              headers: headersOf(response),
            }),
          );
        } catch (error) {
          reject(error);
        }
      });
    });
    request.on('error', fail);
    signal?.addEventListener('abort', onAbort, { once: true });
    request.end(body);
  });
}

function headersOf(response: IncomingMessage): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(response.headers)) {
    if (Array.isArray(value)) for (const item of value) headers.append(name, item);
    else if (value !== undefined) headers.set(name, value);
  }
  return headers;
}
