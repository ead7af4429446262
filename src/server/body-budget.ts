/**
 * Large request bodies in memory at once, bounded (docs/ARCHITECTURE.md §2.6). A request whose
 * body is large (Content-Length of 64 KiB or more) waits, before its body is read, until its
 * length fits in the budget beside the large bodies of the requests still being handled; it gives
 * its share back when its response is done or its connection closes. Meanwhile its body stays in
 * the socket (the kernel's buffer, then the client), not in this process. Without it, memory grew
 * with the number of clients sending ~10 MiB bodies at once: each body read, then decoded, then
 * copied by SQLite. Requests are admitted in order; a body larger than the budget is admitted
 * alone. Small requests never wait.
 */

/** Bodies at least this large take a share of the budget (json-body.ts decodes such bodies' BLOBs). */
export const LARGE_BODY_BYTES = 64 * 1024;

export interface BodyTicket {
  /** Resolves once the body may be read. */
  readonly admitted: Promise<void>;
  /** The request is done (or gone): give the share back, or leave the queue. Idempotent. */
  release(): void;
}

export class BodyBudget {
  private used = 0;
  private readonly queue: Array<{ bytes: number; admit: () => void }> = [];

  /** `limit` bytes of large bodies at once; 0 admits everything at once. */
  constructor(readonly limit: number) {}

  /** Bytes of the bodies admitted and not released. */
  get inUse(): number {
    return this.used;
  }

  /** Requests waiting to be admitted. */
  get waiting(): number {
    return this.queue.length;
  }

  request(bytes: number): BodyTicket {
    let state: 'waiting' | 'admitted' | 'released' = 'waiting';
    let resolveAdmitted: () => void = () => undefined;
    const admitted = new Promise<void>((resolve) => (resolveAdmitted = resolve));
    const entry = {
      bytes,
      admit: (): void => {
        state = 'admitted';
        this.used += bytes;
        resolveAdmitted();
      },
    };
    const release = (): void => {
      if (state === 'released') return;
      if (state === 'admitted') this.used -= bytes;
      else this.queue.splice(this.queue.indexOf(entry), 1);
      state = 'released';
      this.admitWhatFits();
    };
    this.queue.push(entry);
    this.admitWhatFits();
    return { admitted, release };
  }

  private admitWhatFits(): void {
    for (;;) {
      const next = this.queue[0];
      if (!next) return;
      if (this.limit > 0 && this.used > 0 && this.used + next.bytes > this.limit) return;
      this.queue.shift();
      next.admit();
    }
  }
}
