import http from 'node:http';
import net from 'node:net';
import { Prng } from './golden-segments.js';

/**
 * Helpers for the hostile-input tests: a per-case PRNG, two transports (node:http, which sends a
 * path byte for byte where fetch would resolve `..` and `%2e%2e`; and raw sockets for framing no
 * client library would produce), an HTTP/1.1 response parser, and the checks every answer must
 * pass (a valid status, no 500, the API's error shape, no stack trace).
 */
export { Prng };

/** The seed of a run: LITEBASE_FUZZ_SEED when set (to replay a failure), else a fresh one. */
export function fuzzSeed(): number {
  const fromEnv = process.env.LITEBASE_FUZZ_SEED;
  if (fromEnv !== undefined && fromEnv !== '') {
    const seed = Number(fromEnv);
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff)
      throw new Error(`LITEBASE_FUZZ_SEED must be an integer in 0..2^32-1, got ${fromEnv}`);
    return seed;
  }
  return Math.floor(Math.random() * 0xffff_ffff) >>> 0;
}

/** Case `id` of the run with `seed`: each case has its own stream, so one case replays alone. */
export function caseRng(seed: number, id: number): Prng {
  return new Prng((seed ^ Math.imul(id + 1, 0x9e37_79b1)) >>> 0);
}

export function pickWeighted<T>(prng: Prng, entries: ReadonlyArray<readonly [number, T]>): T {
  const total = entries.reduce((sum, [weight]) => sum + weight, 0);
  let at = prng.below(total);
  for (const [weight, value] of entries) {
    if (at < weight) return value;
    at -= weight;
  }
  throw new RangeError('pickWeighted: empty list');
}

// ---- transports ---------------------------------------------------------------------------------

export interface ParsedResponse {
  status: number;
  statusLine: string;
  headers: Record<string, string>;
  body: Buffer;
}

export interface Outcome {
  /** Responses in order (several for pipelined requests). */
  responses: ParsedResponse[];
  /** The server closed or reset the connection, or nothing came before the deadline. */
  closedEarly: boolean;
  timedOut: boolean;
  /** Bytes the parser could not read as a response (must be empty). */
  garbage: string;
  transport: 'http' | 'raw';
}

export interface RequestSpec {
  method: string;
  path: string;
  headers: Array<[string, string]>;
  body?: Buffer;
}

/**
 * Send one request with node:http on a keep-alive agent. When node refuses to send it (a method
 * that is not a token, a header value with a control character, a path with a space or a byte
 * above 0xff), the same request goes over a raw socket instead.
 */
export async function sendHttp(agent: http.Agent, port: number, spec: RequestSpec, timeoutMs: number): Promise<Outcome> {
  let request: http.ClientRequest;
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of spec.headers) {
    const existing = headers[name.toLowerCase()];
    headers[name.toLowerCase()] = existing === undefined ? value : [...(Array.isArray(existing) ? existing : [existing]), value];
  }
  if (spec.body !== undefined && headers['content-length'] === undefined && headers['transfer-encoding'] === undefined) {
    headers['content-length'] = String(spec.body.length);
  }
  try {
    request = http.request({ agent, host: '127.0.0.1', port, method: spec.method, path: spec.path, headers });
  } catch {
    return sendRaw(port, serialize(spec), { timeoutMs, methods: [spec.method] });
  }
  return new Promise<Outcome>((resolve) => {
    let settled = false;
    const finish = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const timer = setTimeout(() => {
      request.destroy();
      finish({ responses: [], closedEarly: false, timedOut: true, garbage: '', transport: 'http' });
    }, timeoutMs);
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', () => finish({ responses: [], closedEarly: true, timedOut: false, garbage: '', transport: 'http' }));
      response.on('end', () => {
        const flat: Record<string, string> = {};
        for (const [name, value] of Object.entries(response.headers)) flat[name] = Array.isArray(value) ? value.join(', ') : String(value);
        finish({
          responses: [
            {
              status: response.statusCode ?? 0,
              statusLine: `HTTP/${response.httpVersion} ${response.statusCode} ${response.statusMessage}`,
              headers: flat,
              body: Buffer.concat(chunks),
            },
          ],
          closedEarly: false,
          timedOut: false,
          garbage: '',
          transport: 'http',
        });
      });
    });
    // The server may answer (413, 401) and close before the whole body is written: that is fine.
    request.on('error', () => finish({ responses: [], closedEarly: true, timedOut: false, garbage: '', transport: 'http' }));
    try {
      if (spec.body !== undefined) request.end(spec.body);
      else request.end();
    } catch {
      request.destroy();
      finish({ responses: [], closedEarly: true, timedOut: false, garbage: '', transport: 'http' });
    }
  });
}

/** A request as bytes, the way a client would write it (Host and Connection: close added). */
export function serialize(spec: RequestSpec, options: { close?: boolean } = {}): Buffer {
  const lines = [`${spec.method} ${spec.path} HTTP/1.1`, 'Host: 127.0.0.1'];
  for (const [name, value] of spec.headers) lines.push(`${name}: ${value}`);
  const hasLength = spec.headers.some(([name]) => /^(content-length|transfer-encoding)$/i.test(name));
  if (spec.body !== undefined && !hasLength) lines.push(`Content-Length: ${spec.body.length}`);
  if (options.close !== false) lines.push('Connection: close');
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'utf8'), spec.body ?? Buffer.alloc(0)]);
}

/**
 * Write `bytes` (in `pieces` writes, to exercise partial reads) on a fresh connection and read
 * until the server closes it, `methods.length` responses arrived, or the deadline passed.
 */
export function sendRaw(
  port: number,
  bytes: Buffer,
  options: { timeoutMs: number; methods: string[]; pieces?: number; endAfterWrite?: boolean },
): Promise<Outcome> {
  return new Promise<Outcome>((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = Buffer.alloc(0);
    let settled = false;
    const finish = (closedEarly: boolean, timedOut: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const { responses, rest } = parseResponses(received, options.methods);
      const complete = responses.length >= options.methods.length;
      resolve({
        responses,
        closedEarly: closedEarly && !complete,
        timedOut: timedOut && !complete,
        garbage: rest.length > 0 && !timedOut ? rest.subarray(0, 200).toString('latin1') : '',
        transport: 'raw',
      });
    };
    const timer = setTimeout(() => finish(false, true), options.timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (parseResponses(received, options.methods).responses.length >= options.methods.length) finish(false, false);
    });
    socket.on('close', () => finish(true, false));
    socket.on('error', () => finish(true, false));
    socket.on('connect', () => {
      const pieces = Math.max(1, Math.min(options.pieces ?? 1, bytes.length));
      const size = Math.ceil(bytes.length / pieces);
      const writeFrom = (offset: number) => {
        if (socket.destroyed) return;
        if (offset >= bytes.length) {
          if (options.endAfterWrite) socket.end();
          return;
        }
        socket.write(bytes.subarray(offset, offset + size), () => setImmediate(() => writeFrom(offset + size)));
      };
      if (bytes.length === 0) {
        if (options.endAfterWrite) socket.end();
      } else {
        writeFrom(0);
      }
    });
  });
}

/**
 * Parse complete HTTP/1.x responses from the start of `buffer`. `methods` are the methods of the
 * requests in order (a response to HEAD has no body). Informational 1xx responses are skipped.
 * A response whose end is not known yet (no length, not chunked) is complete only at the end of
 * the buffer, i.e. once the connection closed; callers parse again then.
 */
export function parseResponses(buffer: Buffer, methods: readonly string[]): { responses: ParsedResponse[]; rest: Buffer } {
  const responses: ParsedResponse[] = [];
  let offset = 0;
  while (offset < buffer.length) {
    const headEnd = buffer.indexOf('\r\n\r\n', offset, 'latin1');
    if (headEnd < 0) break;
    const head = buffer.subarray(offset, headEnd).toString('latin1').split('\r\n');
    const statusLine = head[0] ?? '';
    const match = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(statusLine);
    if (!match) break;
    const status = Number(match[1]);
    const headers: Record<string, string> = {};
    for (const line of head.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0) return { responses, rest: buffer.subarray(offset) };
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    let at = headEnd + 4;
    if (status >= 100 && status < 200) {
      offset = at;
      continue;
    }
    const method = methods[responses.length] ?? 'GET';
    let body: Buffer;
    if (method.toUpperCase() === 'HEAD' || status === 204 || status === 304) {
      body = Buffer.alloc(0);
    } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const chunks: Buffer[] = [];
      let done = false;
      for (;;) {
        const lineEnd = buffer.indexOf('\r\n', at, 'latin1');
        if (lineEnd < 0) break;
        const size = parseInt(buffer.subarray(at, lineEnd).toString('latin1').split(';')[0] ?? '', 16);
        if (!Number.isFinite(size)) return { responses, rest: buffer.subarray(offset) };
        if (size === 0) {
          const trailerEnd = buffer.indexOf('\r\n\r\n', lineEnd, 'latin1');
          if (trailerEnd === lineEnd) {
            at = lineEnd + 4;
            done = true;
          } else if (trailerEnd > 0) {
            at = trailerEnd + 4;
            done = true;
          }
          break;
        }
        if (lineEnd + 2 + size + 2 > buffer.length) break;
        chunks.push(buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
        at = lineEnd + 2 + size + 2;
      }
      if (!done) break;
      body = Buffer.concat(chunks);
    } else if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      if (!Number.isInteger(length) || length < 0) return { responses, rest: buffer.subarray(offset) };
      if (at + length > buffer.length) break;
      body = buffer.subarray(at, at + length);
      at += length;
    } else {
      body = buffer.subarray(at);
      at = buffer.length;
    }
    responses.push({ status, statusLine, headers, body });
    offset = at;
  }
  return { responses, rest: buffer.subarray(offset) };
}

// ---- the checks every answer must pass ------------------------------------------------------------

/**
 * What a stack trace or an internal detail looks like in a response: frames ("at fn (file:1:2)"),
 * source locations, dependency paths, this machine's folders, an Error's "Name: message" opening.
 * The generators never put these strings into a request, so an echo cannot trip them.
 */
const LEAKS: ReadonlyArray<[string, RegExp]> = [
  ['stack frame', /\bat (?:async )?[\w$.<>[\] ]*\(?(?:file:|node:|\/)[^)\s]*:\d+/],
  ['stack frame line', /\n\s+at\s/],
  ['source location', /\.(?:ts|js|mjs|cjs):\d+/],
  ['node_modules', /node_modules/],
  ['internal path', /\/work\/|\/dist\/src\/|file:\/\/\/work/],
  ['error class prefix', /"message":"(?:[A-Z][A-Za-z]*)?Error: /],
  ['stack property', /"stack"\s*:/],
];

export function leaks(text: string): string[] {
  return LEAKS.filter(([, pattern]) => pattern.test(text)).map(([name]) => name);
}

export interface JudgeOptions {
  /** 500 is acceptable for this case (document why where the case is made). */
  allow500?: boolean;
  /** The request must be refused (4xx or 5xx). */
  refused?: boolean;
  /** An answer to HEAD: no body to check. */
  head?: boolean;
  /** A refusal node writes itself, with no body (the caller says which, and why). */
  emptyErrorBody?: boolean;
  /** Strings no error may contain: the server's folders (its data dir, the code's checkout). */
  secrets?: readonly string[];
}

/** Problems with one response (empty when it is acceptable). */
export function judge(response: ParsedResponse, options: JudgeOptions = {}): string[] {
  const problems: string[] = [];
  const { status } = response;
  if (!Number.isInteger(status) || status < 200 || status > 599) problems.push(`invalid status ${status}`);
  if (status === 500 && !options.allow500) problems.push('status 500');
  if (options.refused && status < 400) problems.push(`a request that must be refused was answered ${status}`);
  const text = response.body.toString('utf8');
  const leaked = [...leaks(text), ...leaks(Object.values(response.headers).join('\n'))];
  if (status >= 400) for (const secret of options.secrets ?? []) if (text.includes(secret)) leaked.push(`the folder ${secret}`);
  if (leaked.length > 0) problems.push(`leaks ${leaked.join(', ')}: ${text.slice(0, 300)}`);
  const contentType = response.headers['content-type'] ?? '';
  if (options.head || options.emptyErrorBody) return problems;
  if (status >= 400) {
    if (!/^application\/json\b/i.test(contentType)) problems.push(`error with content-type ${JSON.stringify(contentType)}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      problems.push(`error body is not JSON: ${JSON.stringify(text.slice(0, 200))}`);
      return problems;
    }
    const error = (parsed as { error?: unknown } | null)?.error as { code?: unknown; message?: unknown } | undefined;
    if (typeof error !== 'object' || error === null) problems.push(`error body without an "error" object: ${text.slice(0, 200)}`);
    else {
      if (typeof error.code !== 'string' || !/^[A-Z][A-Z0-9_]*$/.test(error.code))
        problems.push(`error code ${JSON.stringify(error.code)}`);
      else if (error.code.startsWith('FST_')) problems.push(`framework error code ${error.code} leaked`);
      if (typeof error.message !== 'string' || error.message.length === 0) problems.push('error without a message');
    }
  } else if (/^application\/json\b/i.test(contentType) && response.body.length > 0) {
    try {
      JSON.parse(text);
    } catch {
      problems.push(`2xx JSON body does not parse: ${JSON.stringify(text.slice(0, 200))}`);
    }
  }
  return problems;
}

// ---- mutations ------------------------------------------------------------------------------------

/** Bytes that break JSON or UTF-8 in interesting ways. */
const NASTY_BYTES = [0x00, 0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0xff, 0xfe, 0xc3, 0xe2, 0xed, 0xf0, 0x80, 0x0a, 0x0d, 0x1f];

/** A byte-level mutation of a serialized body: cut, flip, insert, delete, duplicate or splice. */
export function mutateBytes(prng: Prng, input: Buffer): { bytes: Buffer; label: string } {
  const bytes = Buffer.from(input);
  if (bytes.length === 0) return { bytes: Buffer.from([prng.pick(NASTY_BYTES)]), label: 'one nasty byte' };
  switch (prng.below(7)) {
    case 0:
      return { bytes: bytes.subarray(0, prng.below(bytes.length)), label: 'truncated' };
    case 1: {
      const flips = prng.between(1, 4);
      for (let i = 0; i < flips; i++) {
        const at = prng.below(bytes.length);
        bytes[at] = (bytes[at] ?? 0) ^ (1 << prng.below(8));
      }
      return { bytes, label: `${flips} bit flips` };
    }
    case 2: {
      const at = prng.below(bytes.length + 1);
      const insert = Buffer.from(Array.from({ length: prng.between(1, 4) }, () => prng.pick(NASTY_BYTES)));
      return { bytes: Buffer.concat([bytes.subarray(0, at), insert, bytes.subarray(at)]), label: 'nasty bytes inserted' };
    }
    case 3: {
      const at = prng.below(bytes.length);
      const length = prng.between(1, 8);
      return { bytes: Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + length)]), label: 'bytes deleted' };
    }
    case 4: {
      const at = prng.below(bytes.length);
      const length = prng.between(1, 32);
      const piece = bytes.subarray(at, at + length);
      return { bytes: Buffer.concat([bytes.subarray(0, at), piece, piece, bytes.subarray(at + length)]), label: 'bytes repeated' };
    }
    case 5: {
      // Invalid UTF-8: a lone continuation byte, an overlong encoding, a surrogate, a cut sequence.
      const sequences = [[0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf0, 0x9f], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xef, 0xbf, 0xbe]];
      const at = prng.below(bytes.length + 1);
      const insert = Buffer.from(prng.pick(sequences));
      return { bytes: Buffer.concat([bytes.subarray(0, at), insert, bytes.subarray(at)]), label: 'invalid UTF-8' };
    }
    default: {
      const at = prng.below(bytes.length);
      bytes[at] = prng.pick(NASTY_BYTES);
      return { bytes, label: 'nasty byte overwrite' };
    }
  }
}

/** A string of `length` characters from a hostile alphabet (quotes, escapes, NUL, RTL marks, emoji). */
export function nastyString(prng: Prng, length: number): string {
  const alphabet = [
    'a',
    'Z',
    '0',
    ' ',
    '"',
    "'",
    '\\',
    '/',
    '%',
    '.',
    '\u0000',
    '\n',
    '\r',
    '\t',
    '\u202e',
    '\u00e9',
    '\ufeff',
    '\u2028',
    '😀',
    '\ud800',
    '$',
    '{',
    '}',
    '*',
    '?',
    ':',
    ';',
    '-',
    '_',
    '`',
  ];
  let out = '';
  for (let i = 0; i < length; i++) out += prng.pick(alphabet);
  return out;
}

/** Nested arrays or objects `depth` deep around `inner`, as JSON text (no recursion). */
export function deepJson(depth: number, kind: 'array' | 'object' | 'mixed', inner = '1'): string {
  let open = '';
  let close = '';
  for (let i = 0; i < depth; i++) {
    const asArray = kind === 'array' || (kind === 'mixed' && i % 2 === 0);
    open += asArray ? '[' : '{"a":';
    close = (asArray ? ']' : '}') + close;
  }
  return open + inner + close;
}
