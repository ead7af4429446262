import type { JsonSqlValue, SqlValue } from './values.js';
import { decodedBlobBytes, ValueEncodingError } from './values.js';

/**
 * The exact JSON encoding of SQLite values, for protocols that keep INTEGER and REAL apart
 * (Hrana, src/server/hrana/): every INTEGER is {"$int":"<decimal>"}, every REAL a JSON number
 * (an integral one too), BLOBs {"$blob":"<base64>"}, TEXT a string, NULL null. It is JSON-safe, so
 * it also crosses the read processes' JSON channel (read-sandbox.ts) unchanged.
 */

const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);

/** A value read from SQLite (safe integers on: INTEGER is a bigint) in the exact encoding. */
export function encodeExactValue(value: unknown): JsonSqlValue {
  if (value === null || value === undefined) return null;
  if (typeof value === 'bigint') return { $int: value.toString() };
  if (typeof value === 'number' || typeof value === 'string') return value;
  if (value instanceof Uint8Array) return { $blob: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  throw new ValueEncodingError(`cannot encode a value of type ${typeof value}`);
}

/** A parameter in the exact encoding, as better-sqlite3 binds it: a JS number binds as REAL, a bigint as INTEGER. */
export function decodeExactValue(value: unknown): SqlValue {
  if (value === null || typeof value === 'string') return value;
  if (typeof value === 'number') {
    if (Number.isNaN(value)) throw new ValueEncodingError('a float parameter must be a number');
    return value;
  }
  if (typeof value === 'object') {
    const decoded = value === null ? undefined : decodedBlobBytes(value);
    if (decoded !== undefined) return decoded;
    const record = value as Record<string, unknown>;
    if (typeof record.$int === 'string') {
      if (!/^-?\d{1,19}$/.test(record.$int)) throw new ValueEncodingError(`an integer must be decimal, got ${record.$int}`);
      const parsed = BigInt(record.$int);
      if (parsed > INT64_MAX || parsed < INT64_MIN) throw new ValueEncodingError(`integer ${record.$int} is outside the 64-bit range`);
      return parsed;
    }
    if (typeof record.$blob === 'string') return Buffer.from(record.$blob, 'base64');
  }
  throw new ValueEncodingError(`cannot bind a value of type ${typeof value}`);
}
