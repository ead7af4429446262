import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * Bytes written into folders, measured from outside the server by scanning them: what a
 * benchmark can know about the shared folder and a file:// object store whatever their formats.
 *
 * Litebase writes every file of the shared folder and of a file:// store under a temp name that
 * starts with '.' and gives it its final name (rename or link) only once it is complete; a file
 * with its final name never changes again (a rewritten file such as a lease or HEAD is a new file,
 * a new inode, under the same name). So a scan every `everyMs` counts each (path, inode) with a
 * final name once, at its size, plus any growth seen later (none is expected). Temp files are not
 * counted (their bytes are counted when they get their final name) but are reported as "busy".
 *
 * What it misses: a file that gets its final name and is deleted again between two scans (a
 * segment deleted by a compaction within `everyMs` of its creation). What it cannot see: writes
 * inside files that are changed in place (SQLite files of the node-local folder), which is why the
 * local folder is only measured by its size and the process's /proc/PID/io.
 */

/** Names the category of a file (e.g. "log", "checkpoints"), or undefined to leave it out. */
export type Classifier = (relative: string) => string | undefined;

export interface MeterTotals {
  /** Bytes written per category. */
  bytes: Record<string, number>;
  /** Files that got a final name, per category. */
  files: Record<string, number>;
}

interface Seen {
  ino: number;
  size: number;
  mtimeMs: number;
}

class MeteredFolder {
  readonly totals: MeterTotals = { bytes: {}, files: {} };
  /** performance.now() of the last scan that found new bytes, per category. */
  readonly changedAt: Record<string, number> = {};
  /** Temp files ('.'-names) found by the last scan, per category. */
  busy: Record<string, number> = {};
  private seen = new Map<string, Seen>();

  constructor(
    readonly root: string,
    private readonly classify: Classifier,
  ) {}

  /**
   * `full`: stat every file; otherwise only files not seen before (cheap: a log of thousands of
   * segments is mostly files already counted, and they never change). Rewrites and growth of
   * known files are caught by the next full scan.
   */
  scan(now: number, full: boolean): void {
    const current = new Map<string, Seen>();
    const busy: Record<string, number> = {};
    // `relative` is the folder's path under the root ('' for the root), so classify() gets no path.relative per file.
    const walk = (dir: string, relative: string): void => {
      let entries;
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch {
        return; // removed meanwhile, or not made yet
      }
      for (const entry of entries) {
        const file = path.join(dir, entry.name);
        const name = relative === '' ? entry.name : path.join(relative, entry.name);
        if (entry.isDirectory()) {
          walk(file, name);
          continue;
        }
        if (!entry.isFile()) continue;
        const category = this.classify(name);
        if (category === undefined) continue;
        if (entry.name.startsWith('.')) {
          busy[category] = (busy[category] ?? 0) + 1;
          continue;
        }
        const before = this.seen.get(file);
        if (before !== undefined && !full) {
          current.set(file, before);
          continue;
        }
        let stat;
        try {
          stat = statSync(file);
        } catch {
          continue; // deleted between the listing and the stat
        }
        // Same inode, changed but not longer: a new file that got a freed inode number again (a
        // rewritten lease), since final files never change in place.
        const isNew = before === undefined || before.ino !== stat.ino || (stat.mtimeMs !== before.mtimeMs && stat.size <= before.size);
        const added = isNew ? stat.size : Math.max(0, stat.size - before.size);
        if (isNew) this.totals.files[category] = (this.totals.files[category] ?? 0) + 1;
        if (added > 0) {
          this.totals.bytes[category] = (this.totals.bytes[category] ?? 0) + added;
          this.changedAt[category] = now;
        }
        current.set(file, { ino: stat.ino, size: stat.size, mtimeMs: stat.mtimeMs });
      }
    };
    walk(this.root, '');
    this.seen = current;
    this.busy = busy;
  }
}

/** Every file is stat'ed again once a second (at 200 ms scans); new ones at every scan. */
const FULL_SCAN_EVERY = 5;

/** Polls several folders every `everyMs`; totals are cumulative, take `snapshot()`s at phase boundaries. */
export class WriteMeter {
  private readonly folders = new Map<string, MeteredFolder>();
  private timer: NodeJS.Timeout | undefined;
  private scanMs = 0;
  private scans = 0;

  constructor(private readonly everyMs = 200) {}

  add(name: string, root: string, classify: Classifier = () => 'all'): void {
    this.folders.set(name, new MeteredFolder(root, classify));
  }

  start(): void {
    this.scanNow();
    this.timer = setInterval(() => this.scanNow(), this.everyMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.scanNow(true);
  }

  /**
   * One scan of every folder now; a full one (every file stat'ed again) every FULL_SCAN_EVERY scans
   * and at each snapshot, so a phase boundary is exact to a scan.
   */
  scanNow(full = this.scans % FULL_SCAN_EVERY === 0): void {
    const started = performance.now();
    for (const folder of this.folders.values()) folder.scan(started, full);
    this.scanMs += performance.now() - started;
    this.scans++;
  }

  /** Cumulative totals per folder after a fresh scan. */
  snapshot(): Record<string, MeterTotals> {
    this.scanNow(true);
    const out: Record<string, MeterTotals> = {};
    for (const [name, folder] of this.folders) out[name] = { bytes: { ...folder.totals.bytes }, files: { ...folder.totals.files } };
    return out;
  }

  /**
   * Whether the `categories` are quiet in every folder: no temp file in them, and no new bytes in
   * them for `quietMs`.
   */
  quiet(quietMs: number, categories: readonly string[]): boolean {
    const now = performance.now();
    for (const folder of this.folders.values()) {
      for (const category of categories) {
        if ((folder.busy[category] ?? 0) > 0) return false;
        const at = folder.changedAt[category];
        if (at !== undefined && now - at < quietMs) return false;
      }
    }
    return true;
  }

  /** Temp files and ms since the last new bytes in `categories`, per folder (why quiet() is false). */
  activity(categories: readonly string[]): string {
    const now = performance.now();
    const parts: string[] = [];
    for (const [name, folder] of this.folders) {
      for (const category of categories) {
        const busy = folder.busy[category] ?? 0;
        const at = folder.changedAt[category];
        if (busy > 0) parts.push(`${name}/${category}: ${busy} temp file(s)`);
        if (at !== undefined) parts.push(`${name}/${category}: new bytes ${Math.round(now - at)} ms ago`);
      }
    }
    return parts.join(', ');
  }

  /** What the scans cost this process (they share the machine with the server under test). */
  cost(): { scans: number; total_ms: number; mean_ms: number } {
    return {
      scans: this.scans,
      total_ms: Math.round(this.scanMs),
      mean_ms: this.scans === 0 ? 0 : Math.round((this.scanMs / this.scans) * 100) / 100,
    };
  }
}

/** Bytes written between two snapshots, per folder and category, and each folder's total. */
export function meterDelta(
  before: Record<string, MeterTotals>,
  after: Record<string, MeterTotals>,
): Record<string, { total: number; files: number; by_category: Record<string, number> }> {
  const out: Record<string, { total: number; files: number; by_category: Record<string, number> }> = {};
  for (const [name, end] of Object.entries(after)) {
    const start = before[name] ?? { bytes: {}, files: {} };
    const byCategory: Record<string, number> = {};
    let total = 0;
    let files = 0;
    for (const [category, bytes] of Object.entries(end.bytes)) {
      const delta = bytes - (start.bytes[category] ?? 0);
      byCategory[category] = delta;
      total += delta;
    }
    for (const [category, count] of Object.entries(end.files)) files += count - (start.files[category] ?? 0);
    out[name] = { total, files, by_category: byCategory };
  }
  return out;
}
