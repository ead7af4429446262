import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import { pageHash } from '../../src/format/rolling-checksum.js';
import { decodeSegment } from '../../src/format/segment-codec.js';
import { decodeRecordFrame, TERM_LOG_FRAME_SIZE, TERM_LOG_HEADER_SIZE } from '../../src/format/term-log-codec.js';

/**
 * The files of a log folder (segment files or term log files), and how fast this machine can go through them without any
 * server: the reference a replica's catch-up is compared with, and a breakdown of what a replay
 * does per segment (read, decode and verify, hash the pages, write them), to show where its time
 * goes.
 */

/** Segment files and term log files (docs/FORMAT.md §1): the files a log is made of. */
const LOG_FILE = /^\d{20}(?:\.seg|-\d{20}\.tlog)$/;

export interface LogFiles {
  files: string[];
  /** Size of each file, same order. */
  sizes: number[];
  bytes: number;
  /** Segments the files hold (a term log file holds many). */
  segments: number;
}

/** The log files of `logDir` in position order, their total size and how many segments they hold. */
export function listSegments(logDir: string): LogFiles {
  const files = readdirSync(logDir)
    .filter((name) => LOG_FILE.test(name))
    .sort()
    .map((name) => path.join(logDir, name));
  const sizes = files.map((file) => statSync(file).size);
  const segments = files.reduce((count, file) => count + segmentsIn(readFileSync(file), file).length, 0);
  return { files, sizes, bytes: sizes.reduce((sum, size) => sum + size, 0), segments };
}

/** The segments a log file holds: itself, or each complete record of a term log file. */
export function segmentsIn(data: Buffer, file: string): Buffer[] {
  if (!file.endsWith('.tlog')) return [data];
  const segments: Buffer[] = [];
  let offset = TERM_LOG_HEADER_SIZE;
  for (;;) {
    const frame = decodeRecordFrame(data.subarray(offset, offset + TERM_LOG_FRAME_SIZE));
    if (frame.kind === 'none' || offset + TERM_LOG_FRAME_SIZE + frame.length > data.length) return segments;
    segments.push(data.subarray(offset + TERM_LOG_FRAME_SIZE, offset + TERM_LOG_FRAME_SIZE + frame.length));
    offset += TERM_LOG_FRAME_SIZE + frame.length;
  }
}

export interface ReadSpeed {
  bytes: number;
  seconds: number;
  mib_per_s: number;
}

const MIB = 1024 * 1024;

function speed(bytes: number, started: number): ReadSpeed {
  const seconds = (performance.now() - started) / 1000;
  return { bytes, seconds: Math.round(seconds * 1000) / 1000, mib_per_s: Math.round((bytes / MIB / seconds) * 10) / 10 };
}

/** Read every file once, one after the other (readFileSync: what a replay does per segment). */
export function plainRead(files: string[]): ReadSpeed {
  const started = performance.now();
  let bytes = 0;
  for (const file of files) bytes += readFileSync(file).length;
  return speed(bytes, started);
}

export interface PipelineSpeeds {
  /** read + decode (trailer SHA-256, header checks, LZ4). */
  read_decode: ReadSpeed;
  /** ... + a SHA-256 per page image (the rolling checksum a tailing replica keeps). */
  read_decode_hash: ReadSpeed;
  /** ... + the page writes into a scratch file (writeSync at the page's offset). */
  read_decode_hash_write: ReadSpeed;
  pages: number;
}

/**
 * A replay without a server, in this process, stage by stage: the difference between two stages is
 * what that stage costs. Bytes are the segment files' sizes, as for the plain read.
 */
export function pipelineSpeeds(files: string[], scratchFile: string): PipelineSpeeds {
  // Warm-up (JIT, the LZ4 addon, buffers), so the first stage is not charged for it.
  for (const file of files.slice(0, 2000)) {
    for (const segment of segmentsIn(readFileSync(file), file))
      for (const page of decodeSegment(segment).pages) pageHash(page.pageNumber, page.data);
  }
  let pages = 0;
  let started = performance.now();
  let bytes = 0;
  for (const file of files) {
    const data = readFileSync(file);
    bytes += data.length;
    for (const segment of segmentsIn(data, file)) pages += decodeSegment(segment).pages.length;
  }
  const readDecode = speed(bytes, started);

  started = performance.now();
  bytes = 0;
  for (const file of files) {
    const data = readFileSync(file);
    bytes += data.length;
    for (const segment of segmentsIn(data, file)) for (const page of decodeSegment(segment).pages) pageHash(page.pageNumber, page.data);
  }
  const readDecodeHash = speed(bytes, started);

  const fd = openSync(scratchFile, 'w');
  try {
    started = performance.now();
    bytes = 0;
    for (const file of files) {
      const data = readFileSync(file);
      bytes += data.length;
      for (const segment of segmentsIn(data, file)) {
        const { header, pages: images } = decodeSegment(segment);
        for (const page of images) {
          pageHash(page.pageNumber, page.data);
          writeSync(fd, page.data, 0, page.data.length, (page.pageNumber - 1) * header.pageSize);
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  const readDecodeHashWrite = speed(bytes, started);
  return { read_decode: readDecode, read_decode_hash: readDecodeHash, read_decode_hash_write: readDecodeHashWrite, pages };
}

/**
 * Drop `files` from the page cache (posix_fadvise DONTNEED), so the next read comes from the disk:
 * what a node on another machine reads, whose page cache never saw these files. Node has no
 * fadvise; python3 (on every machine of this kind) does. The files must be clean, which segments
 * are (each was fsynced). Returns why not, when it could not.
 */
export function evictFromPageCache(files: string[]): string | undefined {
  const script = [
    'import os, sys',
    'for line in sys.stdin:',
    '    path = line.rstrip("\\n")',
    '    if not path: continue',
    '    fd = os.open(path, os.O_RDONLY)',
    '    try: os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)',
    '    finally: os.close(fd)',
  ].join('\n');
  const result = spawnSync('python3', ['-c', script], { input: files.join('\n'), encoding: 'utf8', maxBuffer: 1 << 20 });
  if (result.error) return `python3 could not run (${result.error.message})`;
  if (result.status !== 0) return `python3 failed: ${result.stderr.trim().split('\n').at(-1) ?? ''}`;
  return undefined;
}
