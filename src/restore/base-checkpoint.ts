import { createHash } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { uncompressSync } from 'lz4-napi';
import { sha256File } from '../archive/bundle-writer.js';
import { errorMessage, LitebaseError } from '../errors.js';
import { assertCheckpointHeader } from '../format/checkpoint-header.js';
import { formatChecksum } from '../format/rolling-checksum.js';
import { SEGMENT_CHUNK_PAGES, SEGMENT_HEADER_SIZE, SEGMENT_TRAILER_SIZE, type SegmentHeader } from '../format/segment-codec.js';
import { readSegmentFileHeader, SegmentFileReader } from '../log/segment-stream.js';
import { ObjectStoreError, type ObjectStore } from '../storage/object-store.js';
import type { CheckpointSource } from './planner.js';
import { archiveError, corrupt, requireStore, vanishedAs } from './source-errors.js';

/**
 * The base of a restore (docs/FORMAT.md §11.4): the checkpoint under the history read newest
 * first, for the pages no segment after it wrote. A base is a list of **parts**, each a file in the
 * segment container holding consecutive pages from its first page: a full checkpoint (`.ckpt`) is
 * one part holding pages 1..N; a range checkpoint is the range files its manifest lists.
 *
 * Each part is verified whole before anything in it is decompressed: by its SHA-256 when known
 * (the index's for an archived checkpoint, the manifest's for a range; checked while it downloads),
 * else by its trailer; its header must follow its kind's rules, and the XOR of the parts'
 * checksums must be the base's checksum. Parts in the object store are downloaded a few at a time
 * and each is deleted once walked (disk holds at most PARALLEL of them); parts on the shared folder
 * are read in place. A part none of whose pages the restore still needs is not read at all.
 */

/** Parts downloaded (or verified) at once, the one being walked included. */
const PARALLEL = 3;

export type PartLocation = { kind: 'archive'; key: string } | { kind: 'shared'; file: string };

export interface BasePart {
  /** The key or path, for errors. */
  name: string;
  location: PartLocation;
  firstPage: number;
  pages: number;
  /** SHA-256 of the whole file, when known: checked instead of the trailer. */
  sha256?: string;
  /** XOR of the page hashes of its pages. */
  checksum: bigint;
  /** The manifest that lists the part (a range), for errors: a missing range is a damaged archive. */
  listedBy?: string;
  /** The header rules of its kind, beyond the container's (§6). */
  checkHeader: (header: SegmentHeader) => void;
}

export interface BaseContext {
  databaseId: string;
  /** Where downloads go. */
  workDir: string;
  store?: ObjectStore;
}

interface OpenedPart {
  file: string;
  size: number;
  header: SegmentHeader;
  release(): Promise<void>;
}

/** What a manifest (docs/FORMAT.md §8) says of its checkpoint, as far as a restore needs it. */
export interface ManifestBase {
  name: string;
  position: bigint;
  commitTimeMs: number;
  pageSize: number;
  databaseSizePages: number;
  checksum: bigint;
  parts: BasePart[];
}

export class BaseCheckpoint {
  private sequence = 0;

  private constructor(
    readonly name: string,
    readonly position: bigint,
    readonly commitTimeMs: number,
    readonly pageSize: number,
    readonly databaseSizePages: number,
    readonly checksum: bigint,
    readonly parts: readonly BasePart[],
    private readonly context: BaseContext,
    /** Parts opened to describe the base (a full checkpoint's one part), walked without opening them again. */
    private readonly opened: Map<BasePart, OpenedPart>,
  ) {}

  /** A full checkpoint (`.ckpt`, in the archive or on the shared folder): one part, opened to read its header. */
  static async fromCheckpointFile(
    source: CheckpointSource,
    location: PartLocation,
    sha256: string | undefined,
    context: BaseContext,
  ): Promise<BaseCheckpoint> {
    const name = location.kind === 'archive' ? location.key : location.file;
    const spec: BasePart = {
      name,
      location,
      firstPage: 1,
      pages: -1, // from the header
      ...(sha256 ? { sha256 } : {}),
      checksum: 0n,
      checkHeader: (header) => {
        assertCheckpointHeader(header, name, context.databaseId);
        if (header.position !== source.position) {
          throw new LitebaseError('ARCHIVE_CORRUPT', `${name} holds position ${header.position}, expected ${source.position}`, {
            details: { key: name },
          });
        }
      },
    };
    const opened = await openPart(spec, path.join(context.workDir, 'base.ckpt'), context);
    const { header } = opened;
    const part: BasePart = { ...spec, pages: header.pageCount, checksum: header.postChecksum };
    return new BaseCheckpoint(
      name,
      header.position,
      header.commitTimeMs,
      header.pageSize,
      header.databaseSizePages,
      header.postChecksum,
      [part],
      context,
      new Map([[part, opened]]),
    );
  }

  /** A range checkpoint: the parts its manifest lists (read and checked by the caller), which must cover 1..N and sum to its checksum. */
  static fromManifest(manifest: ManifestBase, context: BaseContext): BaseCheckpoint {
    let next = 1;
    let sum = 0n;
    for (const part of manifest.parts) {
      if (part.firstPage !== next || part.pages < 1) {
        throw new LitebaseError(
          'ARCHIVE_CORRUPT',
          `${manifest.name}: ${part.name} holds pages from ${part.firstPage}, the ranges before it end at ${next - 1}`,
          {
            details: { key: manifest.name },
          },
        );
      }
      next += part.pages;
      sum ^= part.checksum;
    }
    if (next - 1 !== manifest.databaseSizePages) {
      throw new LitebaseError(
        'ARCHIVE_CORRUPT',
        `${manifest.name}: its ranges hold pages 1..${next - 1} of a ${manifest.databaseSizePages}-page database`,
        {
          details: { key: manifest.name },
        },
      );
    }
    if (sum !== manifest.checksum) {
      throw new LitebaseError(
        'ARCHIVE_CORRUPT',
        `${manifest.name}: its ranges' checksums sum to ${formatChecksum(sum)}, the manifest says ${formatChecksum(manifest.checksum)}`,
        { details: { key: manifest.name } },
      );
    }
    return new BaseCheckpoint(
      manifest.name,
      manifest.position,
      manifest.commitTimeMs,
      manifest.pageSize,
      manifest.databaseSizePages,
      manifest.checksum,
      manifest.parts,
      context,
      new Map(),
    );
  }

  /**
   * Hands `take` every page 1..last that `written` does not have yet, part by part (each part
   * opened and verified first, PARALLEL at a time); `settle` runs after each chunk handed out.
   */
  async walk(
    last: number,
    written: (pageNumber: number) => boolean,
    take: (pageNumber: number, image: Buffer) => void,
    settle: () => Promise<void>,
  ): Promise<void> {
    const wanted = (first: number, count: number): boolean => {
      for (let pageNumber = first; pageNumber < first + count && pageNumber <= last; pageNumber++) if (!written(pageNumber)) return true;
      return false;
    };
    const needed = this.parts.filter((part) => part.firstPage <= last && wanted(part.firstPage, part.pages));
    const opening: Array<Promise<OpenedPart>> = [];
    let walked = 0;
    const start = (index: number): void => {
      const part = needed[index];
      if (!part || opening[index]) return;
      const already = this.opened.get(part);
      this.opened.delete(part);
      const promise = already
        ? Promise.resolve(already)
        : openPart(part, path.join(this.context.workDir, `base-${this.sequence++}.part`), this.context);
      promise.catch(() => undefined); // awaited (and thrown) in order below
      opening[index] = promise;
    };
    try {
      for (; walked < needed.length; walked++) {
        for (let ahead = walked; ahead < walked + PARALLEL; ahead++) start(ahead);
        const part = needed[walked] as BasePart;
        const opened = await (opening[walked] as Promise<OpenedPart>);
        try {
          await walkPart(opened, part, wanted, take, settle);
        } catch (error) {
          throw archiveError(error, part.name);
        } finally {
          await opened.release();
        }
      }
    } finally {
      // Parts opened ahead of a failure: remove their downloads once they are in.
      await Promise.all(
        opening.slice(walked + 1).map((promise) =>
          promise.then(
            (opened) => opened.release(),
            () => undefined,
          ),
        ),
      );
    }
  }

  /** Removes what was downloaded and not walked. */
  async release(): Promise<void> {
    const opened = [...this.opened.values()];
    this.opened.clear();
    await Promise.all(opened.map((part) => part.release()));
  }
}

/** Downloads (or finds) a part, verifies it whole and checks its header. */
async function openPart(part: BasePart, downloadTo: string, context: BaseContext): Promise<OpenedPart> {
  const { name, location } = part;
  let file: string;
  let verified = false;
  if (location.kind === 'archive') {
    file = downloadTo;
    let sha256: string;
    try {
      sha256 = await download(requireStore(context.store, location.key), location.key, file);
    } catch (error) {
      await fs.rm(file, { force: true });
      if (part.listedBy && error instanceof ObjectStoreError && error.code === 'OBJECT_NOT_FOUND') {
        throw new LitebaseError('ARCHIVE_CORRUPT', `${part.listedBy} lists ${location.key}, which the archive does not hold`, {
          details: { key: location.key },
        });
      }
      throw error;
    }
    if (part.sha256) {
      if (sha256 !== part.sha256) {
        await fs.rm(file, { force: true });
        throw new LitebaseError(
          'ARCHIVE_CORRUPT',
          `${name}: the downloaded object hashes to sha256 ${sha256}, ${part.listedBy ?? 'the archive index'} recorded ${part.sha256}`,
          { details: { key: name } },
        );
      }
      verified = true;
    }
  } else {
    file = location.file;
    if (part.sha256) {
      const sha256 = await vanishedAs(file, () => sha256File(file), 'the checkpoint');
      if (sha256 !== part.sha256) {
        throw new LitebaseError(
          'ARCHIVE_CORRUPT',
          `${name} hashes to sha256 ${sha256}, ${part.listedBy ?? 'its index'} recorded ${part.sha256}`,
          {
            details: { key: name },
          },
        );
      }
      verified = true;
    }
  }
  const downloaded = location.kind === 'archive';
  const release = async (): Promise<void> => {
    if (downloaded) await fs.rm(file, { force: true });
  };
  try {
    let header: SegmentHeader;
    let size: number;
    if (verified) {
      header = await vanishedAs(file, () => readSegmentFileHeader(file, name), 'the checkpoint');
      size = (await fs.stat(file)).size;
    } else {
      const reader = await vanishedAs(file, () => SegmentFileReader.open(file, { name }), 'the checkpoint'); // checks the trailer over the whole file
      header = reader.header;
      size = reader.size;
      await reader.close();
    }
    part.checkHeader(header);
    if (part.pages >= 0 && header.pageCount !== part.pages) {
      throw corrupt(name, `holds ${header.pageCount} pages, ${part.listedBy ?? 'the checkpoint'} says ${part.pages}`);
    }
    return { file, size, header, release };
  } catch (error) {
    await release();
    throw archiveError(error, name);
  }
}

/** Copies an object to a local file (no fsync: it is read once and removed), answering its SHA-256. */
async function download(store: ObjectStore, key: string, file: string): Promise<string> {
  const hash = createHash('sha256');
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      callback(null, chunk);
    },
  });
  await pipeline(await store.getStream(key), hashing, createWriteStream(file, { flags: 'w' }));
  return hash.digest('hex');
}

/**
 * The chunks of one part (already verified whole, see openPart): pages firstPage.. in order, 256
 * to a chunk, so chunk k holds pages firstPage+256k.. and a chunk none of whose pages is wanted is
 * skipped undecompressed. Decompressed chunks are checked as §6 does.
 */
async function walkPart(
  opened: OpenedPart,
  part: BasePart,
  wanted: (first: number, count: number) => boolean,
  take: (pageNumber: number, image: Buffer) => void,
  settle: () => Promise<void>,
): Promise<void> {
  const { header } = opened;
  const { name } = part;
  const handle = await fs.open(opened.file, 'r');
  try {
    const end = opened.size - SEGMENT_TRAILER_SIZE;
    const stride = 4 + header.pageSize;
    const buffer = Buffer.allocUnsafe(Math.min(8 * 1024 * 1024, Math.max(end, 1)));
    let bufferStart = 0;
    let bufferEnd = 0;
    const bytesAt = async (offset: number, length: number): Promise<Buffer> => {
      if (offset < bufferStart || offset + length > bufferEnd) {
        if (length > buffer.length) {
          const big = Buffer.allocUnsafe(length);
          const { bytesRead } = await handle.read(big, 0, length, offset);
          if (bytesRead !== length) throw corrupt(name, `the file ended at ${offset + bytesRead}`);
          return big;
        }
        const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, end - offset), offset);
        bufferStart = offset;
        bufferEnd = offset + bytesRead;
        if (offset + length > bufferEnd) throw corrupt(name, `the file ended at ${bufferEnd}`);
      }
      return buffer.subarray(offset - bufferStart, offset - bufferStart + length);
    };
    let offset = SEGMENT_HEADER_SIZE;
    let pages = 0;
    while (offset < end) {
      if (end - offset < 12) throw corrupt(name, `${end - offset} stray bytes at offset ${offset}`);
      const chunk = await bytesAt(offset, 12);
      const count = chunk.readUInt32BE(0);
      const rawLength = chunk.readUInt32BE(4);
      const compressedLength = chunk.readUInt32BE(8);
      const expectedCount = Math.min(SEGMENT_CHUNK_PAGES, header.pageCount - pages);
      if (count !== expectedCount || rawLength !== count * stride || compressedLength < 4 || compressedLength > end - offset - 12) {
        throw corrupt(name, `chunk at offset ${offset}: ${count} pages, ${rawLength} raw bytes, ${compressedLength} compressed bytes`);
      }
      const first = part.firstPage + pages;
      if (wanted(first, count)) {
        const payload = await bytesAt(offset + 12, compressedLength);
        let raw: Buffer;
        try {
          raw = uncompressSync(payload);
        } catch (error) {
          throw corrupt(name, `chunk at offset ${offset}: LZ4 data is invalid: ${errorMessage(error)}`);
        }
        if (raw.length !== rawLength)
          throw corrupt(name, `chunk at offset ${offset} decompresses to ${raw.length} bytes, expected ${rawLength}`);
        for (let i = 0; i < count; i++) {
          const pageNumber = raw.readUInt32BE(i * stride);
          if (pageNumber !== first + i)
            throw corrupt(name, `chunk at offset ${offset} holds page ${pageNumber} where this checkpoint part has ${first + i}`);
          take(pageNumber, raw.subarray(i * stride + 4, (i + 1) * stride));
        }
        await settle();
      }
      pages += count;
      offset += 12 + compressedLength;
    }
    if (pages !== header.pageCount) throw corrupt(name, `the body holds ${pages} pages, the header declares ${header.pageCount}`);
  } finally {
    await handle.close();
  }
}
