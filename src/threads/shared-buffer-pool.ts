/**
 * Shared memory for large reads that worker threads decode (a restore's bundles), reused instead
 * of allocated per read.
 *
 * Why: a SharedArrayBuffer handed to a thread is freed only once every thread that saw it has
 * collected its handle, and threads that allocate little JavaScript collect rarely. A restore that
 * read each bundle into a fresh one kept every bundle it had read: a 494 MiB archive held 487 MiB
 * of shared memory at the end, and an archive of 10 GiB would have tried to hold all of it. Every
 * fresh buffer was also faulted in page by page. Reused buffers bound the memory by how many reads
 * are in flight, whatever the archive's size.
 *
 * A buffer may be given back only once no thread reads it any more.
 */
export class SharedBufferPool {
  private readonly free: SharedArrayBuffer[] = [];

  constructor(
    /** Free buffers kept for reuse; more are left to the garbage collector. */
    private readonly keep: number,
    /** Sizes are rounded up to this, so reads of similar sizes can share a buffer. */
    private readonly granule = 1024 * 1024,
  ) {}

  /** A Buffer of exactly `size` bytes at the start of a shared buffer of at least that size. */
  readonly take = (size: number): Buffer => {
    let best = -1;
    for (let index = 0; index < this.free.length; index++) {
      const capacity = (this.free[index] as SharedArrayBuffer).byteLength;
      if (capacity >= size && (best === -1 || capacity < (this.free[best] as SharedArrayBuffer).byteLength)) best = index;
    }
    const memory =
      best === -1
        ? new SharedArrayBuffer(Math.max(this.granule, Math.ceil(size / this.granule) * this.granule))
        : this.free.splice(best, 1)[0];
    return Buffer.from(memory as SharedArrayBuffer, 0, size);
  };

  /** Gives back a buffer from take(), once nothing reads it any more. */
  give(buffer: Buffer): void {
    const memory = buffer.buffer;
    if (!(memory instanceof SharedArrayBuffer) || this.free.includes(memory)) return;
    this.free.push(memory);
    // Too many kept: drop the smallest (the larger ones serve any read).
    if (this.free.length > this.keep) {
      this.free.sort((a, b) => b.byteLength - a.byteLength);
      this.free.length = this.keep;
    }
  }
}
