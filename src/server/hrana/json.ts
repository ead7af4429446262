import type {
  CursorEntry,
  HranaBatchResult,
  HranaCol,
  HranaStmtResult,
  HranaValue,
  PipelineResponseBody,
  StreamResult,
} from './protocol.js';

/**
 * The JSON text of a pipeline answer, written out field by field. The answer is many small
 * objects (every value is one), and JSON.stringify in Node 20 looks up `toJSON` on each of them:
 * for a point read that took most of the time Hrana spends beyond /v1. Each call of JSON.stringify
 * also leaves JavaScript for V8's runtime (some 0.1 us), so strings that need no escaping, numbers
 * and null are written here; any string that needs escaping still goes through JSON.stringify. The
 * text parses back to the same structure (test/unit/server/hrana/json.test.ts).
 */

const text = JSON.stringify;

/** A character JSON.stringify writes other than as itself: quote, backslash, control, or half a surrogate pair. */
// eslint-disable-next-line no-control-regex -- the control characters are what it looks for
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

function stringJson(value: string): string {
  return NEEDS_ESCAPE.test(value) ? text(value) : `"${value}"`;
}

/** A string, or null. */
function nullableJson(value: string | null): string {
  return value === null ? 'null' : stringJson(value);
}

/** A number as JSON.stringify writes it (the same digits; null when not finite). */
function numberJson(value: number): string {
  return Number.isFinite(value) ? String(value) : 'null';
}

/** The text of a Hrana value; anything that is not one of its five shapes goes to JSON.stringify. */
function valueJson(value: HranaValue): string {
  switch (value.type) {
    case 'null':
      return '{"type":"null"}';
    case 'integer':
      return `{"type":"integer","value":${stringJson(value.value)}}`;
    case 'float':
      return `{"type":"float","value":${numberJson(value.value)}}`;
    case 'text':
      return `{"type":"text","value":${stringJson(value.value)}}`;
    case 'blob':
      return `{"type":"blob","base64":${stringJson(value.base64)}}`;
    default:
      return text(value);
  }
}

function rowJson(row: readonly HranaValue[]): string {
  let json = '[';
  for (let column = 0; column < row.length; column++) {
    if (column > 0) json += ',';
    json += valueJson(row[column] as HranaValue);
  }
  return `${json}]`;
}

/** The text of a statement's columns, by their array (values.ts hands out one array per prepared statement). */
const colsTexts = new WeakMap<readonly HranaCol[], string>();

function colsJson(cols: readonly HranaCol[]): string {
  let json = colsTexts.get(cols);
  if (json === undefined) {
    json = '[';
    for (let index = 0; index < cols.length; index++) {
      const col = cols[index];
      if (index > 0) json += ',';
      json += `{"name":${text(col?.name ?? null)},"decltype":${text(col?.decltype ?? null)}}`;
    }
    json += ']';
    colsTexts.set(cols, json);
  }
  return json;
}

export function stmtResultJson(result: HranaStmtResult): string {
  let json = `{"cols":${colsJson(result.cols)},"rows":[`;
  for (let index = 0; index < result.rows.length; index++) {
    const row = result.rows[index] ?? [];
    json += index > 0 ? `,${rowJson(row)}` : rowJson(row);
  }
  return `${json}],"affected_row_count":${numberJson(result.affected_row_count)},"last_insert_rowid":${nullableJson(result.last_insert_rowid)}}`;
}

function batchResultJson(result: HranaBatchResult): string {
  let steps = '';
  let errors = '';
  for (let index = 0; index < result.step_results.length; index++) {
    const step = result.step_results[index] ?? null;
    const error = result.step_errors[index] ?? null;
    if (index > 0) {
      steps += ',';
      errors += ',';
    }
    steps += step === null ? 'null' : stmtResultJson(step);
    errors += error === null ? 'null' : text(error);
  }
  return `{"step_results":[${steps}],"step_errors":[${errors}]}`;
}

function streamResultJson(result: StreamResult): string {
  if (result.type !== 'ok') return text(result);
  const response = result.response;
  switch (response.type) {
    case 'execute':
      return `{"type":"ok","response":{"type":"execute","result":${stmtResultJson(response.result)}}}`;
    case 'batch':
      return `{"type":"ok","response":{"type":"batch","result":${batchResultJson(response.result)}}}`;
    case 'close':
      return '{"type":"ok","response":{"type":"close"}}';
    default:
      return text(result);
  }
}

/** `JSON.stringify(body)`, cheaper for the statement results inside. */
export function pipelineResponseJson(body: PipelineResponseBody): string {
  let results = '';
  for (let index = 0; index < body.results.length; index++) {
    if (index > 0) results += ',';
    results += streamResultJson(body.results[index] as StreamResult);
  }
  return `{"baton":${nullableJson(body.baton)},"base_url":${nullableJson(body.base_url)},"results":[${results}]}`;
}

/** One line of a v3 cursor: `JSON.stringify(entry)`, cheaper for rows. */
export function cursorEntryJson(entry: CursorEntry): string {
  return entry.type === 'row' ? `{"type":"row","row":${rowJson(entry.row)}}` : text(entry);
}
