import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import os from 'node:os';

/**
 * CPU used during a window by several processes at once (a Primary and its Replicas), by this
 * process, and by the rest of the machine, in percent of one core. Linux /proc only; null elsewhere.
 * A replica whose lag is high on a 2-core machine is often just waiting for a core: this shows it.
 */
const TICKS_PER_SECOND = 100;

function processTicks(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}

function machineBusyTicks(): number | undefined {
  try {
    const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
    // user nice system (idle iowait irq softirq left out: loopback traffic runs in softirq) + steal.
    const [user = 0, nice = 0, system = 0, , , , , steal = 0] = fields;
    return user + nice + system + steal;
  } catch {
    return undefined;
  }
}

export interface ProcessesCpu {
  /** Per labelled process, % of one core. */
  processes: Record<string, number | null>;
  /** This process (the load generator and probes). */
  bench_pct: number;
  /** Everything else on the machine; high values mean the figures are disturbed. */
  other_pct: number | null;
  capacity_pct: number;
}

export class ProcessesCpuMonitor {
  private readonly startedAt = performance.now();
  private readonly startBench = process.cpuUsage();
  private readonly startMachine = machineBusyTicks();
  private readonly start: Map<string, number | undefined>;

  constructor(private readonly pids: Record<string, number | undefined>) {
    this.start = new Map(Object.entries(pids).map(([label, pid]) => [label, processTicks(pid)]));
  }

  stop(): ProcessesCpu {
    const seconds = (performance.now() - this.startedAt) / 1000;
    const pct = (ticks: number): number => Math.round((ticks / TICKS_PER_SECOND / seconds) * 100);
    const processes: Record<string, number | null> = {};
    let known = 0;
    for (const [label, pid] of Object.entries(this.pids)) {
      const before = this.start.get(label);
      const after = processTicks(pid);
      processes[label] = before !== undefined && after !== undefined ? pct(after - before) : null;
      known += processes[label] ?? 0;
    }
    const bench = process.cpuUsage(this.startBench);
    const benchPct = Math.round(((bench.user + bench.system) / 1e6 / seconds) * 100);
    const endMachine = machineBusyTicks();
    const machinePct = this.startMachine !== undefined && endMachine !== undefined ? pct(endMachine - this.startMachine) : null;
    return {
      processes,
      bench_pct: benchPct,
      other_pct: machinePct === null ? null : Math.max(0, machinePct - known - benchPct),
      capacity_pct: os.cpus().length * 100,
    };
  }
}

/** "p/r1/r2/bench/other" for a table cell. */
export function processesCpuCell(cpu: ProcessesCpu): string {
  const show = (value: number | null | undefined): string => (value === null || value === undefined ? '-' : String(value));
  return [...Object.values(cpu.processes), cpu.bench_pct, cpu.other_pct].map(show).join('/');
}

/**
 * inotify watches a process holds (Linux /proc fdinfo; null elsewhere). A file watcher that adds a
 * watch per file in a folder shows here as thousands.
 */
export function inotifyWatches(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    let watches = 0;
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      let target = '';
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (target !== 'anon_inode:inotify') continue;
      const info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
      watches += info.split('\n').filter((line) => line.startsWith('inotify wd:')).length;
    }
    return watches;
  } catch {
    return null;
  }
}
