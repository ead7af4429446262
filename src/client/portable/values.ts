/**
 * The JSON encoding of SQLite values on the wire (docs/API.md "Values"), for the client side, with
 * nothing but the language and `atob`/`btoa`: no Buffer, so it runs in browsers and edge runtimes.
 * - INTEGER within ±(2^53-1): a JSON number; beyond: {"$int":"<decimal>"}
 * - REAL: a JSON number; TEXT: a string; NULL: null; BLOB: {"$blob":"<base64>"}
 */

/** A value read from SQLite: integers beyond ±2^53 are `bigint`, BLOBs `Uint8Array`. */
export type SqlValue = null | number | bigint | string | Uint8Array;

/** A value as it travels in JSON. */
export type JsonSqlValue = null | number | string | boolean | { $int: string } | { $blob: string };

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const MIN_SAFE = BigInt(Number.MIN_SAFE_INTEGER);
/** btoa takes a "binary string"; building it in slices keeps String.fromCharCode's arguments few. */
const BASE64_SLICE = 0x8000;

export function bytesToBase64(bytes: Uint8Array): string {
  let binary = '';
  for (let start = 0; start < bytes.length; start += BASE64_SLICE) {
    binary += String.fromCharCode(...bytes.subarray(start, start + BASE64_SLICE));
  }
  return btoa(binary);
}

export function base64ToBytes(base64: string): Uint8Array {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let index = 0; index < binary.length; index++) bytes[index] = binary.charCodeAt(index);
  return bytes;
}

/** A JS value (or a boolean, bound as 1/0 by the server) in its JSON param form. */
export function toJsonValue(value: SqlValue | boolean | undefined): JsonSqlValue {
  if (value === undefined || value === null) return null;
  if (typeof value === 'bigint') {
    return value >= MIN_SAFE && value <= MAX_SAFE ? Number(value) : { $int: value.toString() };
  }
  if (value instanceof Uint8Array) return { $blob: bytesToBase64(value) };
  return value;
}

/** A JSON value from an answer as a JS value: bigint beyond ±2^53, Uint8Array for BLOB. */
export function fromJsonValue(value: JsonSqlValue): SqlValue {
  if (value === null || typeof value === 'number' || typeof value === 'string') return value;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if ('$int' in value) return BigInt(value.$int);
  return base64ToBytes(value.$blob);
}
