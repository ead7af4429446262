/**
 * A database id on disk: a UUID as its 16 raw bytes, in the order its 32 hex digits are written
 * (docs/FORMAT.md §3). Shared by every codec that stores one.
 */

/** The 16 bytes of `uuid` (lower-case 8-4-4-4-12; the caller checks the form). */
export function uuidToBytes(uuid: string): Buffer {
  return Buffer.from(uuid.replaceAll('-', ''), 'hex');
}

/** 16 bytes as a lower-case 8-4-4-4-12 UUID. */
export function uuidFromBytes(bytes: Uint8Array): string {
  const hex = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
