import { describe, expect, it } from 'vitest';
import { decodeNudge, encodeNudge, NudgeFormatError, type NudgeEntry } from '../../../src/format/nudge-codec.js';

/** The nudge body of docs/FORMAT.md §13. */
const entries: NudgeEntry[] = [
  { database: 'app', segments: [Buffer.from('first segment'), Buffer.from('second')] },
  { database: 'ünïcode', segments: [] },
  { database: 'b', segments: [Buffer.alloc(0), Buffer.alloc(2_000, 7)] },
];

describe('nudge codec', () => {
  it('round-trips databases and their segments', () => {
    const decoded = decodeNudge(encodeNudge(entries));
    expect(decoded.map((entry) => ({ database: entry.database, segments: entry.segments.map((bytes) => Buffer.from(bytes)) }))).toEqual(
      entries,
    );
  });

  it('lays the bytes out as the document says', () => {
    const bytes = encodeNudge([{ database: 'ab', segments: [Buffer.from([1, 2, 3])] }]);
    // "LBNU", version 1, 1 database; name length 2, "ab", 1 segment; length 3, the bytes.
    expect(bytes.toString('hex')).toBe('4c424e55' + '0001' + '0001' + '0002' + '6162' + '00000001' + '00000003' + '010203');
  });

  it('refuses every truncation, trailing bytes, another magic or version', () => {
    const bytes = encodeNudge(entries);
    for (let length = 0; length < bytes.length; length++) {
      expect(() => decodeNudge(bytes.subarray(0, length)), `truncated to ${length}`).toThrow(NudgeFormatError);
    }
    expect(() => decodeNudge(Buffer.concat([bytes, Buffer.from([0])]))).toThrow(/after the last database/);
    const magic = Buffer.from(bytes);
    magic[0] = 0x58;
    expect(() => decodeNudge(magic)).toThrow(/magic/);
    const version = Buffer.from(bytes);
    version.writeUInt16BE(2, 4);
    expect(() => decodeNudge(version)).toThrow(/version 2/);
  });
});
