import type { CursorEntry, HranaBatchCond, HranaBatchResult } from './protocol.js';
import { HranaRequestError } from './values.js';

/** What became of each step of a batch so far. */
export type StepOutcome = 'ok' | 'error' | 'skipped';

/**
 * A batch step's condition (HRANA_3_SPEC.md, "Conditions"). A condition may only look back: a
 * step it names that has not run (a later one) counts as skipped.
 */
export function evaluateCondition(cond: HranaBatchCond, outcomes: readonly StepOutcome[], isAutocommit: boolean): boolean {
  switch (cond.type) {
    case 'ok':
      return outcomes[cond.step] === 'ok';
    case 'error':
      return outcomes[cond.step] === 'error';
    case 'not':
      return !evaluateCondition(cond.cond, outcomes, isAutocommit);
    case 'and':
      return cond.conds.every((inner) => evaluateCondition(inner, outcomes, isAutocommit));
    case 'or':
      return cond.conds.some((inner) => evaluateCondition(inner, outcomes, isAutocommit));
    case 'is_autocommit':
      return isAutocommit;
    default:
      throw new HranaRequestError(`unknown batch condition ${JSON.stringify((cond as { type?: unknown }).type)}`);
  }
}

/** A batch's result as the lines of a v3 cursor: step_begin, rows, step_end per step run; step_error per failed one. */
export function cursorEntries(result: HranaBatchResult): CursorEntry[] {
  const entries: CursorEntry[] = [];
  result.step_results.forEach((stepResult, step) => {
    const error = result.step_errors[step];
    if (error) {
      entries.push({ type: 'step_error', step, error });
      return;
    }
    if (!stepResult) return;
    entries.push({ type: 'step_begin', step, cols: stepResult.cols });
    for (const row of stepResult.rows) entries.push({ type: 'row', row });
    entries.push({ type: 'step_end', affected_row_count: stepResult.affected_row_count, last_insert_rowid: stepResult.last_insert_rowid });
  });
  return entries;
}
