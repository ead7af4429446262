import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type BetterSqlite3 from 'better-sqlite3';

type Database = BetterSqlite3.Database;

/**
 * Where `npm run build` puts the extension (infra/build-native.mjs): beside the compiled code in
 * dist/src/native, which is also where the TypeScript sources (under vitest) find it.
 */
const CANDIDATES = ['../native/statement-deadline.so', '../../dist/src/native/statement-deadline.so'].map((relative) =>
  fileURLToPath(new URL(relative, import.meta.url)),
);

/** The built extension, or undefined when it was not built (no C compiler at install time). */
export function statementDeadlineLibrary(): string | undefined {
  return CANDIDATES.find((candidate) => existsSync(candidate));
}

/**
 * A time limit for the statements of one connection (src/native/statement-deadline.c): armed
 * before a statement runs, disarmed after; a statement still running at the deadline fails with
 * SQLITE_INTERRUPT, however it loops. This is what stops a looping write on the node's write
 * connection, where better-sqlite3 itself has no way to interrupt SQLite.
 */
export class StatementDeadline {
  private constructor(
    private readonly call: BetterSqlite3.Statement<[Buffer, number], number>,
    private readonly key: Buffer,
  ) {}

  /**
   * Load the extension into `db` and claim its function with a random key, before any client SQL
   * runs there: a client's statement calling `litebase_deadline` is refused by the extension.
   * Throws when the extension is missing or does not load.
   */
  static attach(db: Database, library = statementDeadlineLibrary()): StatementDeadline {
    if (library === undefined) throw new Error('the statement-deadline extension was not built (npm run build needs a C compiler)');
    db.loadExtension(library);
    const call = db.prepare<[Buffer, number], number>('SELECT litebase_deadline(?, ?)').pluck();
    const key = randomBytes(32);
    call.get(key, 0);
    return new StatementDeadline(call, key);
  }

  /** The next statement on the connection is interrupted if it still runs `ms` from now. */
  arm(ms: number): void {
    this.call.get(this.key, Math.max(1, Math.ceil(ms)));
  }

  disarm(): void {
    try {
      this.call.get(this.key, 0);
    } catch (error) {
      // The deadline fired between the end of the statement and now: the statement finished in
      // time, and the interrupt has hit only this call.
      if ((error as { code?: unknown }).code !== 'SQLITE_INTERRUPT') throw error;
    }
  }
}

/** True for the error SQLite raises in a statement its deadline interrupted. */
export function isInterrupted(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === 'SQLITE_INTERRUPT';
}
