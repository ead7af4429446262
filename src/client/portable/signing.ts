import { LitebaseClientError } from './errors.js';

/**
 * Request signing, scheme v1 (docs/SECURITY.md, "Request signing"), with Web Crypto: the same
 * bytes as the server's src/client/signing.ts, which verifies with node:crypto (a unit test holds
 * the two to each other). Three headers, no secret:
 *
 *     X-Litebase-Key-Id:    <key id>             (the 12 characters of lb_<id>_..., or "root")
 *     X-Litebase-Date:      <RFC 3339 time>
 *     X-Litebase-Signature: v1=<hex HMAC-SHA256(signing key, canonical request)>
 *
 * The canonical request is "v1", METHOD, /path (as sent), the sorted query parts, key id, date and
 * the hex SHA-256 of the body, joined by "\n". The signing key is
 * HMAC-SHA256(SHA-256(key string), "litebase-request-signing-v1").
 */

export const SIGNATURE_VERSION = 'v1';
/** Header names, lower case as Node hands them over. */
export const SIGNATURE_HEADERS = {
  keyId: 'x-litebase-key-id',
  date: 'x-litebase-date',
  signature: 'x-litebase-signature',
} as const;
/** The key id the root key signs with. Access key ids are 12 characters, so it cannot collide. */
export const ROOT_KEY_ID = 'root';

const ACCESS_KEY_FORMAT = /^lb_([a-z0-9]{12})_[A-Za-z0-9_-]{20,}$/;
/** Derives the signing key from the key's SHA-256, so the stored digest is never the HMAC key itself. */
export const SIGNING_KEY_LABEL = 'litebase-request-signing-v1';
const encoder = new TextEncoder();

/** The part of Web Crypto signing needs (`globalThis.crypto.subtle`, or node:crypto's `webcrypto.subtle` on Node 18). */
export interface Subtle {
  digest(algorithm: 'SHA-256', data: Uint8Array): Promise<ArrayBuffer>;
  importKey(
    format: 'raw',
    key: ArrayBuffer,
    algorithm: { name: 'HMAC'; hash: 'SHA-256' },
    extractable: false,
    usages: ['sign'],
  ): Promise<unknown>;
  sign(algorithm: 'HMAC', key: unknown, data: Uint8Array): Promise<ArrayBuffer>;
}

/** The key id a key signs as: its own id for an access key, `root` for anything else. */
export function keyIdOf(key: string): string {
  return ACCESS_KEY_FORMAT.exec(key)?.[1] ?? ROOT_KEY_ID;
}

/** The query's parts sorted, so parameter order does not matter but every byte of each part does. */
export function canonicalQuery(rawQuery: string): string {
  return rawQuery
    .split('&')
    .filter((part) => part !== '')
    .sort()
    .join('&');
}

export interface CanonicalRequestParts {
  method: string;
  /** The path as sent, without the query. */
  path: string;
  /** The raw query, without the `?`. */
  query: string;
  keyId: string;
  date: string;
  /** Hex SHA-256 of the exact body bytes. */
  bodySha256: string;
}

export function canonicalRequest(parts: CanonicalRequestParts): string {
  return [
    SIGNATURE_VERSION,
    parts.method.toUpperCase(),
    parts.path,
    canonicalQuery(parts.query),
    parts.keyId,
    parts.date,
    parts.bodySha256,
  ].join('\n');
}

/** The runtime's Web Crypto, or a SIGNING_UNAVAILABLE error that says what to pass instead. */
export function defaultSubtle(): Subtle {
  const subtle = (globalThis as { crypto?: { subtle?: Subtle } }).crypto?.subtle;
  if (subtle === undefined) {
    throw new LitebaseClientError(
      'SIGNING_UNAVAILABLE',
      'signing needs Web Crypto (globalThis.crypto.subtle); on Node 18 pass { subtle: (await import("node:crypto")).webcrypto.subtle }',
    );
  }
  return subtle;
}

function hex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (byte) => byte.toString(16).padStart(2, '0')).join('');
}

async function hmac(subtle: Subtle, key: ArrayBuffer, data: string): Promise<ArrayBuffer> {
  const imported = await subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return subtle.sign('HMAC', imported, encoder.encode(data));
}

export interface SignInput {
  /** The full key string (`lb_<id>_<secret>` or the root key). It is not sent. */
  key: string;
  /** Defaults to `keyIdOf(key)`. */
  keyId?: string;
  method: string;
  /** The absolute URL the request goes to: its path and query are signed as fetch sends them. */
  url: string | URL;
  /** The exact body (a string is signed as its UTF-8 bytes, which is what fetch sends). */
  body?: string;
  /** Defaults to now. */
  date?: Date;
  /** Defaults to `globalThis.crypto.subtle`. */
  subtle?: Subtle;
}

/** The three headers that sign a request. */
export async function signatureHeaders(input: SignInput): Promise<Record<string, string>> {
  const subtle = input.subtle ?? defaultSubtle();
  const url = typeof input.url === 'string' ? new URL(input.url) : input.url;
  const keyId = input.keyId ?? keyIdOf(input.key);
  const date = (input.date ?? new Date()).toISOString();
  const keyDigest = await subtle.digest('SHA-256', encoder.encode(input.key));
  const signingKey = await hmac(subtle, keyDigest, SIGNING_KEY_LABEL);
  const bodySha256 = hex(await subtle.digest('SHA-256', encoder.encode(input.body ?? '')));
  const canonical = canonicalRequest({ method: input.method, path: url.pathname, query: url.search.slice(1), keyId, date, bodySha256 });
  return {
    [SIGNATURE_HEADERS.keyId]: keyId,
    [SIGNATURE_HEADERS.date]: date,
    [SIGNATURE_HEADERS.signature]: `${SIGNATURE_VERSION}=${hex(await hmac(subtle, signingKey, canonical))}`,
  };
}
