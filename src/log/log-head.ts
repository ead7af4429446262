import { closeSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { formatPosition } from '../storage/layout.js';

/** The head file's name inside a log folder (docs/FORMAT.md §7). */
export const LOG_HEAD_FILE = 'HEAD';

/**
 * `log/HEAD` holds the newest position the Primary appended, rewritten in place after every
 * segment. It is a wake-up signal, never a source of truth: replicas watch this one file instead
 * of the folder, because a folder watcher (chokidar) re-lists and stats every segment in the folder
 * on each change, which grows with the log and delayed new segments by hundreds of milliseconds.
 * Readers always go by the segment files themselves.
 */
export class LogHead {
  private failed = false;

  constructor(
    readonly file: string,
    private readonly logger?: Logger,
  ) {}

  static inFolder(logDir: string, logger?: Logger): LogHead {
    return new LogHead(path.join(logDir, LOG_HEAD_FILE), logger);
  }

  /**
   * What the Primary's append worker writes into this file right after segment `position` is
   * durable (src/log/append-thread.ts), before the hop back to a busy main thread: not fsynced,
   * since losing it loses nothing but a wake-up; no O_TRUNC, since the content has a fixed length
   * and a truncation would wake watchers twice; opened per write, so nothing stays open on a folder
   * that a drop may delete. A failure is logged once and otherwise ignored: replicas still poll.
   */
  announcement(position: bigint): { file: string; content: string } {
    return { file: this.file, content: LogHead.content(position) };
  }

  static content(position: bigint): string {
    return `${formatPosition(position)}\n`;
  }

  announced(): void {
    this.failed = false;
  }

  announceFailed(error: unknown): void {
    if (!this.failed) this.logger?.warn({ err: error, file: this.file }, 'could not update the log head; replicas fall back to polling');
    this.failed = true;
  }

  /**
   * The position the file names, or undefined when it names none (missing, empty, torn): a hint
   * of how far the log goes, never proof.
   */
  read(): bigint | undefined {
    try {
      const text = readFileSync(this.file, 'latin1');
      return /^\d{20}\n$/.test(text) ? BigInt(text.slice(0, -1)) : undefined;
    } catch {
      return undefined;
    }
  }

  /** Create the file if it is missing, so a watcher can watch it before the first announcement. */
  ensureExists(): void {
    closeSync(openSync(this.file, 'a'));
  }
}
