import { createHash, createHmac } from 'node:crypto';
import {
  canonicalRequest,
  keyIdOf,
  SIGNATURE_HEADERS,
  SIGNATURE_VERSION,
  SIGNING_KEY_LABEL,
  type CanonicalRequestParts,
} from './portable/signing.js';

// The scheme's wire format (canonical request, header names, key ids) is defined once, in the
// portable client, which signs with Web Crypto; this module computes the same HMACs synchronously
// with node:crypto, as the server needs to verify.
export {
  canonicalQuery,
  canonicalRequest,
  keyIdOf,
  ROOT_KEY_ID,
  SIGNATURE_HEADERS,
  SIGNATURE_VERSION,
  type CanonicalRequestParts,
} from './portable/signing.js';

/**
 * Request signing, scheme v1 (docs/SECURITY.md, "Request signing"). Pure functions shared by the
 * client, which signs, and the server, which verifies (src/server/request-signing.ts).
 *
 * A signed request carries no secret. It carries three headers:
 *
 *     X-Litebase-Key-Id:    <key id>             (the 12 characters of lb_<id>_..., or "root")
 *     X-Litebase-Date:      <RFC 3339 time or Unix milliseconds>
 *     X-Litebase-Signature: v1=<hex HMAC-SHA256(signing key, canonical request)>
 *
 * The canonical request is these seven lines joined by "\n" (no trailing newline):
 *
 *     v1
 *     METHOD                 upper case
 *     /path                  exactly as sent on the request line, still percent-encoded
 *     a=1&b=2                the query's "&"-separated parts as sent, empty ones dropped, sorted
 *     <key id>
 *     <date header value>    verbatim
 *     <hex SHA-256 of the body bytes>   (of no bytes when there is no body)
 *
 * The signing key is HMAC-SHA256(SHA-256(key string), "litebase-request-signing-v1"). The server
 * stores SHA-256(key string) for every access key, so it can derive the signing key without ever
 * holding the secret: the price is that whoever reads the key store can sign (docs/SECURITY.md).
 */

const EMPTY_BODY_SHA256 = createHash('sha256').digest('hex');

/** SHA-256 of a key string: what the key store holds (KeyRecord.hash, hex). */
export function keyDigest(key: string): Buffer {
  return createHash('sha256').update(key).digest();
}

/**
 * The HMAC key, from SHA-256 of the key string. A separate label keeps the signing key distinct
 * from the stored digest, so a future scheme can derive a different one from the same record.
 */
export function signingKeyFromDigest(digest: Uint8Array): Buffer {
  return createHmac('sha256', digest).update(SIGNING_KEY_LABEL).digest();
}

export function signingKey(key: string): Buffer {
  return signingKeyFromDigest(keyDigest(key));
}

export function bodySha256(body: Uint8Array | string | undefined): string {
  if (body === undefined || body.length === 0) return EMPTY_BODY_SHA256;
  return createHash('sha256').update(body).digest('hex');
}

/** The raw HMAC over a canonical request (32 bytes). */
export function computeSignature(key: Uint8Array, parts: CanonicalRequestParts): Buffer {
  return createHmac('sha256', key).update(canonicalRequest(parts)).digest();
}

export interface SignInput {
  /** The full key string (`lb_<id>_<secret>` or the root key). It is not sent. */
  key: string;
  /** Defaults to `keyIdOf(key)`. */
  keyId?: string;
  method: string;
  /** The absolute URL the request goes to: the path and query are signed as fetch will send them. */
  url: string | URL;
  /** The exact body bytes (a string is signed as its UTF-8 bytes, which is what fetch sends). */
  body?: Uint8Array | string;
  /** Defaults to now. */
  date?: Date;
}

/** The three headers that sign a request. */
export function signatureHeaders(input: SignInput): Record<string, string> {
  const url = typeof input.url === 'string' ? new URL(input.url) : input.url;
  const keyId = input.keyId ?? keyIdOf(input.key);
  const date = (input.date ?? new Date()).toISOString();
  const signature = computeSignature(signingKey(input.key), {
    method: input.method,
    path: url.pathname,
    query: url.search.slice(1),
    keyId,
    date,
    bodySha256: bodySha256(input.body),
  });
  return {
    [SIGNATURE_HEADERS.keyId]: keyId,
    [SIGNATURE_HEADERS.date]: date,
    [SIGNATURE_HEADERS.signature]: `${SIGNATURE_VERSION}=${signature.toString('hex')}`,
  };
}
