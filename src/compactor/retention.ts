import type { ArchiveIndex, ArchivedBundle, ArchivedCheckpoint } from '../archive/archive-index.js';

/**
 * Which archived objects the retention window no longer needs (pure). Restoring to any time in
 * [now - retention, now] starts from the newest checkpoint at or before that time, so that
 * checkpoint (the base of the window) is kept with everything after it; older checkpoints, and
 * bundles that end at or before the base, are pruned. When no checkpoint is as old as the window,
 * nothing is pruned: the oldest history is still the only way to reach the window's start. The
 * newest checkpoint is never pruned (it is at or after the base).
 */
export interface RetentionPlan {
  /** The checkpoint every restore inside the window can start from, if the window is covered. */
  base: ArchivedCheckpoint | undefined;
  checkpoints: ArchivedCheckpoint[];
  bundles: ArchivedBundle[];
}

export function planRetention(index: ArchiveIndex, nowMs: number, retentionMs: number): RetentionPlan {
  const windowStart = nowMs - retentionMs;
  let base: ArchivedCheckpoint | undefined;
  for (const checkpoint of index.checkpoints) {
    if (checkpoint.timeMs <= windowStart && (!base || checkpoint.position > base.position)) base = checkpoint;
  }
  if (!base) return { base: undefined, checkpoints: [], bundles: [] };
  const keep = base;
  return {
    base,
    checkpoints: index.checkpoints.filter((checkpoint) => checkpoint.position < keep.position),
    bundles: index.bundles.filter((bundle) => bundle.last <= keep.position),
  };
}
