import { LitebaseError } from '../errors.js';

export type Release = () => void;

/**
 * The write lock of one database: one writer at a time, waiters served in arrival order, each
 * waiting at most its own timeout. `tryAcquire` is the synchronous fast path that keeps an
 * uncontended write from paying for a promise.
 */
export class AsyncMutex {
  private held = false;
  private readonly waiters: Array<{ grant: (release: Release) => void; timer: NodeJS.Timeout }> = [];

  get isHeld(): boolean {
    return this.held;
  }

  tryAcquire(): Release | undefined {
    if (this.held) return undefined;
    this.held = true;
    return this.releaser();
  }

  acquire(timeoutMs: number): Promise<Release> {
    const release = this.tryAcquire();
    if (release) return Promise.resolve(release);
    return new Promise((resolve, reject) => {
      const waiter = {
        grant: resolve,
        timer: setTimeout(() => {
          const index = this.waiters.indexOf(waiter);
          if (index >= 0) this.waiters.splice(index, 1);
          reject(
            new LitebaseError('WRITE_LOCK_TIMEOUT', `the write lock was not free within ${timeoutMs} ms (a long transaction holds it)`),
          );
        }, timeoutMs),
      };
      this.waiters.push(waiter);
    });
  }

  private releaser(): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      if (next) {
        clearTimeout(next.timer);
        next.grant(this.releaser());
      } else {
        this.held = false;
      }
    };
  }
}
