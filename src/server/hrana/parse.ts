import type { CursorRequestBody, HranaBatch, HranaBatchCond, HranaStmt, PipelineRequestBody, StreamRequest } from './protocol.js';
import { HranaRequestError } from './values.js';

/**
 * Checks a request body against the protocol's shapes, so the session only meets well-formed
 * requests. Values and conditions are checked where they are used (values.ts, batch.ts). Unknown
 * fields are ignored, as the spec asks.
 */

type Json = Record<string, unknown>;

const fail = (message: string): never => {
  throw new HranaRequestError(message);
};

function object(value: unknown, what: string): Json {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(`${what} must be an object`);
  return value as Json;
}

function optionalString(value: unknown, what: string): string | null | undefined {
  if (value === undefined || value === null || typeof value === 'string') return value;
  return fail(`${what} must be a string or null`);
}

function int32(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < -(2 ** 31) || value >= 2 ** 31)
    fail(`${what} must be a 32-bit integer`);
  return value as number;
}

function optionalInt32(value: unknown, what: string): number | null | undefined {
  return value === undefined || value === null ? value : int32(value, what);
}

function array(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) fail(`${what} must be an array`);
  return value as unknown[];
}

function sqlSource(body: Json, what: string): { sql?: string | null; sql_id?: number | null } {
  // The common case first (text, no id), built without spreads: it runs for every statement.
  const sql = optionalString(body.sql, `${what}.sql`);
  const sqlId = optionalInt32(body.sql_id, `${what}.sql_id`);
  if ((sql === undefined || sql === null) === (sqlId === undefined || sqlId === null))
    fail(`${what} needs exactly one of "sql" and "sql_id"`);
  if (sqlId === undefined) return { sql };
  return sql === undefined ? { sql_id: sqlId } : { sql, sql_id: sqlId };
}

export function parseStmt(value: unknown, what = 'stmt'): HranaStmt {
  const body = object(value, what);
  const source = sqlSource(body, what);
  const args = body.args === undefined || body.args === null ? undefined : (array(body.args, `${what}.args`) as HranaStmt['args']);
  const namedArgs =
    body.named_args === undefined || body.named_args === null
      ? undefined
      : (array(body.named_args, `${what}.named_args`) as HranaStmt['named_args']);
  let wantRows: boolean | undefined;
  if (body.want_rows !== undefined && body.want_rows !== null) {
    if (typeof body.want_rows !== 'boolean') fail(`${what}.want_rows must be a boolean`);
    wantRows = body.want_rows as boolean;
  }
  // One object shape for every statement (absent fields are undefined), so the code that reads
  // statements sees a single shape.
  return { sql: source.sql, sql_id: source.sql_id, args, named_args: namedArgs, want_rows: wantRows };
}

export function parseBatch(value: unknown): HranaBatch {
  const body = object(value, 'batch');
  const steps = array(body.steps, 'batch.steps');
  return {
    steps: steps.map((step, index) => {
      const stepBody = object(step, `batch.steps[${index}]`);
      const condition = stepBody.condition;
      return {
        stmt: parseStmt(stepBody.stmt, `batch.steps[${index}].stmt`),
        ...(condition === undefined || condition === null
          ? {}
          : { condition: object(condition, 'condition') as unknown as HranaBatchCond }),
      };
    }),
  };
}

export function parseRequest(value: unknown): StreamRequest {
  const body = object(value, 'request');
  switch (body.type) {
    case 'close':
    case 'get_autocommit':
      return { type: body.type };
    case 'execute':
      return { type: 'execute', stmt: parseStmt(body.stmt) };
    case 'batch':
      return { type: 'batch', batch: parseBatch(body.batch) };
    case 'sequence':
    case 'describe':
      return { type: body.type, ...sqlSource(body, body.type) };
    case 'store_sql': {
      const sql = body.sql;
      if (typeof sql !== 'string') fail('store_sql.sql must be a string');
      return { type: 'store_sql', sql_id: int32(body.sql_id, 'store_sql.sql_id'), sql: sql as string };
    }
    case 'close_sql':
      return { type: 'close_sql', sql_id: int32(body.sql_id, 'close_sql.sql_id') };
    default:
      return fail(`unknown request type ${JSON.stringify(body.type)}`);
  }
}

/** How many statements a request's body holds (an execute 1, a batch its steps): the /v1 limit applies to the sum. */
export function statementCount(requests: readonly StreamRequest[]): number {
  return requests.reduce(
    (sum, request) =>
      sum + (request.type === 'batch' ? request.batch.steps.length : request.type === 'execute' || request.type === 'sequence' ? 1 : 0),
    0,
  );
}

export function parsePipelineBody(value: unknown): PipelineRequestBody {
  const body = object(value, 'the body');
  const baton = optionalString(body.baton, 'baton') ?? null;
  return { baton, requests: array(body.requests, 'requests').map((request) => parseRequest(request)) };
}

export function parseCursorBody(value: unknown): CursorRequestBody {
  const body = object(value, 'the body');
  return { baton: optionalString(body.baton, 'baton') ?? null, batch: parseBatch(body.batch) };
}
