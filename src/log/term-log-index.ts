import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { LitebaseError, systemErrorCode } from '../errors.js';
import {
  decodeRecordFrame,
  decodeTermLogHeader,
  parseTermLogFileName,
  TERM_LOG_FRAME_SIZE,
  TERM_LOG_HEADER_SIZE,
} from '../format/term-log-codec.js';

/** Where one segment's bytes lie: `length` bytes at `offset` of `file` (to its end when undefined). */
export interface SegmentLocation {
  file: string;
  offset: number;
  length: number | undefined;
}

/** One term log file as far as it has been read. */
interface TermLogFile {
  name: string;
  file: string;
  firstPosition: bigint;
  term: bigint;
  /** Offset and length of each complete record found so far; record i is position first + i. */
  records: Array<{ offset: number; length: number }>;
  /** Where the next frame would start. */
  scanned: number;
  headerChecked: boolean;
}

/** Accepted positions `from..to` of one file. */
interface AcceptedRange {
  file: TermLogFile;
  from: bigint;
  to: bigint;
}

export interface TermLogIndexOptions {
  /**
   * `cluster/terms` of the shared folder: a record of term T is accepted, while no file of a
   * higher term exists, only if `<termsDir>/<T+1>` does not exist after the record was read.
   */
  termsDir: string;
  /**
   * This reader is the Primary of this term, which it claimed before reading: it accepts every
   * complete record of a lower term, and seals the log after the last one (docs/FORMAT.md §1.2).
   */
  writerTerm?: bigint;
}

/** A kept descriptor is opened anew after this long (scan). */
const REOPEN_MS = 1000;
/** Records are read in windows of up to this many bytes (readRecord). */
const READ_WINDOW_BYTES = 4 * 1024 * 1024;

/**
 * The term log files of one log folder, read incrementally: which positions they hold and which of
 * those a reader may accept (the fence of docs/FORMAT.md §1.2). Synchronous, so that the replay
 * loops, which read a segment at a time synchronously, can ask for the next one. Accepted
 * positions never change; a refresh only adds to them.
 */
export class TermLogIndex {
  private files: TermLogFile[] = [];
  private ranges: AcceptedRange[] = [];
  /**
   * A descriptor per file, opened anew at each look for new records and kept for the reads that
   * follow: on a distributed file system an open of a file another client is appending to costs a
   * round trip to the metadata server (on CephFS, a capability revocation), and one per segment
   * read held a tailing replica seconds behind. Opened anew per look, so a file system that
   * revalidates at open (NFS's close-to-open) shows what was appended since.
   */
  private readonly fds = new Map<string, number>();
  /** What the last read window holds (readRecord). */
  private window: { file: string; start: number; length: number } | undefined;
  /** When each kept descriptor was opened (performance.now()). */
  private readonly openedAt = new Map<string, number>();
  private windowBuffer: Buffer | undefined;

  constructor(
    readonly dir: string,
    private readonly options: TermLogIndexOptions,
  ) {}

  /** True once any term log file was seen: the log continues in term files from `firstPosition()`. */
  get active(): boolean {
    return this.files.length > 0;
  }

  /** The smallest first position of the term files (segment files at or past it are not the log). */
  firstPosition(): bigint | undefined {
    return this.files[0]?.firstPosition;
  }

  /** The highest accepted position, or undefined when none is. */
  lastAccepted(): bigint | undefined {
    return this.ranges.at(-1)?.to;
  }

  /** Accepted positions, ascending. */
  positions(): bigint[] {
    const positions: bigint[] = [];
    for (const range of this.ranges) for (let position = range.from; position <= range.to; position++) positions.push(position);
    return positions;
  }

  /** Where accepted segment `position` is, or undefined when it is not (yet) accepted. */
  locate(position: bigint): SegmentLocation | undefined {
    for (let index = this.ranges.length - 1; index >= 0; index--) {
      const range = this.ranges[index] as AcceptedRange;
      if (position > range.to) return undefined;
      if (position >= range.from) {
        const record = range.file.records[Number(position - range.file.firstPosition)] as { offset: number; length: number };
        return { file: range.file.file, offset: record.offset, length: record.length };
      }
    }
    return undefined;
  }

  /**
   * Take in the folder's current term log files (`names`: a listing of the folder) and read on
   * from where each was read last; then accept what the fence allows.
   */
  refresh(names: readonly string[]): void {
    const present = new Set<string>();
    for (const name of names) {
      const parsed = parseTermLogFileName(name);
      if (!parsed) continue;
      present.add(name);
      if (!this.files.some((file) => file.name === name)) {
        this.files.push({
          name,
          file: path.join(this.dir, name),
          ...parsed,
          records: [],
          scanned: TERM_LOG_HEADER_SIZE,
          headerChecked: false,
        });
      }
    }
    // Files removed by a trim: forget them and the positions they held.
    for (const file of this.files) if (!present.has(file.name)) this.closeFd(file.file);
    this.files = this.files.filter((file) => present.has(file.name));
    this.ranges = this.ranges.filter((range) => present.has(range.file.name));
    this.files.sort((a, b) => (a.firstPosition === b.firstPosition ? compare(a.term, b.term) : compare(a.firstPosition, b.firstPosition)));
    this.extend();
  }

  /**
   * Files that hold nothing a reader needs once the log is checkpointed through `through`: every
   * position a file holds is at or before it, and the log goes on in a later file of the same or a
   * higher term (so the file a writer still appends to stays, whatever a deposed writer created); and files no position is read from any more (shadowed by a
   * higher term's file, or left empty) that start at or before it.
   */
  removableThrough(through: bigint): string[] {
    const last = this.ranges.at(-1);
    if (!last) return [];
    const removable: string[] = [];
    for (const file of this.files) {
      const range = this.ranges.find((candidate) => candidate.file === file);
      if (range) {
        const continued = this.files.some(
          (other) =>
            other !== file && other.term >= file.term && other.firstPosition > file.firstPosition && other.firstPosition <= range.to + 1n,
        );
        if (range.to <= through && continued) removable.push(file.file);
      } else if (file.firstPosition <= last.from && file.firstPosition <= through + 1n) {
        removable.push(file.file);
      }
    }
    return removable;
  }

  private extend(): void {
    const rescanned = new Set<TermLogFile>();
    const candidates: Array<{ file: TermLogFile; position: bigint }> = [];
    let position: bigint | undefined;
    for (;;) {
      if (this.files.length === 0) return;
      position ??= (this.lastAccepted() ?? this.firstAfterTrim() - 1n) + 1n;
      const file = this.authoritative(position);
      if (!file) break;
      const index = Number(position - file.firstPosition);
      if (index >= file.records.length && !rescanned.has(file)) {
        rescanned.add(file);
        if (!this.scan(file)) {
          // Removed (trimmed) since the folder was listed: as if it had not been listed.
          this.files = this.files.filter((candidate) => candidate !== file);
          this.ranges = this.ranges.filter((range) => range.file !== file);
          if (candidates.some((candidate) => candidate.file === file)) return;
          if (candidates.length === 0) position = undefined;
          continue;
        }
      }
      if (index >= file.records.length) break;
      candidates.push({ file, position });
      position++;
    }
    if (candidates.length === 0) return;
    const highestFileTerm = this.files.reduce((highest, file) => (file.term > highest ? file.term : highest), 0n);
    // Read first, then look for a higher term: a record found before the next term was claimed
    // is one that term's Primary sees and seals after (docs/FORMAT.md §1.2).
    const openTerm = candidates.at(-1)?.file.term as bigint;
    const openTermSealed = highestFileTerm > openTerm || (this.options.writerTerm !== undefined && this.options.writerTerm > openTerm);
    const openTermAccepted = openTermSealed || !this.termExists(openTerm + 1n);
    for (const { file, position: at } of candidates) {
      if (file.term === openTerm && !openTermAccepted) break;
      this.accept(file, at);
    }
  }

  /** Where term files begin after the oldest ones were removed: the first file's first position. */
  private firstAfterTrim(): bigint {
    return (this.files[0] as TermLogFile).firstPosition;
  }

  /**
   * The file that holds position `position` if any does: of the files that start at or before it,
   * the one of the highest term (of those, the one that starts last). A file of a higher term that
   * starts at or before a position overrides every lower term's record there.
   */
  private authoritative(position: bigint): TermLogFile | undefined {
    let best: TermLogFile | undefined;
    for (const file of this.files) {
      if (file.firstPosition > position) break;
      if (!best || file.term > best.term || (file.term === best.term && file.firstPosition > best.firstPosition)) best = file;
    }
    return best;
  }

  private accept(file: TermLogFile, position: bigint): void {
    const last = this.ranges.at(-1);
    if (last && last.file === file && last.to + 1n === position) last.to = position;
    else this.ranges.push({ file, from: position, to: position });
  }

  private termExists(term: bigint): boolean {
    try {
      statSync(path.join(this.options.termsDir, term.toString()));
      return true;
    } catch (error) {
      if (systemErrorCode(error) === 'ENOENT') return false;
      throw error;
    }
  }

  /** A descriptor of `file` for reads (src/log/log-directory.ts): the one of its last look, or a new one. Not to be closed. */
  fdFor(file: string): number {
    let fd = this.fds.get(file);
    if (fd === undefined) {
      fd = openSync(file, 'r');
      this.fds.set(file, fd);
    }
    return fd;
  }

  /**
   * The bytes of the record at `location`, copied into `target` (its length), read through the
   * file's kept descriptor in windows of up to READ_WINDOW_BYTES: the records that follow come
   * from the same read. On CephFS each read of a file another client appends to goes to the
   * storage daemons (about 5 ms); a read per segment kept a tailing replica far behind.
   */
  readRecord(location: SegmentLocation & { length: number }, target: Buffer): boolean {
    const window = this.window;
    if (
      !window ||
      window.file !== location.file ||
      location.offset < window.start ||
      location.offset + location.length > window.start + window.length
    ) {
      const file = this.files.find((candidate) => candidate.file === location.file);
      const known = file ? file.scanned : location.offset + location.length;
      const length = Math.max(location.length, Math.min(READ_WINDOW_BYTES, known - location.offset));
      if (length > READ_WINDOW_BYTES) {
        // Larger than a window: read on its own.
        return readFully(this.fdFor(location.file), target, location.offset);
      }
      this.windowBuffer ??= Buffer.allocUnsafe(READ_WINDOW_BYTES);
      const buffer = this.windowBuffer.subarray(0, length);
      if (!readFully(this.fdFor(location.file), buffer, location.offset)) {
        this.window = undefined;
        return false;
      }
      this.window = { file: location.file, start: location.offset, length };
    }
    const at = location.offset - this.window!.start;
    (this.windowBuffer as Buffer).copy(target, 0, at, at + location.length);
    return true;
  }

  /** Close every descriptor kept (the reader is done). */
  close(): void {
    for (const file of [...this.fds.keys()]) this.closeFd(file);
  }

  private closeFd(file: string): void {
    if (this.window?.file === file) this.window = undefined;
    this.openedAt.delete(file);
    const fd = this.fds.get(file);
    this.fds.delete(file);
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // already unusable
      }
    }
  }

  /**
   * Read `file`'s complete records past the last one found; false when the file is gone. The new
   * bytes are read in one go (up to a window) and kept for readRecord: the records a reader reads
   * next come from this read. The descriptor is opened anew at most once a second, which is what
   * a file system that revalidates at open (NFS) needs to show what was appended since.
   */
  private scan(file: TermLogFile): boolean {
    let fd: number;
    const opened = this.openedAt.get(file.file);
    if (opened === undefined || performance.now() - opened > REOPEN_MS) {
      this.closeFd(file.file);
      try {
        fd = openSync(file.file, 'r');
      } catch (error) {
        if (systemErrorCode(error) === 'ENOENT') return false;
        throw error;
      }
      this.fds.set(file.file, fd);
      this.openedAt.set(file.file, performance.now());
    } else {
      fd = this.fds.get(file.file) as number;
    }
    try {
      const size = fstatSync(fd).size;
      if (!file.headerChecked) {
        // A file just created exclusively may not have its header yet: not part of the log so far.
        if (size < TERM_LOG_HEADER_SIZE) return true;
        const header = Buffer.alloc(TERM_LOG_HEADER_SIZE);
        readSync(fd, header, 0, TERM_LOG_HEADER_SIZE, 0);
        const decoded = decodeTermLogHeader(header, file.file);
        if (decoded.firstPosition !== file.firstPosition || decoded.term !== file.term) {
          throw new LitebaseError(
            'TERM_LOG_CORRUPT',
            `${file.file}: its header names position ${decoded.firstPosition} and term ${decoded.term}, not those of its name`,
          );
        }
        file.headerChecked = true;
      }
      while (file.scanned + TERM_LOG_FRAME_SIZE <= size) {
        // The new bytes in one read (a window), or from the window already read.
        const window = this.window;
        if (
          !window ||
          window.file !== file.file ||
          file.scanned < window.start ||
          file.scanned + TERM_LOG_FRAME_SIZE > window.start + window.length
        ) {
          this.windowBuffer ??= Buffer.allocUnsafe(READ_WINDOW_BYTES);
          const length = readSync(fd, this.windowBuffer, 0, Math.min(READ_WINDOW_BYTES, size - file.scanned), file.scanned);
          this.window = { file: file.file, start: file.scanned, length };
          if (length < TERM_LOG_FRAME_SIZE) break;
        }
        const current = this.window as { start: number; length: number };
        const at = file.scanned - current.start;
        const frame = decodeRecordFrame((this.windowBuffer as Buffer).subarray(at, at + TERM_LOG_FRAME_SIZE));
        if (frame.kind === 'none') break;
        const end = file.scanned + TERM_LOG_FRAME_SIZE + frame.length;
        if (end > size) break;
        file.records.push({ offset: file.scanned + TERM_LOG_FRAME_SIZE, length: frame.length });
        if (end > current.start + current.length) {
          // The record goes past the window: the next frame is read anew.
          this.window = undefined;
        }
        file.scanned = end;
      }
      // The window holds complete records only: what lies past them may still be written.
      if (this.window?.file === file.file) {
        this.window.length = Math.min(this.window.length, Math.max(0, file.scanned - this.window.start));
      }
    } catch (error) {
      this.closeFd(file.file);
      throw error;
    }
    return true;
  }
}

function compare(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Fill `target` from `fd` at `offset`; false when the file ends first. */
function readFully(fd: number, target: Buffer, offset: number): boolean {
  let filled = 0;
  while (filled < target.length) {
    const read = readSync(fd, target, filled, target.length - filled, offset + filled);
    if (read === 0) return false;
    filled += read;
  }
  return true;
}
