import type { ArchiveIndex, ArchivedBundle, ArchivedCheckpoint, ArchivedRange } from '../archive/archive-index.js';
import { parseArchiveKey, archivePrefix } from '../archive/archive-keys.js';

/**
 * Which archived objects the retention window no longer needs (pure). Restoring to any time in
 * [now - retention, now] starts from the newest checkpoint at or before that time, so that
 * checkpoint (the base of the window) is kept with everything after it; older checkpoints (full
 * ones and manifests), and bundles that end at or before the base, are pruned. When no checkpoint
 * is as old as the window, nothing is pruned: the oldest history is still the only way to reach
 * the window's start. The newest checkpoint is never pruned (it is at or after the base).
 *
 * Range files are shared by manifests: one goes when no kept manifest lists it. The manifests that
 * list a range are consecutive (a range is carried from one checkpoint to the next until its pages
 * change, then never listed again), so none of the kept ones (the base and after) lists it exactly
 * when the newest archived manifest that does is older than the base. A range no archived manifest
 * lists (an upload cut short before its manifest) goes once the base is past the position it was
 * written at: a later manifest that still needs it uploads it again.
 */
export interface RetentionPlan {
  /** The checkpoint every restore inside the window can start from, if the window is covered. */
  base: ArchivedCheckpoint | undefined;
  checkpoints: ArchivedCheckpoint[];
  bundles: ArchivedBundle[];
  ranges: ArchivedRange[];
}

export function planRetention(index: ArchiveIndex, nowMs: number, retentionMs: number): RetentionPlan {
  const windowStart = nowMs - retentionMs;
  let base: ArchivedCheckpoint | undefined;
  for (const checkpoint of index.checkpoints) {
    if (checkpoint.timeMs <= windowStart && (!base || checkpoint.position > base.position)) base = checkpoint;
  }
  if (!base) return { base: undefined, checkpoints: [], bundles: [], ranges: [] };
  const keep = base.position;
  const prefix = archivePrefix(index.database, index.databaseId);
  return {
    base,
    checkpoints: index.checkpoints.filter((checkpoint) => checkpoint.position < keep),
    bundles: index.bundles.filter((bundle) => bundle.last <= keep),
    ranges: index.ranges.filter((range) => {
      if (range.lastListed !== undefined) return range.lastListed < keep;
      const parsed = parseArchiveKey(prefix, range.key);
      return parsed?.kind === 'range' && parsed.position < keep;
    }),
  };
}

/** Takes a plan's objects out of the index (written before they are deleted); answers their keys and bytes. */
export function applyRetention(index: ArchiveIndex, plan: RetentionPlan): { keys: string[]; bytes: number } {
  const entries = [...plan.checkpoints, ...plan.bundles, ...plan.ranges];
  const pruned = new Set(entries.map((entry) => entry.key));
  if (pruned.size > 0) {
    index.checkpoints = index.checkpoints.filter((entry) => !pruned.has(entry.key));
    index.bundles = index.bundles.filter((entry) => !pruned.has(entry.key));
    index.ranges = index.ranges.filter((entry) => !pruned.has(entry.key));
  }
  // What leaves the store: a manifest's object (its `bytes` is what it cost, its ranges counted on their own).
  const bytes = entries.reduce((sum, entry) => sum + ('manifest' in entry && entry.manifest ? entry.manifest.objectBytes : entry.bytes), 0);
  return { keys: [...pruned], bytes };
}
