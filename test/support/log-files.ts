import { readdirSync } from 'node:fs';
import { decodeSegment, type SegmentHeader } from '../../src/format/segment-codec.js';
import { LogDirectory } from '../../src/log/log-directory.js';

/**
 * The log's segment headers as a reader accepts them (segment files or term log records, through
 * LogDirectory), read synchronously from the first position the folder holds to the last.
 */
export function logHeaders(logDir: string): SegmentHeader[] {
  const log = new LogDirectory(logDir);
  const scratch = Buffer.alloc(1 << 20);
  const headers: SegmentHeader[] = [];
  let position = firstPosition(logDir);
  for (;;) {
    let bytes: Buffer | undefined;
    try {
      bytes = log.readSyncInto(position, scratch);
    } catch {
      return headers;
    }
    if (!bytes) return headers;
    headers.push(decodeSegment(bytes).header);
    position += 1n;
  }
}

/** The first position a log folder holds: its oldest segment file or term log file (1 when empty). */
function firstPosition(logDir: string): bigint {
  const firsts = readdirSync(logDir)
    .map((name) => /^(\d{20})(?:\.seg|-\d{20}\.tlog)$/.exec(name)?.[1])
    .filter((first): first is string => first !== undefined)
    .map((first) => BigInt(first))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return firsts[0] ?? 1n;
}
