/**
 * The body of a nudge that carries segments (docs/FORMAT.md §13 is the normative description;
 * keep the two in step). Pure: bytes in, bytes out.
 *
 * A Primary tells replicas that a log grew (src/cluster/replica-nudger.ts). On a distributed file
 * system, reading the new bytes of a file another client appends to costs a replica a round trip
 * to the metadata server or more per look, so the nudge also carries the new segments, exactly as
 * they are in the log: a replica verifies and applies them as if it had read them, under the same
 * fence (docs/CLUSTER.md "Segments in nudges"). The log stays the truth; a replica that misses a
 * nudge, or cannot use what it carried, reads the log.
 *
 *   "LBNU" | u16 version (1) | u16 database count
 *   per database: u16 name length | name (UTF-8) | u32 segment count
 *                 per segment: u32 length | the segment's bytes
 *
 * Big-endian, like every Litebase format.
 */

export const NUDGE_CONTENT_TYPE = 'application/vnd.litebase.nudge';
export const NUDGE_FORMAT_VERSION = 1;

const MAGIC = Buffer.from('LBNU', 'ascii');
const MAX_NAME_BYTES = 0xffff;
const MAX_DATABASES = 0xffff;

export interface NudgeEntry {
  database: string;
  /** Whole segments (docs/FORMAT.md §2), ascending positions; may be empty (the log grew, no bytes). */
  segments: readonly Buffer[];
}

export class NudgeFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NudgeFormatError';
  }
}

export function encodeNudge(entries: readonly NudgeEntry[]): Buffer {
  if (entries.length > MAX_DATABASES) throw new NudgeFormatError(`a nudge names at most ${MAX_DATABASES} databases`);
  const names = entries.map((entry) => Buffer.from(entry.database, 'utf8'));
  let size = 8;
  entries.forEach((entry, index) => {
    const name = names[index] as Buffer;
    if (name.length > MAX_NAME_BYTES) throw new NudgeFormatError(`database name of ${name.length} bytes`);
    size += 2 + name.length + 4;
    for (const segment of entry.segments) size += 4 + segment.length;
  });
  const bytes = Buffer.allocUnsafe(size);
  MAGIC.copy(bytes, 0);
  bytes.writeUInt16BE(NUDGE_FORMAT_VERSION, 4);
  bytes.writeUInt16BE(entries.length, 6);
  let offset = 8;
  entries.forEach((entry, index) => {
    const name = names[index] as Buffer;
    offset = bytes.writeUInt16BE(name.length, offset);
    offset += name.copy(bytes, offset);
    offset = bytes.writeUInt32BE(entry.segments.length, offset);
    for (const segment of entry.segments) {
      offset = bytes.writeUInt32BE(segment.length, offset);
      bytes.set(segment, offset);
      offset += segment.length;
    }
  });
  return bytes;
}

/**
 * The entries of a nudge body. The segments are views into `bytes` (no copy); their content is
 * not checked here: a replica checks each as it checks a segment it reads from the log.
 */
export function decodeNudge(bytes: Buffer): NudgeEntry[] {
  const need = (offset: number, count: number, what: string): void => {
    if (offset + count > bytes.length) throw new NudgeFormatError(`nudge body ends inside ${what} (at byte ${offset})`);
  };
  need(0, 8, 'its header');
  if (!bytes.subarray(0, 4).equals(MAGIC)) throw new NudgeFormatError('not a nudge body (bad magic)');
  const version = bytes.readUInt16BE(4);
  if (version !== NUDGE_FORMAT_VERSION) throw new NudgeFormatError(`nudge format version ${version} is not supported`);
  const count = bytes.readUInt16BE(6);
  const entries: NudgeEntry[] = [];
  let offset = 8;
  for (let index = 0; index < count; index++) {
    need(offset, 2, 'a name length');
    const nameLength = bytes.readUInt16BE(offset);
    offset += 2;
    need(offset, nameLength, 'a database name');
    const database = bytes.toString('utf8', offset, offset + nameLength);
    offset += nameLength;
    need(offset, 4, 'a segment count');
    const segmentCount = bytes.readUInt32BE(offset);
    offset += 4;
    const segments: Buffer[] = [];
    for (let segment = 0; segment < segmentCount; segment++) {
      need(offset, 4, 'a segment length');
      const length = bytes.readUInt32BE(offset);
      offset += 4;
      need(offset, length, 'a segment');
      segments.push(bytes.subarray(offset, offset + length));
      offset += length;
    }
    entries.push({ database, segments });
  }
  if (offset !== bytes.length) throw new NudgeFormatError(`${bytes.length - offset} bytes after the last database of a nudge body`);
  return entries;
}
