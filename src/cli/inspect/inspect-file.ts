import { promises as fs } from 'node:fs';
import { bundleFormatOf } from '../../format/bundle-codec.js';
import { hasSegmentMagic, SEGMENT_HEADER_SIZE } from '../../format/segment-codec.js';
import { errorMessage } from '../../errors.js';
import { CliUsageError } from '../common.js';
import { inspectBundle } from './bundle.js';
import { inspectCheckpoint } from './checkpoint.js';
import { headerIfReadable, inspectSegment } from './segment.js';
import type { InspectKind, InspectOptions, InspectReport } from './report.js';

/** A format 1 bundle starts with a record length, then the first segment's magic. */
const RECORD_LENGTH_SIZE = 4;

/**
 * Reads `file`, tells what it is (or takes `kind`), and describes and verifies it. Damage is in the
 * report (`valid: false`); a file that cannot be read or whose kind cannot be told is a usage error.
 */
export async function inspectFile(file: string, options: InspectOptions & { kind?: InspectKind }): Promise<InspectReport> {
  let size: number;
  let head: Buffer;
  try {
    const stat = await fs.stat(file);
    if (!stat.isFile()) throw new Error('not a regular file');
    size = stat.size;
    head = await readHead(file, SEGMENT_HEADER_SIZE);
  } catch (error) {
    throw new CliUsageError('INSPECT_FILE_UNREADABLE', `cannot read ${file}: ${errorMessage(error)}`);
  }
  const kind = options.kind ?? detectKind(head, file);
  if (kind === undefined) {
    throw new CliUsageError(
      'INSPECT_UNKNOWN_KIND',
      `${file}: not a segment, checkpoint or bundle (first bytes ${head.subarray(0, 8).toString('hex') || 'none'}; expected "LBSG", "LBBN", or a length then "LBSG"); name the kind with --kind`,
    );
  }
  if (kind === 'checkpoint' || kind === 'range') return inspectCheckpoint(file, size, options, kind);
  const bytes = await fs.readFile(file);
  return kind === 'segment' ? inspectSegment(bytes, file, options) : inspectBundle(bytes, file, options);
}

/**
 * The kind from the first bytes: `LBBN` is a bundle (format 2); a length then `LBSG`, a bundle of
 * format 1; `LBSG`, a segment container, which is a checkpoint when named `.ckpt`, a checkpoint's
 * range file when named `.range`, or, under any other name than `.seg`, a checkpoint when its header
 * follows a checkpoint's rules (docs/FORMAT.md §8).
 */
export function detectKind(head: Buffer, file: string): InspectKind | undefined {
  if (hasSegmentMagic(head)) {
    if (file.endsWith('.ckpt')) return 'checkpoint';
    if (file.endsWith('.range')) return 'range';
    if (file.endsWith('.seg')) return 'segment';
    const header = headerIfReadable(head);
    const checkpointLike =
      header !== undefined && header.preChecksum === 0n && header.transactionCount === 0 && header.pageCount === header.databaseSizePages;
    return checkpointLike ? 'checkpoint' : 'segment';
  }
  if (head.length >= 4 && bundleFormatOf(head) === 2) return 'bundle';
  if (hasSegmentMagic(head.subarray(RECORD_LENGTH_SIZE))) return 'bundle';
  return undefined;
}

async function readHead(file: string, length: number): Promise<Buffer> {
  const handle = await fs.open(file, 'r');
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
