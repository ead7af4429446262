import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';
import { CEPH_START, CEPH_STOP, cephInstalled, readCephSettings } from './ceph.js';

const run = promisify(execFile);

/**
 * Global setup of the `ceph` test project: when Ceph is installed, this process runs as root and
 * no cluster is described by the environment or infra/ceph's env file, it starts one with
 * infra/ceph/start.sh and stops it again after the tests. A cluster that was already running (CI
 * starts one in .ci/run) is left alone.
 */
export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  project.provide('cephStartFailure', '');
  if (readCephSettings() !== undefined || !cephInstalled()) return undefined;
  if (process.getuid?.() !== 0) {
    project.provide('cephStartFailure', 'Ceph is installed but not started, and only root can start it here (bash infra/ceph/start.sh)');
    return undefined;
  }
  try {
    await run('bash', [CEPH_START], { timeout: 300_000 });
  } catch (error) {
    const failed = error as Error & { stdout?: string; stderr?: string };
    project.provide('cephStartFailure', `infra/ceph/start.sh failed: ${failed.message}\n${failed.stderr ?? ''}`);
    return undefined;
  }
  return async () => {
    await run('bash', [CEPH_STOP], { timeout: 120_000 }).catch(() => undefined);
  };
}
