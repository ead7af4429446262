import { timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import {
  bodySha256,
  computeSignature,
  ROOT_KEY_ID,
  SIGNATURE_HEADERS,
  SIGNATURE_VERSION,
  signingKey,
  signingKeyFromDigest,
} from '../client/signing.js';
import { LitebaseError, type ErrorCodeWithStatus } from '../errors.js';
import { ROOT_PRINCIPAL, principalFor, type AccessKeys, type Principal } from './access-keys.js';
import type { App } from './context.js';

/**
 * Verifying signed requests (scheme v1, src/client/signing.ts; docs/SECURITY.md). A request with
 * no `Authorization` header but an `X-Litebase-Signature` is checked in two steps:
 *
 * 1. `onRequest` (before the body is read): the headers are well formed, the date is inside the
 *    clock-skew window, and the key exists and is not revoked. Cheap refusals come first.
 * 2. `preParsing`: the exact body bytes are read, hashed and the HMAC compared in constant time;
 *    a valid signature is then remembered until its date leaves the window, so the same request
 *    sent again is refused. Only then does the request get its principal.
 *
 * Bearer requests never reach either step: the preParsing hook returns at once when the request
 * is not signed, and the body is read by fastify as usual.
 */

export interface SigningSettings {
  /** How far a request's date may be from this node's clock, either way. */
  maxSkewMs: number;
  /** How many signatures this node remembers to refuse replays; full means 503. */
  replayCacheSize: number;
}

/** A signed request whose headers passed step 1. */
export interface SignedRequest {
  readonly keyId: string;
  readonly date: string;
  readonly dateMs: number;
  readonly signature: Buffer;
  readonly principal: Principal;
  /** The HMAC key derived for this key id. */
  readonly key: Buffer;
  /** The exact body bytes, once read: a forwarded request carries them unchanged (forward.ts). */
  body: Buffer | undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the auth hook for a signed request; null for every other request. */
    signedRequest: SignedRequest | null;
  }
}

const SIGNATURE_FORMAT = new RegExp(`^${SIGNATURE_VERSION}=([0-9a-fA-F]{64})$`);
const UNIX_MS = /^\d{1,15}$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;
const ACCESS_KEY_ID = /^[a-z0-9]{12}$/;

const refuse = (code: ErrorCodeWithStatus<401>, message: string, details?: Record<string, unknown>): LitebaseError =>
  new LitebaseError(code, message, details ? { details } : {});

/** A header Node hands over as one string (repeated x- headers are joined with ", "). */
function single(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
}

/** Milliseconds since the epoch, from Unix milliseconds or an RFC 3339 time; NaN when neither. */
export function parseSignatureDate(value: string): number {
  if (UNIX_MS.test(value)) return Number(value);
  if (RFC3339.test(value)) return Date.parse(value);
  return Number.NaN;
}

/**
 * Signatures seen recently, so each is accepted once per node. An entry is kept until its date
 * leaves the skew window (after that the date check refuses the request anyway); entries are
 * grouped in buckets by that moment, so forgetting them is dropping whole buckets.
 */
export class ReplayCache {
  private readonly buckets = new Map<number, Set<string>>();
  private entries = 0;
  private sweptAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly capacity: number,
    private readonly bucketMs = 5_000,
  ) {}

  get size(): number {
    return this.entries;
  }

  /**
   * Remember `signature` until `expiresAt`. False when it is already remembered (a replay).
   * Throws 503 when the cache is full of live entries: refusing is safer than forgetting one.
   */
  remember(signature: string, expiresAt: number, now: number): boolean {
    if (now - this.sweptAt >= this.bucketMs) this.sweep(now);
    const index = Math.floor(expiresAt / this.bucketMs);
    let bucket = this.buckets.get(index);
    if (bucket?.has(signature)) return false;
    if (this.entries >= this.capacity) {
      this.sweep(now);
      if (this.entries >= this.capacity) {
        const earliest = Math.min(...this.buckets.keys());
        throw new LitebaseError(
          'SIGNATURE_CACHE_FULL',
          'this node remembers too many recent signatures to check for replays; retry shortly',
          {
            retryAfterSeconds: Math.max(1, Math.ceil(((earliest + 1) * this.bucketMs - now) / 1000)),
          },
        );
      }
    }
    if (!bucket) {
      bucket = new Set();
      this.buckets.set(index, bucket);
    }
    bucket.add(signature);
    this.entries++;
    return true;
  }

  /** Drop buckets whose every entry has expired. */
  private sweep(now: number): void {
    this.sweptAt = now;
    for (const [index, bucket] of this.buckets) {
      if ((index + 1) * this.bucketMs <= now) {
        this.entries -= bucket.size;
        this.buckets.delete(index);
      }
    }
  }
}

export interface RequestSigningOptions {
  keys: Pick<AccessKeys, 'liveRecord'>;
  rootKey: string;
  settings: SigningSettings;
  /** Bodies of signed requests are read here first; the same limit as fastify's. */
  bodyLimitBytes: number;
  now?: () => number;
}

export class RequestSigning {
  private readonly rootSigningKey: Buffer;
  private readonly replays: ReplayCache;
  private readonly now: () => number;

  constructor(private readonly options: RequestSigningOptions) {
    this.rootSigningKey = signingKey(options.rootKey);
    this.replays = new ReplayCache(options.settings.replayCacheSize);
    this.now = options.now ?? Date.now;
  }

  /** Decorate requests and add the body step (2). The auth hook calls `begin` for step 1. */
  static register(app: App, options: RequestSigningOptions): RequestSigning {
    const signing = new RequestSigning(options);
    app.decorateRequest('signedRequest', null);
    // Callback style, not async: this runs for every request, and for bearer requests it must
    // cost no more than a property check.
    app.addHook('preParsing', (request, _reply, payload, done) => {
      const signed = request.signedRequest;
      if (signed === null) return done(null, payload);
      readBody(payload, options.bodyLimitBytes, Number(request.headers['content-length']), (error, body) => {
        if (error || body === undefined) return done(error ?? new Error('no body'));
        try {
          signing.verify(request, signed, body);
        } catch (verifyError) {
          return done(verifyError as Error);
        }
        // Fastify parses what this stream yields: the very bytes that were verified.
        done(null, Readable.from(body.length === 0 ? [] : [body]));
      });
    });
    return signing;
  }

  /** Step 1, from the auth hook: a request with signature headers and no Authorization. */
  async begin(request: FastifyRequest): Promise<void> {
    const keyId = single(request.headers, SIGNATURE_HEADERS.keyId);
    const date = single(request.headers, SIGNATURE_HEADERS.date);
    const signatureHeader = single(request.headers, SIGNATURE_HEADERS.signature);
    if (keyId === undefined || date === undefined || signatureHeader === undefined) {
      throw refuse(
        'SIGNATURE_INVALID',
        `a signed request needs ${Object.values(SIGNATURE_HEADERS).join(', ')} (scheme ${SIGNATURE_VERSION}, see docs/SECURITY.md)`,
      );
    }
    const hex = SIGNATURE_FORMAT.exec(signatureHeader)?.[1];
    if (hex === undefined) throw refuse('SIGNATURE_INVALID', `the signature must be "${SIGNATURE_VERSION}=<64 hex digits>"`);
    const dateMs = parseSignatureDate(date);
    if (Number.isNaN(dateMs)) throw refuse('SIGNATURE_INVALID', 'the date must be an RFC 3339 time or Unix milliseconds');
    const skewMs = this.now() - dateMs;
    if (Math.abs(skewMs) > this.options.settings.maxSkewMs) {
      throw refuse(
        'SIGNATURE_EXPIRED',
        `the request's date is ${Math.round(Math.abs(skewMs) / 1000)} s ${skewMs > 0 ? 'behind' : 'ahead of'} this node's clock; ` +
          `at most ${Math.round(this.options.settings.maxSkewMs / 1000)} s are allowed`,
        { serverTime: new Date(this.now()).toISOString() },
      );
    }
    let principal: Principal;
    let key: Buffer;
    if (keyId === ROOT_KEY_ID) {
      principal = ROOT_PRINCIPAL;
      key = this.rootSigningKey;
    } else {
      const record = ACCESS_KEY_ID.test(keyId) ? await this.options.keys.liveRecord(keyId) : undefined;
      if (!record) throw refuse('INVALID_KEY', `the access key ${keyId} is not valid (unknown or revoked)`);
      principal = principalFor(record);
      key = signingKeyFromDigest(Buffer.from(record.hash, 'hex'));
    }
    request.signedRequest = { keyId, date, dateMs, signature: Buffer.from(hex, 'hex'), principal, key, body: undefined };
  }

  /** Step 2: the signature over the exact bytes received, then the replay check. */
  private verify(request: FastifyRequest, signed: SignedRequest, body: Buffer): void {
    const queryAt = request.url.indexOf('?');
    const expected = computeSignature(signed.key, {
      method: request.method,
      path: queryAt === -1 ? request.url : request.url.slice(0, queryAt),
      query: queryAt === -1 ? '' : request.url.slice(queryAt + 1),
      keyId: signed.keyId,
      date: signed.date,
      bodySha256: bodySha256(body),
    });
    if (!timingSafeEqual(expected, signed.signature)) {
      throw refuse('SIGNATURE_INVALID', 'the signature does not match the request (method, path, query, date, body) and key');
    }
    // Remembered only once valid: nobody without the key can fill the cache or block a request.
    if (!this.replays.remember(signed.signature.toString('base64'), signed.dateMs + this.options.settings.maxSkewMs, this.now())) {
      throw refuse('SIGNATURE_REPLAYED', 'this signed request was already received by this node; sign each request anew');
    }
    signed.body = body;
    request.principal = signed.principal;
  }
}

/**
 * What a replica sends on when it forwards a signed request to the Primary: the signature
 * headers and the exact body bytes, so the Primary verifies the client's own signature (and its
 * replay cache sees every forwarded write). Undefined for requests that were not signed.
 */
export function forwardedSignature(request: FastifyRequest): { headers: Record<string, string>; body: Buffer | undefined } | undefined {
  const signed = request.signedRequest;
  if (signed === null) return undefined;
  const headers: Record<string, string> = {};
  for (const name of Object.values(SIGNATURE_HEADERS)) {
    const value = single(request.headers, name);
    if (value !== undefined) headers[name] = value;
  }
  const contentType = single(request.headers, 'content-type');
  const hasBody = signed.body !== undefined && signed.body.length > 0;
  if (hasBody && contentType !== undefined) headers['content-type'] = contentType;
  return { headers, body: hasBody ? signed.body : undefined };
}

/** Read a whole body, refusing more than `limit` bytes (as fastify would, with the same code). */
function readBody(payload: Readable, limit: number, declaredLength: number, callback: (error: Error | null, body?: Buffer) => void): void {
  const tooLarge = () => new LitebaseError('BODY_TOO_LARGE', `the body is larger than ${limit} bytes`);
  if (declaredLength > limit) return callback(tooLarge());
  const chunks: Buffer[] = [];
  let received = 0;
  let finished = false;
  const finish = (error: Error | null, body?: Buffer) => {
    if (finished) return;
    finished = true;
    payload.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
    callback(error, body);
  };
  const onData = (chunk: Buffer | string) => {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    received += bytes.length;
    if (received > limit) return finish(tooLarge());
    chunks.push(bytes);
  };
  const onEnd = () => finish(null, Buffer.concat(chunks, received));
  const onError = (error: Error) => finish(Object.assign(error, { statusCode: 400 }));
  const onClose = () => finish(new LitebaseError('BODY_INCOMPLETE', 'the connection closed before the body was complete'));
  payload.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  payload.resume();
}
