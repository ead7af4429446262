import { LitebaseError } from '../errors.js';

interface Waiter {
  position: bigint;
  resolve: () => void;
}

/**
 * Reads that asked for `minPosition` wait here until the node has that position (durable on a
 * Primary, applied on a Replica), or give up after a bounded time with 503 POSITION_NOT_REACHED.
 * The owner calls `release` whenever its position moves.
 */
export class PositionWaiters {
  private readonly waiters: Waiter[] = [];

  constructor(private readonly timeoutMs: number) {}

  async wait(position: bigint, current: () => bigint): Promise<void> {
    if (current() >= position) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const index = this.waiters.indexOf(waiter);
        if (index >= 0) this.waiters.splice(index, 1);
        reject(
          new LitebaseError(
            'POSITION_NOT_REACHED',
            `position ${position} was not reached within ${this.timeoutMs} ms (this node is at ${current()})`,
            { details: { position: current().toString() } },
          ),
        );
      }, this.timeoutMs);
      const waiter: Waiter = {
        position,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      this.waiters.push(waiter);
    });
  }

  release(current: bigint): void {
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const waiter = this.waiters[i];
      if (waiter && waiter.position <= current) {
        this.waiters.splice(i, 1);
        waiter.resolve();
      }
    }
  }
}
