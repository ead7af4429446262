import { LitebaseError } from '../errors.js';
import { formatChecksum } from './rolling-checksum.js';
import type { SegmentHeader } from './segment-codec.js';

/*
 * A checkpoint is a segment file (the same container, docs/FORMAT.md §8) that holds every page of
 * the database at one position; these are the extra rules its header follows.
 */

/** The rules a checkpoint's header follows beyond the segment format (FORMAT.md §8). */
export function assertCheckpointHeader(header: SegmentHeader, name: string, databaseId?: string): void {
  const problem =
    header.preChecksum !== 0n
      ? `pre-checksum is ${formatChecksum(header.preChecksum)}, a checkpoint has 0`
      : header.pageCount !== header.databaseSizePages
        ? `it holds ${header.pageCount} pages of a ${header.databaseSizePages}-page database, a checkpoint holds every page`
        : header.transactionCount !== 0
          ? `transaction count is ${header.transactionCount}, a checkpoint has 0`
          : undefined;
  if (problem) throw new LitebaseError('CHECKPOINT_INVALID', `${name} is not a checkpoint: ${problem}`, { details: { file: name } });
  if (databaseId !== undefined && header.databaseId !== databaseId) {
    throw new LitebaseError('CHECKPOINT_FOREIGN', `${name} belongs to database ${header.databaseId}, not ${databaseId}`, {
      details: { file: name },
    });
  }
}
