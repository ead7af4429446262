import { hash } from 'node:crypto';

/**
 * The rolling database checksum (docs/FORMAT.md): XOR over every page p of the first 8 bytes
 * (big-endian) of SHA-256(u32be(p) || page). XOR makes it independent of the order pages are
 * applied in and lets a change be folded in by XOR-ing the old page hash out and the new one in.
 * The page number is hashed with the page so that two pages swapping contents changes the sum.
 */
export function pageHash(pageNumber: number, page: Uint8Array): bigint {
  // One-shot hashing of a reused buffer: a Hash object per page cost a third more (replicas hash
  // every page they apply).
  if (hashInput.length < 4 + page.length) hashInput = Buffer.allocUnsafe(4 + page.length);
  hashInput.writeUInt32BE(pageNumber, 0);
  hashInput.set(page, 4);
  return hash('sha256', hashInput.subarray(0, 4 + page.length), 'buffer').readBigUInt64BE(0);
}

let hashInput = Buffer.allocUnsafe(4 + 4096);

export function formatChecksum(checksum: bigint): string {
  return checksum.toString(16).padStart(16, '0');
}

/**
 * The hash of every page of one database, 8 bytes a page (2 MiB per GiB of database), and the
 * checksum they sum to. Lets a writer or a replica compute the checksum after a change from the
 * changed pages alone, without reading the rest of the database.
 */
export class PageHashTable {
  constructor(readonly pageSize: number) {}

  /** A table from the hashes of pages 1..hashes.length (a checkpoint loaded part by part). */
  static fromHashes(pageSize: number, hashes: BigUint64Array<ArrayBuffer>): PageHashTable {
    const table = new PageHashTable(pageSize);
    table.hashes = hashes.length > 0 ? hashes : new BigUint64Array(1024);
    table.pages = hashes.length;
    let sum = 0n;
    for (const hash of hashes) sum ^= hash;
    table.sum = sum;
    return table;
  }

  private hashes = new BigUint64Array(1024);
  private pages = 0;
  private sum = 0n;

  get checksum(): bigint {
    return this.sum;
  }

  get databaseSizePages(): number {
    return this.pages;
  }

  hashOf(pageNumber: number): bigint {
    return pageNumber >= 1 && pageNumber <= this.pages ? (this.hashes[pageNumber - 1] ?? 0n) : 0n;
  }

  /**
   * The checksum the database would have after writing `pages` and resizing to
   * `databaseSizePages`, and the hash of every page that changes, without changing the table.
   */
  checksumAfter(pages: ReadonlyArray<{ pageNumber: number; hash: bigint }>, databaseSizePages: number): bigint {
    return this.plan(pages, databaseSizePages).checksum;
  }

  /** Fold a change in. */
  apply(pages: ReadonlyArray<{ pageNumber: number; hash: bigint }>, databaseSizePages: number): void {
    const { checksum, updates } = this.plan(pages, databaseSizePages);
    this.resize(databaseSizePages);
    for (const [pageNumber, hash] of updates) this.hashes[pageNumber - 1] = hash;
    this.sum = checksum;
  }

  private plan(
    pages: ReadonlyArray<{ pageNumber: number; hash: bigint }>,
    databaseSizePages: number,
  ): { checksum: bigint; updates: Map<number, bigint> } {
    let sum = this.sum;
    for (let pageNumber = databaseSizePages + 1; pageNumber <= this.pages; pageNumber++) sum ^= this.hashOf(pageNumber);
    const updates = new Map<number, bigint>();
    for (const { pageNumber, hash } of pages) {
      if (pageNumber <= databaseSizePages) updates.set(pageNumber, hash);
    }
    // Growing the file without writing a page leaves zeros there, and a full scan hashes those zeros.
    for (let pageNumber = this.pages + 1; pageNumber <= databaseSizePages; pageNumber++) {
      if (!updates.has(pageNumber)) updates.set(pageNumber, this.zeroPageHash(pageNumber));
    }
    for (const [pageNumber, hash] of updates) sum ^= this.hashOf(pageNumber) ^ hash;
    return { checksum: sum, updates };
  }

  private zeroPage: Uint8Array | undefined;

  private zeroPageHash(pageNumber: number): bigint {
    this.zeroPage ??= new Uint8Array(this.pageSize);
    return pageHash(pageNumber, this.zeroPage);
  }

  private resize(databaseSizePages: number): void {
    if (databaseSizePages > this.hashes.length) {
      let capacity = this.hashes.length;
      while (capacity < databaseSizePages) capacity *= 2;
      const grown = new BigUint64Array(capacity);
      grown.set(this.hashes.subarray(0, this.pages));
      this.hashes = grown;
    }
    if (databaseSizePages < this.pages) this.hashes.fill(0n, databaseSizePages, this.pages);
    this.pages = databaseSizePages;
  }
}

/**
 * The rolling-checksum hash of a page (FORMAT.md §7). When the 4 bytes before the image in its
 * buffer are already its page number (a decoded chunk or block lays pages out that way), the two
 * are hashed as one slice, without building a hash object per page.
 */
export function hashPageImage(pageNumber: number, image: Buffer): bigint {
  if (image.byteOffset >= 4) {
    const prefixed = Buffer.from(image.buffer, image.byteOffset - 4, image.length + 4);
    if (prefixed.readUInt32BE(0) === pageNumber) return (hash('sha256', prefixed, 'buffer') as Buffer).readBigUInt64BE(0);
  }
  return pageHash(pageNumber, image);
}
