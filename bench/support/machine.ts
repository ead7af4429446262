import { readFileSync, statfsSync } from 'node:fs';
import os from 'node:os';

export interface MachineInfo {
  cpus: number;
  cpu_model: string;
  node_version: string;
  platform: string;
  arch: string;
  total_memory_gb: number;
  /** 1-minute load average when the benchmark started: a busy machine explains a low number. */
  load_average_1m: number;
  /** Directory holding the databases, and its file system: fsync cost depends entirely on it. */
  tmp_dir: string;
  tmp_filesystem: string;
}

/** statfs magic numbers for the file systems a benchmark is likely to land on. */
const FILESYSTEMS: Record<number, string> = {
  0xef53: 'ext4',
  0x01021994: 'tmpfs',
  0x58465342: 'xfs',
  0x9123683e: 'btrfs',
  0x794c7630: 'overlayfs',
  0x2fc12fc1: 'zfs',
  0x6969: 'nfs',
  0x65735546: 'fuse',
  0x1021997: 'v9fs',
};

export function filesystemOf(dir: string): string {
  try {
    const type = statfsSync(dir).type;
    return FILESYSTEMS[type] ?? `unknown (0x${type.toString(16)})`;
  } catch {
    return 'unknown';
  }
}

/**
 * The type of the mount `dir` is on, as /proc/mounts names it (`fuse.ceph-fuse` where statfs only
 * says `fuse`); statfs's answer where /proc/mounts cannot be read.
 */
export function mountTypeOf(dir: string): string {
  try {
    let best = { mountpoint: '', type: '' };
    for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
      const [, mountpoint, type] = line.split(' ');
      if (!mountpoint || !type) continue;
      // /proc/mounts escapes spaces as \040.
      const point = mountpoint.replace(/\\040/g, ' ');
      const inside = dir === point || dir.startsWith(point.endsWith('/') ? point : `${point}/`);
      if (inside && point.length >= best.mountpoint.length) best = { mountpoint: point, type };
    }
    return best.type || filesystemOf(dir);
  } catch {
    return filesystemOf(dir);
  }
}

export function machineInfo(tmpDir: string): MachineInfo {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpu_model: cpus[0]?.model.trim() ?? 'unknown',
    node_version: process.version,
    platform: os.platform(),
    arch: os.arch(),
    total_memory_gb: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    load_average_1m: Math.round((os.loadavg()[0] ?? 0) * 100) / 100,
    tmp_dir: tmpDir,
    tmp_filesystem: filesystemOf(tmpDir),
  };
}

/** CPU use during a window, in percent of one core (200 = both cores of a 2-core machine busy). */
export interface CpuUsage {
  /** The server process under test. */
  server_pct: number | null;
  /** This process: the load generator (autocannon), or raw SQLite. */
  bench_pct: number;
  /** Everything else on the machine: high values mean the figures are disturbed by other work. */
  other_pct: number | null;
  /** All cores available, for reading the above (cpus x 100). */
  capacity_pct: number;
}

/** Linux reports process and machine CPU time in clock ticks; 100 per second on every common build. */
const TICKS_PER_SECOND = 100;

function machineTicks(): { busy: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const fields = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already inside user).
    // irq and softirq are left out: loopback networking for our own requests runs there, and
    // is not charged to either process, so counting it would show our own traffic as "other".
    // steal stays in: time the hypervisor gave to another guest is time taken from this benchmark.
    const [user = 0, nice = 0, system = 0, , , , , steal = 0] = fields;
    return { busy: user + nice + system + steal };
  } catch {
    return undefined;
  }
}

function processTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces; fields after its closing parenthesis are fixed.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of the full line)
  } catch {
    return undefined;
  }
}

/**
 * Measures who used the CPU during a load window. On a 2-core machine the server, the load
 * generator and anything else running share two cores, so a figure means little without this.
 * Linux only (/proc); elsewhere server and other usage are null.
 */
export class CpuMonitor {
  private readonly startedAt = performance.now();
  private readonly startBench = process.cpuUsage();
  private readonly startMachine = machineTicks();
  private readonly startServer: number | undefined;

  constructor(private readonly serverPid: number | undefined) {
    this.startServer = serverPid === undefined ? undefined : processTicks(serverPid);
  }

  stop(): CpuUsage {
    const seconds = (performance.now() - this.startedAt) / 1000;
    const bench = process.cpuUsage(this.startBench);
    const benchPct = ((bench.user + bench.system) / 1e6 / seconds) * 100;
    const endServer = this.serverPid === undefined ? undefined : processTicks(this.serverPid);
    const serverPct =
      this.startServer !== undefined && endServer !== undefined
        ? ((endServer - this.startServer) / TICKS_PER_SECOND / seconds) * 100
        : null;
    const endMachine = machineTicks();
    const machinePct =
      this.startMachine && endMachine ? ((endMachine.busy - this.startMachine.busy) / TICKS_PER_SECOND / seconds) * 100 : null;
    const otherPct = machinePct !== null && serverPct !== null ? Math.max(0, machinePct - serverPct - benchPct) : null;
    const one = (value: number | null): number | null => (value === null ? null : Math.round(value));
    return {
      server_pct: one(serverPct),
      bench_pct: Math.round(benchPct),
      other_pct: one(otherPct),
      capacity_pct: os.cpus().length * 100,
    };
  }
}
