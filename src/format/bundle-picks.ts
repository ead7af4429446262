import { crc32 } from 'node:zlib';
import { uncompressSync } from 'lz4-napi';

/** Each image in a block is preceded by its page number (u32 big-endian). */
export const PAGE_NUMBER_SIZE = 4;
/** Every LZ4 payload starts with its decompressed size (u32 little-endian). */
export const LZ4_SIZE_PREFIX = 4;

/**
 * What to decode from a format 2 bundle, as numbers:
 *
 *   [blocks, then per block: start, end, CRC-32 of the compressed block, raw length, picks,
 *            then per pick: slot (offset of its page number in the raw block), page number, depth,
 *                           the page hash of the image handed out (high, then low 32 bits),
 *                           then depth x (start, length, CRC-32) of the older images to walk down]
 *
 * A pick of depth 0 is the page's newest image in the bundle; depth d walks d older images down
 * from it, each decompressed with the one above it as dictionary.
 */
export interface PickList {
  list: Float64Array;
  pages: number;
  pageSize: number;
}

/** The part of a pick list for the block at `at`, as a pick list of its own, and where the next block starts. */
export function sliceBlock(list: Float64Array, at: number): { list: Float64Array; next: number } {
  return sliceBlocks(list, at, 1);
}

/** The part of a pick list for `count` blocks from the one at `at`, as a pick list of its own, and where the next block starts. */
export function sliceBlocks(list: Float64Array, at: number, count: number): { list: Float64Array; next: number } {
  let end = at;
  for (let block = 0; block < count; block++) {
    const picks = list[end + 4] as number;
    end += 5;
    for (let pick = 0; pick < picks; pick++) end += 5 + 3 * (list[end + 2] as number);
  }
  const part = new Float64Array(1 + end - at);
  part[0] = count;
  part.set(list.subarray(at, end), 1);
  return { list: part, next: end };
}

/** Each image a pick list picks: its page number and the page hash recorded for it, in list order. */
export function forEachPick(list: Float64Array, visit: (pageNumber: number, hashHigh: number, hashLow: number) => void): void {
  let at = 1;
  const blocks = list[0] as number;
  for (let block = 0; block < blocks; block++) {
    const picks = list[at + 4] as number;
    at += 5;
    for (let pick = 0; pick < picks; pick++) {
      visit(list[at + 1] as number, list[at + 3] as number, list[at + 4] as number);
      at += 5 + 3 * (list[at + 2] as number);
    }
  }
}

/**
 * Decodes the images a PickList names from a format 2 bundle, each compressed payload checked
 * against its CRC-32 before it is decompressed, and hands each image to `emit` with the page hash
 * the bundle records for it (FORMAT.md §7). A page's newest image is a view into its decompressed
 * block, whose 4 bytes before it are its page number; an older image is a buffer of its own.
 * Throws an Error saying what is wrong with the bundle.
 */
export function decodePicks(
  bundle: Uint8Array,
  list: Float64Array,
  pageSize: number,
  emit: (pageNumber: number, image: Uint8Array, hashHigh: number, hashLow: number) => void,
): void {
  const decompress = (start: number, end: number, crc: number, expected: number, what: string, dictionary?: Uint8Array): Buffer =>
    checkedUncompress(bundle, start, end, crc, expected, what, dictionary);
  let at = 1;
  const blocks = list[0] as number;
  for (let block = 0; block < blocks; block++) {
    const start = list[at] as number;
    const end = list[at + 1] as number;
    const crc = list[at + 2] as number;
    const rawLength = list[at + 3] as number;
    const picks = list[at + 4] as number;
    at += 5;
    const raw = decompress(start, end, crc, rawLength, 'a block');
    for (let pick = 0; pick < picks; pick++) {
      const slot = list[at] as number;
      const pageNumber = list[at + 1] as number;
      const depth = list[at + 2] as number;
      const hashHigh = list[at + 3] as number;
      const hashLow = list[at + 4] as number;
      at += 5;
      if (raw.readUInt32BE(slot) !== pageNumber) {
        throw new Error(`the block at offset ${start} holds page ${raw.readUInt32BE(slot)} where the page table says ${pageNumber}`);
      }
      let image: Buffer = raw.subarray(slot + PAGE_NUMBER_SIZE, slot + PAGE_NUMBER_SIZE + pageSize);
      for (let step = 0; step < depth; step++) {
        const historyStart = list[at] as number;
        image = decompress(
          historyStart,
          historyStart + (list[at + 1] as number),
          list[at + 2] as number,
          pageSize,
          `an older image of page ${pageNumber}`,
          image,
        );
        at += 3;
      }
      emit(pageNumber, image, hashHigh, hashLow);
    }
  }
}

/**
 * One compressed payload of a format 2 bundle (`start..end`), decompressed after its CRC-32 and its
 * size prefix are checked; `dictionary` for an older image. Throws an Error naming `what` and the offset.
 */
export function checkedUncompress(
  bundle: Uint8Array,
  start: number,
  end: number,
  crc: number,
  expected: number,
  what: string,
  dictionary?: Uint8Array,
): Buffer {
  if (end - start < LZ4_SIZE_PREFIX || end > bundle.byteLength) throw new Error(`${what} at offset ${start} runs past the bundle`);
  const payload = bundle.subarray(start, end);
  const found = crc32(payload);
  if (found !== crc)
    throw new Error(
      `${what} at offset ${start} has CRC-32 ${found.toString(16).padStart(8, '0')}, the bundle recorded ${crc.toString(16).padStart(8, '0')}`,
    );
  if (Buffer.from(payload.buffer, payload.byteOffset, 4).readUInt32LE(0) !== expected)
    throw new Error(`${what} at offset ${start} does not declare the ${expected} bytes expected`);
  let raw: Buffer;
  try {
    raw = dictionary ? uncompressSync(payload, dictionary) : uncompressSync(payload);
  } catch (error) {
    throw new Error(`${what} at offset ${start}: LZ4 data is invalid: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
  if (raw.length !== expected) throw new Error(`${what} at offset ${start} decompresses to ${raw.length} bytes, expected ${expected}`);
  return raw;
}
