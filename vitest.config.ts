import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start real server processes; two cores, so keep parallelism modest.
    maxWorkers: 2,
    // The JSON report lets .ci/run print a plain 'N passed, N failed' closing line.
    reporters: ['default', ['json', { outputFile: '.tmp/vitest-report.json' }]],
    // The container tests run a cluster of containers and time its failover: they run alone,
    // after everything else, rather than beside other tests on two cores. The Ceph tests (a
    // one-host Ceph cluster, infra/ceph) kill mounts and daemons the whole group shares: they run
    // alone too, one file at a time, between the two.
    projects: [
      {
        extends: true,
        test: {
          name: 'main',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, 'test/containers/**', 'test/ceph/**'],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'ceph',
          include: ['test/ceph/**/*.test.ts'],
          globalSetup: ['test/support/ceph-global-setup.ts'],
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 120_000,
          sequence: { groupOrder: 1 },
        },
      },
      {
        extends: true,
        // One file at a time: each runs its own clusters, and two at once would time each other's failovers.
        test: { name: 'containers', include: ['test/containers/**/*.test.ts'], fileParallelism: false, sequence: { groupOrder: 2 } },
      },
    ],
  },
});
