import { readFileSync, writeFileSync } from 'node:fs';

/**
 * Resident memory of a process, from /proc/PID/status (Linux): VmRSS now, VmHWM the peak since the
 * process started or since the peak was last reset. Writing "5" to /proc/PID/clear_refs resets the
 * peak to the current RSS (Linux 4.0 and later; needs the right to write it: the same user), so one
 * long-lived process can be given a peak per phase. Where that fails, the peak is only what the
 * samples saw (one every `everyMs`).
 */
export interface RssReading {
  rssKiB: number;
  hwmKiB: number;
}

export function readRss(pid: number): RssReading | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined; // gone, or not Linux
  }
  const rss = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
  const hwm = /^VmHWM:\s+(\d+) kB/m.exec(status)?.[1];
  if (rss === undefined || hwm === undefined) return undefined;
  return { rssKiB: Number(rss), hwmKiB: Number(hwm) };
}

/** Resets the peak (VmHWM) to the current RSS; false when the kernel would not. */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

export interface PhasePeak {
  /** RSS when the phase started, MiB (what earlier work left resident counts in the peak too). */
  startMiB: number;
  /** The peak RSS of the phase, MiB: the larger of VmHWM (when it could be reset) and every sample. */
  peakMiB: number;
  /** RSS at the end of the phase, MiB. */
  endMiB: number;
  /** Whether the kernel's peak counted (reset at the start): else only samples did. */
  exact: boolean;
  samples: number;
}

const KIB_PER_MIB = 1024;

/**
 * Samples one process's RSS every `everyMs` from `start()` to `stop()`. With `sinceStart` the peak
 * is not reset: VmHWM then covers the process's whole life (a node measured from its spawn).
 */
export class RssSampler {
  private timer: ReturnType<typeof setInterval> | undefined;
  private maxKiB = 0;
  private startKiB = 0;
  private count = 0;
  private exact = false;

  constructor(
    readonly pid: number,
    private readonly everyMs = 100,
  ) {}

  start(options: { sinceStart?: boolean } = {}): void {
    this.maxKiB = 0;
    this.count = 0;
    this.exact = options.sinceStart === true || resetPeak(this.pid);
    this.startKiB = readRss(this.pid)?.rssKiB ?? 0;
    this.sample();
    this.timer = setInterval(() => this.sample(), this.everyMs);
    this.timer.unref();
  }

  /** The phase's figures; undefined when the process could not be read at all. */
  stop(): PhasePeak | undefined {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    const last = readRss(this.pid);
    if (last) this.maxKiB = Math.max(this.maxKiB, last.rssKiB, this.exact ? last.hwmKiB : 0);
    if (this.count === 0 && !last) return undefined;
    return {
      startMiB: Math.round((this.startKiB / KIB_PER_MIB) * 10) / 10,
      peakMiB: Math.round((this.maxKiB / KIB_PER_MIB) * 10) / 10,
      endMiB: last ? Math.round((last.rssKiB / KIB_PER_MIB) * 10) / 10 : 0,
      exact: this.exact,
      samples: this.count,
    };
  }

  private sample(): void {
    const reading = readRss(this.pid);
    if (!reading) return;
    this.count += 1;
    this.maxKiB = Math.max(this.maxKiB, reading.rssKiB, this.exact ? reading.hwmKiB : 0);
  }
}
