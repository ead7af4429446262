import { describe, expect, it } from 'vitest';
import { fixMmapThreshold, releaseFreeMemory } from '../../../src/native/malloc-tuning.js';

/**
 * glibc's allocator tuned through src/native/malloc-tuning.c (src/native/malloc-tuning.ts): the mmap
 * threshold `litebase serve` fixes, and the trim after heavy work. Whether memory then goes back to
 * the system is measured by `npm run bench -- memory`; here, which way each case goes.
 */
describe('fixMmapThreshold', () => {
  it('sets the threshold through the native library on glibc', () => {
    const glibc =
      process.platform === 'linux' &&
      (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime !== undefined;
    expect(fixMmapThreshold(128 * 1024, {})).toBe(glibc ? 'set' : 'unsupported');
    // What mallopt refuses (above glibc's 32 MiB ceiling) is reported, not thrown.
    if (glibc) expect(fixMmapThreshold(64 * 1024 * 1024, {})).toBe('refused');
  });

  it("leaves the environment's own setting, and does nothing when off or not built", () => {
    expect(fixMmapThreshold(128 * 1024, { MALLOC_MMAP_THRESHOLD_: '65536' })).toBe('environment');
    expect(fixMmapThreshold(128 * 1024, { GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=65536' })).toBe('environment');
    expect(fixMmapThreshold(0, {})).toBe('off');
    if (process.platform === 'linux') expect(fixMmapThreshold(128 * 1024, {}, () => undefined)).toBe('not-built');
  });
});

describe('releaseFreeMemory', () => {
  it('trims through the native library on Linux, and answers false where it cannot run', () => {
    expect(releaseFreeMemory()).toBe(process.platform === 'linux');
    // A second call reuses the statement prepared by the first.
    expect(releaseFreeMemory()).toBe(process.platform === 'linux');
  });
});
