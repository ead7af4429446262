import { watch, type FSWatcher } from 'chokidar';
import path from 'node:path';
import type { Logger } from 'pino';

export interface LogTailerOptions {
  dir: string;
  /** Poll interval: catches what file watching misses (NFS shows a watcher only local changes). */
  pollMs: number;
  /** Watch the folder with chokidar as well as polling (off: poll only). */
  watch: boolean;
  /** Called when the log may have grown. Calls are not queued: the callee reads the folder. */
  onChange: () => void;
  logger: Logger;
}

/**
 * Tells a replica when a log folder may have new segments (DESIGN.md §6): a file watcher for
 * speed, a poll for correctness, and `nudge()` for a notice from the Primary over the network.
 * It only signals; reading and verifying segments is the caller's job.
 */
export class LogTailer {
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: LogTailerOptions) {}

  start(): void {
    const { dir, pollMs, onChange, logger } = this.options;
    if (this.options.watch) {
      // Temp files (a segment before its link) would cost a stat each and say nothing new.
      this.watcher = watch(dir, {
        ignoreInitial: true,
        depth: 0,
        persistent: false,
        ignored: (file: string) => path.basename(file).startsWith('.'),
      });
      this.watcher.on('add', (file: string) => {
        if (file.endsWith('.seg')) onChange();
      });
      this.watcher.on('error', (error: unknown) => logger.warn({ err: error, dir }, 'log watcher failed; polling continues'));
    }
    this.timer = setInterval(onChange, pollMs);
    this.timer.unref();
  }

  /** Someone (the Primary) says there is something new. */
  nudge(): void {
    this.options.onChange();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.watcher?.close();
    this.watcher = undefined;
  }
}
