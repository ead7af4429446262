import { randomBytes } from 'node:crypto';
import { decodedBlobParam } from '../sql/values.js';
import { LARGE_BODY_BYTES } from './body-budget.js';

/**
 * JSON request bodies, parsed so that a large one costs little memory after it is handled
 * (docs/ARCHITECTURE.md §2.6, bench/README.md "memory"). Fastify's own parser turns the body into
 * one string and `JSON.parse` makes every `{"$blob":"<base64>"}` param a second string of its own:
 * a 10 MiB body of BLOB params left some 30 MiB of large strings in V8's heap, which stay until a
 * major collection, so a node loading with such requests grew far past what it held live.
 *
 * Here the body stays bytes (fastify reads it as a Buffer, with its own limits). Each BLOB param
 * written the way clients write it (`{"$blob":"..."}`, no spaces, outside any string) is decoded
 * straight from those bytes (no string of it is made), and the
 * rest of the body, with a short marker in its place, is parsed by fastify's JSON parser (the same
 * prototype-poisoning checks and errors). The param becomes an object that reads as
 * `{"$blob":"<base64>"}` (a getter, encoded only if someone asks: forwarding to the Primary) and
 * that binds its decoded bytes (src/sql/values.ts). A param that is not plain standard base64 is
 * left in the text, for the usual checks and their error. Bodies under 64 KiB are parsed as
 * before.
 */

/** Bodies smaller than this are parsed as they are: the scan would cost more than it saves. */
const SCAN_MIN_BYTES = LARGE_BODY_BYTES;
const NEEDLE = Buffer.from('{"$blob":"', 'latin1');
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const CLOSE_BRACE = 0x7d;
/**
 * Marks where a decoded param was: a process-wide random prefix, so that no client can write a
 * string that is taken for one (and even then it would only name a blob of its own request).
 */
const MARKER = `!litebase-blob-${randomBytes(12).toString('hex')}-`;

/** How fastify's default JSON parser is called (`app.getDefaultJsonParser`). */
export type JsonTextParser = (request: never, body: string, done: (error: Error | null, value?: unknown) => void) => void;

/** Parse `body` with `parseText` (fastify's JSON parser), its BLOB params decoded from the bytes. */
export function parseJsonBody(body: Buffer, parseText: JsonTextParser, done: (error: Error | null, value?: unknown) => void): void {
  const blobs = body.length < SCAN_MIN_BYTES ? [] : findBlobs(body);
  if (blobs.length === 0) {
    parseText(undefined as never, body.toString('utf8'), done);
    return;
  }
  const decoded: Buffer[] = [];
  const parts: string[] = [];
  let at = 0;
  for (const blob of blobs) {
    parts.push(body.toString('utf8', at, blob.from), `${MARKER}${decoded.length}`);
    decoded.push(blob.bytes);
    at = blob.to;
  }
  parts.push(body.toString('utf8', at));
  parseText(undefined as never, parts.join(''), (error, value) => {
    if (error) return done(error);
    try {
      done(null, restore(value, decoded));
    } catch (restoreError) {
      done(restoreError as Error);
    }
  });
}

interface FoundBlob {
  /** Where its base64 text starts and ends (the bytes between the quotes). */
  from: number;
  to: number;
  bytes: Buffer;
}

/**
 * The BLOB params of a JSON text, in order: `{"$blob":"` outside any string, standard base64, `"}`.
 * Strings are followed by their quotes (a quote preceded by an odd number of backslashes is inside
 * one), so a needle inside a TEXT param is never taken for a param.
 */
function findBlobs(body: Buffer): FoundBlob[] {
  const found: FoundBlob[] = [];
  /** Scanned up to here, outside any string. */
  let at = 0;
  for (;;) {
    const candidate = body.indexOf(NEEDLE, at);
    if (candidate === -1) return found;
    // Follow the strings from `at` to the candidate: does one hold it?
    let inside = false;
    for (let quote = body.indexOf(QUOTE, at); quote !== -1 && quote < candidate; quote = body.indexOf(QUOTE, quote + 1)) {
      if (!inside) inside = true;
      else if (!escaped(body, quote)) inside = false;
    }
    if (inside) {
      // Its quote (right after the brace, so not escaped) ends that string.
      at = candidate + 2;
      continue;
    }
    const from = candidate + NEEDLE.length;
    const to = body.indexOf(QUOTE, from);
    if (to === -1) return found;
    const bytes = body[to + 1] === CLOSE_BRACE ? decodeBase64(body, from, to) : undefined;
    if (bytes === undefined) {
      // Not a param taken here: go on from the brace (the key's string starts right after it).
      at = candidate + 1;
      continue;
    }
    found.push({ from, to, bytes });
    at = to + 2;
  }
}

/** Whether the quote at `index` is escaped: an odd number of backslashes right before it. */
function escaped(body: Buffer, index: number): boolean {
  let count = 0;
  for (let i = index - 1; i >= 0 && body[i] === BACKSLASH; i--) count++;
  return count % 2 === 1;
}

/** Base64 character -> its 6 bits; -1 for anything else (`=` included: it is handled at the end). */
const BASE64_VALUES = new Int16Array(256).fill(-1);
[...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'].forEach((char, i) => {
  BASE64_VALUES[char.charCodeAt(0)] = i;
});
const PAD = 0x3d;

/**
 * The bytes of the standard base64 text body[from..to) (length a multiple of 4, `=` only as the
 * last one or two characters: what src/sql/values.ts accepts, decoded as Buffer.from does), or
 * undefined when it is not that (values.ts refuses it then). Decoded here, from the bytes: no
 * string is made, and it took a fifth of the time of Buffer.from(string, 'base64') on Node 20.
 */
function decodeBase64(body: Buffer, from: number, to: number): Buffer | undefined {
  const length = to - from;
  if (length % 4 !== 0) return undefined;
  if (length === 0) return Buffer.alloc(0);
  const padding = body[to - 1] !== PAD ? 0 : body[to - 2] !== PAD ? 1 : 2;
  const bytes = Buffer.allocUnsafeSlow((length / 4) * 3 - padding);
  const values = BASE64_VALUES;
  const last = to - 4;
  let out = 0;
  for (let at = from; at < last; at += 4) {
    const a = values[body[at] as number] as number;
    const b = values[body[at + 1] as number] as number;
    const c = values[body[at + 2] as number] as number;
    const d = values[body[at + 3] as number] as number;
    if ((a | b | c | d) < 0) return undefined;
    const bits = (a << 18) | (b << 12) | (c << 6) | d;
    bytes[out++] = bits >> 16;
    bytes[out++] = (bits >> 8) & 0xff;
    bytes[out++] = bits & 0xff;
  }
  const a = values[body[last] as number] as number;
  const b = values[body[last + 1] as number] as number;
  const c = padding === 2 ? 0 : (values[body[last + 2] as number] as number);
  const d = padding > 0 ? 0 : (values[body[last + 3] as number] as number);
  if ((a | b | c | d) < 0) return undefined;
  const bits = (a << 18) | (b << 12) | (c << 6) | d;
  bytes[out++] = bits >> 16;
  if (padding < 2) bytes[out++] = (bits >> 8) & 0xff;
  if (padding < 1) bytes[out] = bits & 0xff;
  return bytes;
}

/** Put each decoded param where its marker is. */
function restore(value: unknown, decoded: readonly Buffer[]): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = restore(value[i], decoded);
    return value;
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  const blob = record.$blob;
  if (keys.length === 1 && typeof blob === 'string' && blob.startsWith(MARKER)) {
    const bytes = decoded[Number(blob.slice(MARKER.length))];
    if (bytes !== undefined) return decodedBlobParam(bytes);
  }
  for (const key of keys) record[key] = restore(record[key], decoded);
  return record;
}
