import type { PageImage, SegmentHeader } from './segment-codec.js';

/**
 * What a restore needs from a run of segments (a bundle of either format, or the shared log): the
 * segment headers, ascending, and the newest image of each page up to a segment.
 */
export interface SegmentSource {
  readonly name: string;
  readonly headers: readonly SegmentHeader[];
  /**
   * For every page written by the segments at indexes `lo..hi` (of `headers`): its newest image at
   * or below `hi`, if that image is at or above `lo` and `want(pageNumber, index)` says so. Pages
   * come in any order. Images lie in buffers of their own (decompressed output) that the source
   * no longer reads once `settle` is called (after each block or segment): from then on the caller
   * may keep them, or hand them to another thread. Everything is checked before it is decompressed
   * (a format 2 bundle's blocks and older images by their CRC-32, a segment by its trailer).
   * `recordedHash` is the image's page hash (FORMAT.md §7, as high and low 32 bits) when the source
   * records it (format 2, under its tables checksum), so that the caller need not hash it again.
   */
  collect(
    lo: number,
    hi: number,
    want: (pageNumber: number, index: number) => boolean,
    take: (pageNumber: number, image: Buffer, recordedHash: readonly [high: number, low: number] | undefined) => void,
    settle?: () => void | Promise<void>,
  ): Promise<void>;
}

/**
 * The pages of one segment: all at once, or (a segment too large to hold) one chunk of its
 * streaming reader at a time.
 */
export type SegmentPages = readonly PageImage[] | AsyncIterable<readonly PageImage[]>;

/**
 * `collect` for a source made of segments (format 1 bundles, the shared log): segments newest
 * first, each page's newest image at or below `hi` handed over once, `settle` after each segment,
 * or after each chunk of a segment given chunk by chunk.
 */
export async function collectNewestFirst(
  lo: number,
  hi: number,
  pagesOf: (index: number) => SegmentPages | Promise<SegmentPages>,
  want: (pageNumber: number, index: number) => boolean,
  take: (pageNumber: number, image: Buffer, expectedHash: undefined) => void,
  settle?: () => void | Promise<void>,
): Promise<void> {
  const seen = new Set<number>();
  const takeAll = (pages: readonly PageImage[], index: number): void => {
    for (const { pageNumber, data } of pages) {
      if (seen.has(pageNumber)) continue;
      seen.add(pageNumber);
      if (want(pageNumber, index)) take(pageNumber, data, undefined);
    }
  };
  for (let index = hi; index >= lo; index--) {
    const pages = await pagesOf(index);
    if (Symbol.asyncIterator in pages) {
      for await (const chunk of pages) {
        takeAll(chunk, index);
        await settle?.();
      }
      continue;
    }
    takeAll(pages, index);
    await settle?.();
  }
}

// ---- helpers ------------------------------------------------------------------------------------
