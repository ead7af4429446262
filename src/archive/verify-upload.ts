import { createHash } from 'node:crypto';
import { LitebaseError } from '../errors.js';
import type { ObjectStore } from '../storage/object-store.js';

/** Objects at most this large are read back whole after upload and hashed; larger ones are checked by size. */
export const VERIFY_BY_CONTENT_MAX_BYTES = 8 * 1024 * 1024;

/**
 * Checks an upload before anything it stands for is deleted or listed (docs/FORMAT.md §11.2): its
 * size by HEAD always, its content (SHA-256) when it is small. ARCHIVE_UPLOAD_MISMATCH otherwise.
 */
export async function verifyUpload(store: ObjectStore, key: string, bytes: number, sha256: string): Promise<void> {
  const info = await store.head(key);
  if (!info || info.size !== bytes) {
    throw new LitebaseError(
      'ARCHIVE_UPLOAD_MISMATCH',
      `${store.url}: ${key} holds ${info?.size ?? 'no'} bytes after upload, expected ${bytes}`,
      {
        details: { key },
      },
    );
  }
  if (bytes <= VERIFY_BY_CONTENT_MAX_BYTES) {
    const found = createHash('sha256')
      .update(await store.get(key))
      .digest('hex');
    if (found !== sha256) {
      throw new LitebaseError(
        'ARCHIVE_UPLOAD_MISMATCH',
        `${store.url}: ${key} does not read back what was uploaded (sha256 ${found}, expected ${sha256})`,
        { details: { key } },
      );
    }
  }
}
