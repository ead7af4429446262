import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseRangeFileName } from '../../format/checkpoint-manifest.js';
import { checkpointPageHashes } from '../../replay/checkpoints.js';
import { formatChecksum } from '../../format/rolling-checksum.js';
import { SEGMENT_HEADER_SIZE, SEGMENT_TRAILER_SIZE } from '../../format/segment-codec.js';
import { SegmentFileReader } from '../../log/segment-stream.js';
import { headerIfReadable, locateInContainer } from './segment.js';
import { headerReport, problemOf, type CheckpointReport, type InspectOptions, type InspectReport } from './report.js';

/** A checkpoint's name on the shared file system and in the archive: its position, 20 digits. */
const CHECKPOINT_NAME = /(?:^|[\\/])(\d{20})\.ckpt$/;

/**
 * Locating damage after a failed trailer decodes the file in memory; checkpoints larger than this
 * are only reported as failing their trailer (a load would refuse them the same way).
 */
const LOCATE_MAX_BYTES = 64 * 1024 * 1024;

/**
 * Describes and verifies a legacy checkpoint or a range file (docs/FORMAT.md §8) as a load reads it (the streaming reader, a chunk at a
 * time, so memory stays one chunk whatever the database size), without writing its pages anywhere.
 */
export async function inspectCheckpoint(
  file: string,
  size: number,
  options: InspectOptions,
  kind: 'checkpoint' | 'range' = 'checkpoint',
): Promise<InspectReport> {
  const report: InspectReport = { file, kind, bytes: size, valid: false };
  const checkpoint: CheckpointReport = { chunks: [], pagesVerified: 0 };
  report.checkpoint = checkpoint;
  const { head, trailer } = await readEnds(file, size);
  const header = headerIfReadable(head);
  if (header) checkpoint.header = headerReport(header);
  if (trailer) checkpoint.trailer = trailer;
  let reader: SegmentFileReader;
  try {
    reader = await SegmentFileReader.open(file);
  } catch (error) {
    report.problem = problemOf(error);
    if (report.problem.code === 'SEGMENT_CHECKSUM_MISMATCH' && size <= LOCATE_MAX_BYTES) {
      report.located = locateInContainer(await fs.readFile(file), file);
    }
    return report;
  }
  try {
    checkpoint.header = headerReport(reader.header);
    let sum = 0n;
    if (options.pages) checkpoint.pages = [];
    for await (const hashes of checkpointPageHashes(reader, file, kind === 'range')) {
      const chunk = reader.lastChunk;
      const index = checkpoint.chunks.length;
      if (chunk)
        checkpoint.chunks.push({ index, ...chunk, firstPage: hashes[0]?.pageNumber ?? 0, lastPage: hashes.at(-1)?.pageNumber ?? 0 });
      for (const { pageNumber, hash } of hashes) {
        sum ^= hash;
        checkpoint.pages?.push({ pageNumber, pageHash: formatChecksum(hash), chunk: index });
      }
      checkpoint.firstPage ??= hashes[0]?.pageNumber;
      checkpoint.lastPage = hashes.at(-1)?.pageNumber ?? checkpoint.lastPage;
      checkpoint.pagesVerified += hashes.length;
    }
    checkpoint.checksum = formatChecksum(sum);
  } catch (error) {
    report.problem = problemOf(error);
    return report;
  } finally {
    await reader.close();
  }
  const named = kind === 'range' ? parseRangeFileName(path.basename(file))?.position.toString() : CHECKPOINT_NAME.exec(file)?.[1];
  if (named !== undefined && BigInt(named) !== reader.header.position) {
    report.problem = {
      code: 'CHECKPOINT_INVALID',
      message: `${file}: the header says position ${reader.header.position}, the file name ${BigInt(named)}`,
    };
    return report;
  }
  report.valid = true;
  return report;
}

/** The first 96 bytes (for the header) and the trailer, read without checking anything. */
async function readEnds(file: string, size: number): Promise<{ head: Buffer; trailer?: string }> {
  const handle = await fs.open(file, 'r');
  try {
    const head = Buffer.alloc(Math.min(size, SEGMENT_HEADER_SIZE));
    await handle.read(head, 0, head.length, 0);
    if (size < SEGMENT_TRAILER_SIZE) return { head };
    const trailer = Buffer.alloc(SEGMENT_TRAILER_SIZE);
    await handle.read(trailer, 0, trailer.length, size - SEGMENT_TRAILER_SIZE);
    return { head, trailer: trailer.toString('hex') };
  } finally {
    await handle.close();
  }
}
