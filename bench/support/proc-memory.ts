import { readFileSync } from 'node:fs';

/**
 * A process's memory and I/O as Linux reports them in /proc, read from outside (no hook in the
 * server): VmRSS sampled every `everyMs` with the peak kept per phase, VmHWM (the kernel's own peak
 * RSS) at the end, the resident memory of its child processes (Litebase's read processes), and
 * /proc/PID/io. Linux only; elsewhere every figure is null.
 */

const KIB = 1024;
const MIB = 1024 * 1024;

/** VmRSS and VmHWM of /proc/PID/status, in bytes (one read for both). */
function memoryOf(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(status);
    const hwm = /^VmHWM:\s+(\d+) kB/m.exec(status);
    return rss && hwm ? { rss: Number(rss[1]) * KIB, hwm: Number(hwm[1]) * KIB } : undefined;
  } catch {
    return undefined;
  }
}

/** The direct children of `pid` (every thread's children file). */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  try {
    const tasks = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8');
    for (const word of tasks.trim().split(/\s+/)) if (/^\d+$/.test(word)) children.push(Number(word));
  } catch {
    // gone, or not Linux
  }
  return children;
}

/** /proc/PID/io: rchar/wchar count every read/write call (page cache hits too), *_bytes what reached the block layer. */
export interface ProcIo {
  rchar: number;
  wchar: number;
  read_bytes: number;
  write_bytes: number;
}

export function procIo(pid: number | undefined): ProcIo | null {
  if (pid === undefined) return null;
  try {
    const fields = new Map<string, number>();
    for (const line of readFileSync(`/proc/${pid}/io`, 'utf8').split('\n')) {
      const [name, value] = line.split(':');
      if (name && value) fields.set(name.trim(), Number(value.trim()));
    }
    return {
      rchar: fields.get('rchar') ?? 0,
      wchar: fields.get('wchar') ?? 0,
      read_bytes: fields.get('read_bytes') ?? 0,
      write_bytes: fields.get('write_bytes') ?? 0,
    };
  } catch {
    return null;
  }
}

/** b - a, field by field; null when either is missing. */
export function ioDelta(a: ProcIo | null, b: ProcIo | null): ProcIo | null {
  if (!a || !b) return null;
  return {
    rchar: b.rchar - a.rchar,
    wchar: b.wchar - a.wchar,
    read_bytes: b.read_bytes - a.read_bytes,
    write_bytes: b.write_bytes - a.write_bytes,
  };
}

export interface MemoryReport {
  /** Highest VmRSS sampled, MiB. */
  peak_rss_mib: number | null;
  /** VmHWM at the end (the kernel's peak, which sampling cannot miss), MiB. */
  hwm_mib: number | null;
  /** Highest sampled VmRSS per phase, MiB. */
  peak_rss_by_phase_mib: Record<string, number>;
  /** Highest sampled VmRSS of the process plus its children (read processes), MiB. */
  peak_rss_with_children_mib: number | null;
  samples: number;
}

export class MemorySampler {
  private readonly timer: NodeJS.Timeout;
  private phase: string;
  private peak = 0;
  private peakWithChildren = 0;
  private readonly byPhase: Record<string, number> = {};
  private hwm: number | undefined;
  private samples = 0;

  /** Samples count for `phase` until setPhase() names another. */
  constructor(
    private readonly pid: number | undefined,
    phase = 'start',
    everyMs = 100,
  ) {
    this.phase = phase;
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  /** Later samples count for `name`. */
  setPhase(name: string): void {
    this.sample();
    this.phase = name;
    this.sample();
  }

  /** Stop sampling; call while the process still runs, so VmHWM can be read. */
  stop(): MemoryReport {
    clearInterval(this.timer);
    this.sample();
    const mib = (bytes: number): number => Math.round((bytes / MIB) * 10) / 10;
    const byPhase: Record<string, number> = {};
    for (const [phase, bytes] of Object.entries(this.byPhase)) byPhase[phase] = mib(bytes);
    return {
      peak_rss_mib: this.samples > 0 ? mib(this.peak) : null,
      hwm_mib: this.hwm === undefined ? null : mib(this.hwm),
      peak_rss_by_phase_mib: byPhase,
      peak_rss_with_children_mib: this.samples > 0 ? mib(this.peakWithChildren) : null,
      samples: this.samples,
    };
  }

  private sample(): void {
    if (this.pid === undefined) return;
    const memory = memoryOf(this.pid);
    if (memory === undefined) return;
    this.samples++;
    // VmHWM is kept from every sample: once the process has exited it cannot be read any more.
    this.hwm = memory.hwm;
    this.peak = Math.max(this.peak, memory.rss);
    this.byPhase[this.phase] = Math.max(this.byPhase[this.phase] ?? 0, memory.rss);
    let total = memory.rss;
    for (const child of childrenOf(this.pid)) total += memoryOf(child)?.rss ?? 0;
    this.peakWithChildren = Math.max(this.peakWithChildren, total);
  }
}
