import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Lines of history kept, in memory and (roughly) in the file. */
export const HISTORY_LIMIT = 1000;

/**
 * The history file: `LITEBASE_HISTORY` when set (empty: keep no history), else
 * `$XDG_STATE_HOME/litebase/history` when XDG_STATE_HOME is set, else `~/.litebase_history`.
 */
export function historyFile(env: NodeJS.ProcessEnv, home: string): string | null {
  const configured = env.LITEBASE_HISTORY;
  if (configured !== undefined) return configured === '' ? null : path.resolve(configured);
  const state = env.XDG_STATE_HOME;
  // The XDG spec says a relative path there is invalid and is to be ignored.
  if (state !== undefined && path.isAbsolute(state)) return path.join(state, 'litebase', 'history');
  return path.join(home, '.litebase_history');
}

/**
 * The lines in the file, newest first, as readline takes them; none when it cannot be read. A
 * file grown to twice the limit is cut back to the newest lines (the shell only ever appends).
 */
export function loadHistory(file: string): string[] {
  let lines: string[];
  try {
    lines = readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '');
  } catch {
    return [];
  }
  const kept = lines.slice(-HISTORY_LIMIT);
  if (lines.length > 2 * HISTORY_LIMIT) {
    try {
      writeFileSync(file, `${kept.join('\n')}\n`, { mode: 0o600 });
    } catch {
      // history is a convenience: a file we cannot rewrite stays as it is
    }
  }
  return kept.reverse();
}

/**
 * Append one entered line. The file is made with mode 0600: statements may hold data worth
 * keeping private. Answers false when the line could not be written.
 */
export function appendHistory(file: string, line: string): boolean {
  if (line.trim() === '') return true;
  try {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    appendFileSync(file, `${line.replaceAll('\n', ' ')}\n`, { mode: 0o600 });
    return true;
  } catch {
    return false;
  }
}
