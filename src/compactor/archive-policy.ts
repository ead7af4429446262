import type { ArchiveIndex } from '../archive/archive-index.js';

/**
 * Which checkpoints go to the object store (pure; docs/FORMAT.md §11.3). A full checkpoint is a
 * copy of the database, and a range checkpoint costs the range files the archive does not hold yet
 * (archive/manifest-upload.ts, `manifestUploadCost`), while the bundles already hold every change
 * since the previous base: archiving each one the compactor writes (for the shared folder, where
 * replicas and recovery need it) could store the database again at every compaction. The candidate's
 * `bytes` is what archiving it would upload. A checkpoint is archived when:
 *
 *  - **unreachable**: the archive cannot reach its position from a base it holds (no checkpoint
 *    at or before it, and no bundles from position 1 without a gap), as after a restore (a database
 *    that starts from a checkpoint) or a gap in the log;
 *  - **log**: the bundles since the newest archived base at or before it hold at least `percent` %
 *    of what it would upload (0: every checkpoint), which bounds both what a restore replays after
 *    a base (percent/100 checkpoints' worth) and what checkpoints add to the archive (100/percent of
 *    the log's size);
 *  - **age**: its commit time is half the retention window or more after the newest archived base,
 *    so that retention always finds a base to prune up to.
 *
 * The base is the newest archived checkpoint (full or range) at or before the position, or the empty
 * database when the bundles start at position 1.
 */

export type CheckpointArchiveReason = 'unreachable' | 'log' | 'age';

export interface ArchivePolicy {
  /** Archived log since the base, in percent of the checkpoint's size, that makes a checkpoint worth archiving. */
  percent: number;
  retentionMs: number;
}

export function checkpointArchiveReason(
  index: ArchiveIndex,
  /** `bytes`: what archiving it would upload (a full checkpoint's size; a manifest's `manifestUploadCost`). */
  checkpoint: { position: bigint; timeMs: number; bytes: number },
  policy: ArchivePolicy,
): CheckpointArchiveReason | undefined {
  if (index.checkpoints.some((entry) => entry.position === checkpoint.position)) return undefined;
  let base: { position: bigint; timeMs: number } | undefined;
  for (const entry of index.checkpoints) {
    if (entry.position <= checkpoint.position && (!base || entry.position > base.position)) base = entry;
  }
  const first = index.bundles.find((bundle) => bundle.first === 1n);
  if (!base && first) base = { position: 0n, timeMs: first.firstTimeMs };
  if (!base) return 'unreachable';
  // Walk the bundles from the base to the checkpoint, summing what a restore would read.
  let next = base.position + 1n;
  let bytes = 0;
  const seen = new Set<string>();
  while (next <= checkpoint.position) {
    let best: (typeof index.bundles)[number] | undefined;
    for (const bundle of index.bundles) {
      if (bundle.first <= next && bundle.last >= next && (!best || bundle.last > best.last)) best = bundle;
    }
    if (!best) return 'unreachable';
    if (!seen.has(best.key)) bytes += best.bytes;
    seen.add(best.key);
    next = best.last + 1n;
  }
  if (bytes * 100 >= policy.percent * checkpoint.bytes) return 'log';
  if (checkpoint.timeMs - base.timeMs >= policy.retentionMs / 2) return 'age';
  return undefined;
}
