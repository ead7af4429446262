import type { PageImage, SegmentHeader } from './segment-codec.js';

/** What a run of consecutive segments does to a database, as one change. */
export interface FoldedRun {
  /** The last image of every page the run wrote that is still inside the database at its end. */
  pages: Map<number, Buffer>;
  /**
   * The smallest size (in pages) the database had during the run. Pages past it that the run does
   * not write afterwards were cut off at some point: they read as zeros once the file grows again.
   */
  smallestSizePages: number;
  /** Size of the database after the run. */
  databaseSizePages: number;
}

/**
 * Folds a run of segments into the net change they make, starting from a database of
 * `startSizePages` pages (pure). A replica that catches up writes and hashes each page once per
 * run instead of once per segment: a hot page (the table's last leaf, page 1) is rewritten by
 * nearly every transaction. Segment i's pages are applied before its size, like the writer does.
 */
export function foldSegments(
  startSizePages: number,
  segments: ReadonlyArray<{ header: Pick<SegmentHeader, 'databaseSizePages'>; pages: readonly PageImage[] }>,
): FoldedRun {
  const pages = new Map<number, Buffer>();
  let smallest = startSizePages;
  let size = startSizePages;
  let highestWritten = 0;
  for (const { header, pages: images } of segments) {
    for (const { pageNumber, data } of images) {
      pages.set(pageNumber, data);
      if (pageNumber > highestWritten) highestWritten = pageNumber;
    }
    size = header.databaseSizePages;
    smallest = Math.min(smallest, size);
    if (highestWritten > size) {
      // The file is cut to `size` after this segment: what lay past it is gone.
      for (const pageNumber of pages.keys()) {
        if (pageNumber > size) pages.delete(pageNumber);
      }
      highestWritten = size;
    }
  }
  return { pages, smallestSizePages: smallest, databaseSizePages: size };
}
