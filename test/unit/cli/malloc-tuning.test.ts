import { describe, expect, it } from 'vitest';
import { fixMmapThreshold } from '../../../src/cli/malloc-tuning.js';

/**
 * `litebase serve` fixing glibc's mmap threshold (src/cli/malloc-tuning.ts,
 * src/native/malloc-tuning.c). Whether large blocks then go back to the system is measured by
 * `npm run bench -- memory`; here, which way each case goes.
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
