import { watch, type FSWatcher } from 'chokidar';
import type { Logger } from 'pino';
import { LogHead } from './log-head.js';

export interface LogTailerOptions {
  dir: string;
  /** Poll interval: catches what file watching misses (NFS shows a watcher only local changes). */
  pollMs: number;
  /** Watch the log's head file with chokidar as well as polling (off: poll only). */
  watch: boolean;
  /**
   * Called when the log may have grown. Calls are not queued: the callee reads the folder. From the
   * watcher it gets the position the head file names (a hint: the segments up to it exist, so
   * nothing past it need be looked for); from the poll and from nudges nothing.
   */
  onChange: (head?: bigint) => void;
  logger: Logger;
}

/**
 * Tells a replica when a log folder may have new segments (docs/ARCHITECTURE.md §6.1): a watcher on the log's
 * head file for speed, a poll for correctness (NFS shows a watcher only this machine's changes),
 * and `nudge()` for a notice from the Primary over the network. It only signals; reading and
 * verifying segments is the caller's job.
 */
export class LogTailer {
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastWatchEvent = 0;
  /** News came another way since the last poll (`heard`): the poll skips one look. */
  private heardSincePoll = false;

  constructor(private readonly options: LogTailerOptions) {}

  start(): void {
    const { dir, pollMs, onChange, logger } = this.options;
    if (this.options.watch) this.watchHead(dir, onChange, logger);
    this.timer = setInterval(() => {
      if (this.heardSincePoll) this.heardSincePoll = false;
      else onChange();
    }, pollMs);
    this.timer.unref();
  }

  /**
   * Watch the log's head file (src/log/log-head.ts), which the Primary rewrites after every
   * segment. chokidar's 'raw' event is the file system's own notice, passed on at once; its 'change'
   * event comes after a stat and drops notices less than 5 ms apart.
   */
  private watchHead(dir: string, onChange: (head?: bigint) => void, logger: Logger): void {
    const head = LogHead.inFolder(dir);
    try {
      head.ensureExists();
    } catch (error) {
      logger.warn({ err: error, file: head.file }, 'cannot create the log head file; polling only');
      return;
    }
    this.watcher = watch(head.file, { ignoreInitial: true, persistent: false });
    this.watcher.on('raw', () => {
      this.lastWatchEvent = Date.now();
      onChange(head.read());
    });
    this.watcher.on('error', (error: unknown) => logger.warn({ err: error, file: head.file }, 'log watcher failed; polling continues'));
  }

  /**
   * Whether the watcher has reported a change within `withinMs`: then it sees the Primary's
   * writes (a local file system) and nudges add nothing. On NFS, where a watcher sees only this
   * machine's changes, it never does.
   */
  watcherSeesChanges(withinMs: number): boolean {
    return this.watcher !== undefined && Date.now() - this.lastWatchEvent <= withinMs;
  }

  /**
   * The log's news came another way (a nudge that carried the new segments): the next poll is
   * skipped. On a distributed file system a look at the log is a listing and reads of a file
   * another client appends to; while nudges bring everything, the poll only has to notice when
   * they stop, which the poll after a quiet interval does.
   */
  heard(): void {
    this.heardSincePoll = true;
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
