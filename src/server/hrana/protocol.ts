/**
 * The JSON structures of Hrana over HTTP (tursodatabase/libsql docs/HRANA_3_SPEC.md and
 * docs/HTTP_V2_SPEC.md) that Litebase serves, as TypeScript types. Only the JSON encoding.
 */

export type HranaValue =
  | { type: 'null' }
  | { type: 'integer'; value: string }
  | { type: 'float'; value: number }
  | { type: 'text'; value: string }
  | { type: 'blob'; base64: string };

export interface HranaNamedArg {
  name: string;
  value: HranaValue;
}

export interface HranaStmt {
  sql?: string | null;
  sql_id?: number | null;
  args?: HranaValue[];
  named_args?: HranaNamedArg[];
  want_rows?: boolean;
}

export interface HranaCol {
  name: string | null;
  decltype: string | null;
}

export interface HranaStmtResult {
  cols: HranaCol[];
  rows: HranaValue[][];
  affected_row_count: number;
  last_insert_rowid: string | null;
}

export interface HranaError {
  message: string;
  code: string | null;
}

export type HranaBatchCond =
  | { type: 'ok'; step: number }
  | { type: 'error'; step: number }
  | { type: 'not'; cond: HranaBatchCond }
  | { type: 'and'; conds: HranaBatchCond[] }
  | { type: 'or'; conds: HranaBatchCond[] }
  | { type: 'is_autocommit' };

export interface HranaBatchStep {
  condition?: HranaBatchCond | null;
  stmt: HranaStmt;
}

export interface HranaBatch {
  steps: HranaBatchStep[];
}

export interface HranaBatchResult {
  step_results: Array<HranaStmtResult | null>;
  step_errors: Array<HranaError | null>;
}

export interface HranaDescribeResult {
  params: Array<{ name: string | null }>;
  cols: Array<{ name: string; decltype: string | null }>;
  is_explain: boolean;
  is_readonly: boolean;
}

export type StreamRequest =
  | { type: 'close' }
  | { type: 'execute'; stmt: HranaStmt }
  | { type: 'batch'; batch: HranaBatch }
  | { type: 'sequence'; sql?: string | null; sql_id?: number | null }
  | { type: 'describe'; sql?: string | null; sql_id?: number | null }
  | { type: 'store_sql'; sql_id: number; sql: string }
  | { type: 'close_sql'; sql_id: number }
  | { type: 'get_autocommit' };

export type StreamResponse =
  | { type: 'close' }
  | { type: 'execute'; result: HranaStmtResult }
  | { type: 'batch'; result: HranaBatchResult }
  | { type: 'sequence' }
  | { type: 'describe'; result: HranaDescribeResult }
  | { type: 'store_sql' }
  | { type: 'close_sql' }
  | { type: 'get_autocommit'; is_autocommit: boolean };

export type StreamResult = { type: 'ok'; response: StreamResponse } | { type: 'error'; error: HranaError };

export interface PipelineRequestBody {
  baton: string | null;
  requests: StreamRequest[];
}

export interface PipelineResponseBody {
  baton: string | null;
  base_url: string | null;
  results: StreamResult[];
}

export interface CursorRequestBody {
  baton: string | null;
  batch: HranaBatch;
}

export type CursorEntry =
  | { type: 'step_begin'; step: number; cols: HranaCol[] }
  | { type: 'step_end'; affected_row_count: number; last_insert_rowid: string | null }
  | { type: 'step_error'; step: number; error: HranaError }
  | { type: 'row'; row: HranaValue[] }
  | { type: 'error'; error: HranaError };
