/**
 * The JSON encoding of SQLite values, shared by the server and the client (docs/API.md "Values"):
 * - INTEGER within ±(2^53-1): a JSON number; beyond: {"$int":"<decimal>"}
 * - REAL: a JSON number (non-finite REALs cannot be stored by SQLite as REAL and are refused)
 * - TEXT: a string; NULL: null; BLOB: {"$blob":"<base64>"}
 * In params a JSON number with a fraction binds as REAL, without one as INTEGER; booleans bind as 1/0.
 */
import type { ErrorCode } from '../error-codes.js';

export type SqlValue = null | number | bigint | string | Uint8Array;
export type JsonSqlValue = null | number | string | boolean | { $int: string } | { $blob: string };

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export class ValueEncodingError extends Error {
  readonly code = 'INVALID_VALUE' satisfies ErrorCode;
}

/** Encode a value read from SQLite (with safe integers on) for a JSON response. */
export function encodeValue(value: unknown): JsonSqlValue {
  if (value === null || value === undefined) return null;
  if (typeof value === 'bigint') {
    return value >= MIN_SAFE && value <= MAX_SAFE ? Number(value) : { $int: value.toString() };
  }
  if (typeof value === 'number' || typeof value === 'string') return value;
  if (value instanceof Uint8Array) return { $blob: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  throw new ValueEncodingError(`cannot encode a value of type ${typeof value}`);
}

const DECODED_BYTES = Symbol('litebase.decodedBlob');

/**
 * A BLOB param whose base64 the server decoded while it parsed the body (src/server/json-body.ts):
 * it reads as `{"$blob":"<base64>"}` (encoded again only if read: a body forwarded to the Primary),
 * and binds `bytes` as they are.
 */
export function decodedBlobParam(bytes: Buffer): { $blob: string } {
  const param = {} as { $blob: string; [DECODED_BYTES]: Buffer };
  Object.defineProperty(param, '$blob', { enumerable: true, get: () => bytes.toString('base64') });
  Object.defineProperty(param, DECODED_BYTES, { value: bytes });
  return param;
}

/** The bytes of a param made by decodedBlobParam, else undefined. */
export function decodedBlobBytes(value: object): Buffer | undefined {
  return (value as { [DECODED_BYTES]?: Buffer })[DECODED_BYTES];
}

/** Decode a JSON param into the value better-sqlite3 binds; integers become BigInt so they bind as INTEGER. */
export function decodeValue(value: unknown): SqlValue {
  if (value === null) return null;
  switch (typeof value) {
    case 'string':
      return value;
    case 'boolean':
      return value ? 1n : 0n;
    case 'number':
      if (!Number.isFinite(value)) throw new ValueEncodingError('numbers must be finite');
      return Number.isInteger(value) && Number.isSafeInteger(value) ? BigInt(value) : value;
    case 'object': {
      const decoded = decodedBlobBytes(value);
      if (decoded !== undefined) return decoded;
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record);
      if (keys.length === 1 && typeof record.$int === 'string') {
        if (!/^-?\d{1,19}$/.test(record.$int)) throw new ValueEncodingError(`$int must be a decimal integer, got ${record.$int}`);
        const parsed = BigInt(record.$int);
        if (parsed > INT64_MAX || parsed < INT64_MIN) throw new ValueEncodingError(`$int ${record.$int} is outside the 64-bit range`);
        return parsed;
      }
      if (keys.length === 1 && typeof record.$blob === 'string') {
        if (!BASE64.test(record.$blob) || record.$blob.length % 4 !== 0) {
          throw new ValueEncodingError('$blob must be standard base64');
        }
        return Buffer.from(record.$blob, 'base64');
      }
      throw new ValueEncodingError('an object value must be {"$int":"..."} or {"$blob":"..."}');
    }
    default:
      throw new ValueEncodingError(`cannot bind a value of type ${typeof value}`);
  }
}

/** The client side: turn a JSON value from a response into a JS value (bigint beyond 2^53, Buffer for BLOB). */
export function fromJsonValue(value: JsonSqlValue): SqlValue {
  if (value === null || typeof value === 'number' || typeof value === 'string') return value;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if ('$int' in value) return BigInt(value.$int);
  return Buffer.from(value.$blob, 'base64');
}

/** The client side: turn a JS value into its JSON param form. */
export function toJsonValue(value: SqlValue | boolean | undefined): JsonSqlValue {
  if (value === undefined || value === null) return null;
  if (typeof value === 'bigint') {
    return value >= MIN_SAFE && value <= MAX_SAFE ? Number(value) : { $int: value.toString() };
  }
  if (value instanceof Uint8Array) return { $blob: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  return value;
}
