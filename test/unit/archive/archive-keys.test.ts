import { describe, expect, it } from 'vitest';
import {
  parseArchiveKey,
  archivePrefix,
  bundleKey,
  checkpointKey,
  indexKey,
  manifestKey,
  rangeKey,
} from '../../../src/archive/archive-keys.js';

/** Object keys of the archive (src/archive/archive-keys.ts). */
const ID = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';

describe('archive keys', () => {
  it('pads positions so keys sort like positions, and parses them back', () => {
    const prefix = archivePrefix('app', ID);
    expect(bundleKey('app', ID, 1n, 120n)).toBe(`databases/app/${ID}/segments/00000000000000000001-00000000000000000120.seg`);
    expect(checkpointKey('app', ID, 18446744073709551615n)).toBe(`databases/app/${ID}/checkpoints/18446744073709551615.ckpt`);
    expect(parseArchiveKey(prefix, bundleKey('app', ID, 7n, 9n))).toEqual({ kind: 'bundle', first: 7n, last: 9n });
    expect(parseArchiveKey(prefix, checkpointKey('app', ID, 5n))).toEqual({ kind: 'checkpoint', position: 5n });
    expect(parseArchiveKey(prefix, indexKey('app', ID))).toEqual({ kind: 'index' });
    expect(parseArchiveKey(prefix, `${prefix}segments/00000000000000000009-00000000000000000007.seg`)).toBeUndefined();
    expect(parseArchiveKey(prefix, `${prefix}other/x`)).toBeUndefined();
    expect(() => archivePrefix('../x', ID)).toThrow();
    expect(() => archivePrefix('app', 'not-an-id')).toThrow();
  });

  it('keeps a range file under its shared name and a manifest under its position', () => {
    const prefix = archivePrefix('app', ID);
    const file = '0000000003-00000000000000000120-9f00aa11bb22cc33.range';
    expect(rangeKey('app', ID, file)).toBe(`databases/app/${ID}/ranges/${file}`);
    expect(manifestKey('app', ID, 120n)).toBe(`databases/app/${ID}/manifests/00000000000000000120.json`);
    expect(parseArchiveKey(prefix, rangeKey('app', ID, file))).toEqual({ kind: 'range', file, index: 3, position: 120n });
    expect(parseArchiveKey(prefix, manifestKey('app', ID, 120n))).toEqual({ kind: 'manifest', position: 120n });
    expect(parseArchiveKey(prefix, `${prefix}ranges/0000000003-120-9f00aa11bb22cc33.range`)).toBeUndefined();
    expect(parseArchiveKey(prefix, `${prefix}manifests/120.json`)).toBeUndefined();
    expect(() => rangeKey('app', ID, '../x.range')).toThrow();
  });
});
