import { ftruncateSync, promises as fs, writevSync } from 'node:fs';
import { pageHash, PageHashTable } from '../format/rolling-checksum.js';
import { releaseEvery } from '../native/malloc-tuning.js';
import type { PageToHash, RestoreHasher } from './restore-hasher.js';

/** Page images gathered before they are sorted and written with vectored writes. */
const WRITE_BATCH_BYTES = 8 * 1024 * 1024;
/** Written bytes after which a background fdatasync starts (the final fsync then has little left). */
const BACKGROUND_SYNC_BYTES = 32 * 1024 * 1024;
/** Blocks (or segments) applied between two turns of the event loop. */
const YIELD_EVERY_SETTLES = 8;
/**
 * Bundle steps being written on the threads while the next one is planned (each holds its bundle in
 * shared memory). One keeps both threads busy: more only held memory.
 */
const THREAD_WRITES_IN_FLIGHT = 1;

/**
 * The restored file: sized once to the target, every page written at most once (positioned,
 * vectored writes of sorted batches). An image takes the page hash its bundle recorded, or is
 * hashed after it is written, on the hashing thread. `finish` hashes the pages never written as
 * zeros and answers the checksum; `complete` fsyncs.
 */
export class OutputFile {
  /** The object or file the pages being put come from (for errors). */
  source = '';
  private readonly written: Uint8Array;
  private readonly writer: ReturnType<typeof runWriter>;
  private batch: Array<{ pageNumber: number; image: Buffer; hashed: boolean }> = [];
  private batchBytes = 0;
  private closed = false;
  /** Written since the last background flush to disk was started, and that flush. */
  private unsynced = 0;
  /** Frees what the restore dropped, every so many bytes written (when asked to). */
  private readonly release: ((bytes: number) => void) | undefined;
  private syncing: Promise<void> | undefined;
  private settles = 0;
  /** Bundle steps the page-writing threads are writing, oldest first. */
  private threadWrites: Array<Promise<void>> = [];

  private constructor(
    private readonly handle: fs.FileHandle,
    readonly pageSize: number,
    readonly databaseSizePages: number,
    private readonly hasher: RestoreHasher,
    releaseEveryBytes: number | undefined,
  ) {
    this.written = new Uint8Array(databaseSizePages);
    this.release = releaseEveryBytes === undefined ? undefined : releaseEvery(releaseEveryBytes);
    this.writer = runWriter(handle.fd, pageSize);
    hasher.startPages(pageSize, databaseSizePages);
  }

  /**
   * `releaseEveryBytes`: free the memory the restore dropped every so many bytes written
   * (releaseFreeMemory): decompressed images die faster than the garbage collector comes by itself.
   * Every 32 MiB kept a node's restore within ~80 MiB of where it started, at some 25% more time
   * (src/native/garbage-collector.ts).
   */
  static async create(
    file: string,
    pageSize: number,
    databaseSizePages: number,
    hasher: RestoreHasher,
    releaseEveryBytes?: number,
  ): Promise<OutputFile> {
    const handle = await fs.open(file, 'w+');
    ftruncateSync(handle.fd, databaseSizePages * pageSize);
    return new OutputFile(handle, pageSize, databaseSizePages, hasher, releaseEveryBytes);
  }

  has(pageNumber: number): boolean {
    return this.written[pageNumber - 1] === 1;
  }

  get fd(): number {
    return this.handle.fd;
  }

  /** Takes a page that a page-writing thread will write, with the page hash its bundle recorded. */
  claim(pageNumber: number, hashHigh: number, hashLow: number): void {
    if (pageNumber < 1 || pageNumber > this.databaseSizePages || this.written[pageNumber - 1] === 1) {
      throw new Error(`restore: page ${pageNumber} written twice, or outside 1..${this.databaseSizePages}`);
    }
    this.written[pageNumber - 1] = 1;
    this.hasher.record(pageNumber, hashHigh, hashLow);
  }

  /** Keeps `writing` (the threads writing claimed pages) in view; waits while too many are. */
  async writeOnThreads(writing: Promise<number>): Promise<void> {
    const tracked = writing.then((bytes) => this.noteWritten(bytes));
    tracked.catch(() => undefined); // awaited by finish() or threadWritesSettled()
    this.threadWrites.push(tracked);
    if (this.threadWrites.length > THREAD_WRITES_IN_FLIGHT) await this.threadWrites.shift();
  }

  /** Waits for every thread write, failed or not. */
  async threadWritesSettled(): Promise<void> {
    await Promise.allSettled(this.threadWrites.splice(0));
  }

  /**
   * Takes a page image to write (kept until written: see SegmentSource.collect), with its page hash
   * when its source recorded one; it is hashed after it is written otherwise.
   */
  put(pageNumber: number, image: Buffer, recordedHash: readonly [high: number, low: number] | undefined): void {
    if (pageNumber < 1 || pageNumber > this.databaseSizePages || this.written[pageNumber - 1] === 1 || image.length !== this.pageSize) {
      throw new Error(`restore: page ${pageNumber} written twice, of ${image.length} bytes, or outside 1..${this.databaseSizePages}`);
    }
    this.written[pageNumber - 1] = 1;
    if (recordedHash !== undefined) this.hasher.record(pageNumber, recordedHash[0], recordedHash[1]);
    this.batch.push({ pageNumber, image, hashed: recordedHash !== undefined });
    this.batchBytes += image.length;
  }

  /**
   * A point where the source no longer reads the images handed in: write them once there are
   * enough, and now and then let the event loop run (downloads ahead progress only then). After a
   * write, wait while the hashing thread is far behind: a step of any size (a large segment read
   * chunk by chunk) keeps at most its bound of images in flight.
   */
  settle(): void | Promise<void> {
    const flushed = this.batchBytes >= WRITE_BATCH_BYTES;
    if (flushed) this.flush();
    const yielding = ++this.settles % YIELD_EVERY_SETTLES === 0;
    if (!flushed && !yielding) return;
    return (async () => {
      if (yielding) await new Promise((resolve) => setImmediate(resolve));
      if (flushed) await this.room();
    })();
  }

  /** Waits while the hashing thread is far behind. */
  room(): Promise<void> {
    return this.hasher.room();
  }

  /** Writes what was put, then hands what has no recorded hash to the hashing thread. */
  flush(): void {
    const batch = this.batch.sort((a, b) => a.pageNumber - b.pageNumber);
    this.batch = [];
    this.batchBytes = 0;
    const toHash: PageToHash[] = [];
    for (const entry of batch) {
      this.writer.add(entry.pageNumber, entry.image);
      if (!entry.hashed) toHash.push(entry);
    }
    this.writer.flush();
    this.hasher.hashPages(toHash);
    this.noteWritten(batch.length * this.pageSize);
  }

  /**
   * Start the disk writing early, on the thread pool, so that the final fsync finds little left;
   * free what the restore dropped now and then.
   */
  private noteWritten(bytes: number): void {
    this.release?.(bytes);
    this.unsynced += bytes;
    if (this.unsynced >= BACKGROUND_SYNC_BYTES && !this.syncing) {
      this.unsynced = 0;
      this.syncing = this.handle.datasync().finally(() => {
        this.syncing = undefined;
      });
      this.syncing.catch(() => undefined); // the final sync reports any failure
    }
  }

  async finish(): Promise<{ checksum: bigint; hashes: () => PageHashTable }> {
    // A failed thread write fails the restore here, with its own error.
    for (const writing of this.threadWrites.splice(0)) await writing;
    this.flush();
    const hashes = await this.hasher.pageHashes();
    let zero: Uint8Array | undefined;
    // XOR of 64-bit hashes, done on their two halves.
    let high = 0;
    let low = 0;
    for (let index = 0; index < this.databaseSizePages; index++) {
      if (this.written[index] !== 1) {
        zero ??= new Uint8Array(this.pageSize);
        const hash = pageHash(index + 1, zero);
        hashes[2 * index] = Number(hash >> 32n);
        hashes[2 * index + 1] = Number(hash & 0xffff_ffffn);
      }
      high ^= hashes[2 * index] as number;
      low ^= hashes[2 * index + 1] as number;
    }
    const checksum = (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0);
    const { pageSize, databaseSizePages } = this;
    return {
      checksum,
      // Built on demand: only a restore that becomes a database's checkpoint needs the table.
      hashes: () => {
        const table = new BigUint64Array(databaseSizePages);
        for (let index = 0; index < databaseSizePages; index++) {
          table[index] = (BigInt(hashes[2 * index] as number) << 32n) | BigInt(hashes[2 * index + 1] as number);
        }
        return PageHashTable.fromHashes(pageSize, table);
      },
    };
  }

  /**
   * After the checks: with `standalone`, make the file a plain rollback-journal SQLite file (header
   * bytes 18/19 from 2/2 to 1/1) so that it opens anywhere without -wal/-shm files; then fsync.
   * The checksum was of the bytes as the Primary wrote them (18/19 = 2).
   */
  async complete(standalone: boolean): Promise<void> {
    if (standalone && this.databaseSizePages > 0) {
      const versions = Buffer.alloc(2);
      await this.handle.read(versions, 0, 2, 18);
      if (versions[0] === 2 && versions[1] === 2) await this.handle.write(Buffer.from([1, 1]), 0, 2, 18);
    }
    await this.syncing?.catch(() => undefined);
    await this.handle.sync();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}

/**
 * Writes page images given in ascending page order, consecutive pages as one vectored write
 * (`flush` writes what is pending). Synchronous on purpose: writes queued on the thread pool cost
 * more (measured: a quarter more CPU, a third more memory) than they let the main thread gain.
 */
function runWriter(fd: number, pageSize: number): { add(pageNumber: number, image: Uint8Array): void; flush(): void } {
  const run: Uint8Array[] = [];
  let first = 0;
  const writer = {
    add(pageNumber: number, image: Uint8Array): void {
      if (run.length > 0 && (pageNumber !== first + run.length || run.length >= 1024)) writer.flush();
      if (run.length === 0) first = pageNumber;
      run.push(image);
    },
    flush(): void {
      if (run.length === 0) return;
      const position = (first - 1) * pageSize;
      const length = run.length * pageSize;
      let done = writevSync(fd, run, position);
      // Short writes are rare (a full disk answers with an error); finish the run page by page.
      while (done < length) {
        const page = Math.floor(done / pageSize);
        done += writevSync(fd, [(run[page] as Uint8Array).subarray(done % pageSize), ...run.slice(page + 1)], position + done);
      }
      run.length = 0;
    },
  };
  return writer;
}
