import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { LeaseHolder } from './election.js';

/**
 * This process as lease.json records it (`LeaseHolder`, src/cluster/election.ts). `instance` is
 * the id of the local folder whose lock this process holds (src/storage/local-dir-lock.ts).
 *
 * The host's identity is its machine id (systemd's /etc/machine-id, or D-Bus's copy) with the host
 * name: a container has no machine id of its own but keeps its host name across restarts, and a
 * local folder copied to another machine keeps its instance id but not its host.
 */
export function processIdentity(instance: string): LeaseHolder {
  const machineId = firstReadable(['/etc/machine-id', '/var/lib/dbus/machine-id']);
  return {
    host: `${machineId ?? 'no-machine-id'}/${hostname()}`,
    instance,
    life: randomUUID(),
    pid: process.pid,
    boot: firstReadable(['/proc/sys/kernel/random/boot_id']) ?? '',
  };
}

function firstReadable(files: string[]): string | undefined {
  for (const file of files) {
    try {
      const text = readFileSync(file, 'utf8').trim();
      if (text !== '') return text;
    } catch {
      // not on this system
    }
  }
  return undefined;
}
