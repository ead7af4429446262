import { BundleFormatError } from '../format/bundle-codec.js';
import { SegmentFormatError } from '../format/segment-codec.js';
import { errorMessage, LitebaseError, systemErrorCode } from '../errors.js';
import type { ObjectStore } from '../storage/object-store.js';

/** The errors a restore gives for what it reads: shared by the executor and its base checkpoint. */

export function requireStore(store: ObjectStore | undefined, key: string): ObjectStore {
  if (!store)
    throw new LitebaseError('RESTORE_SOURCE_MISSING', `the plan reads ${key} from the object store, which this restore has not opened`);
  return store;
}

/** Damaged archive content becomes ARCHIVE_CORRUPT naming the object; other errors pass. */
export function archiveError(error: unknown, name: string): unknown {
  if (error instanceof BundleFormatError) return error;
  if (error instanceof LitebaseError && error.code === 'ARCHIVE_CORRUPT') return error;
  if (error instanceof SegmentFormatError || (error instanceof LitebaseError && error.code.startsWith('CHECKPOINT_'))) {
    const message = errorMessage(error);
    return new LitebaseError('ARCHIVE_CORRUPT', message.startsWith(name) ? message : `${name}: ${message}`, {
      details: { key: name, reason: (error as LitebaseError).code },
      cause: error,
    });
  }
  return error;
}

/** A file of the shared folder that a compaction deleted while the restore read it: the restore can start again. */
export async function vanishedAs<T>(file: string, read: () => Promise<T>, what = 'the log'): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (systemErrorCode(error) === 'ENOENT') {
      throw new LitebaseError(
        'RESTORE_SOURCE_VANISHED',
        `${file} was deleted while the restore read ${what} (a compaction archived it); start the restore again`,
      );
    }
    throw error;
  }
}

export function corrupt(file: string, message: string): SegmentFormatError {
  return new SegmentFormatError('SEGMENT_CORRUPT', `${file}: ${message}`);
}
