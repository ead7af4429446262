import type { CursorEntry, HranaBatchResult, HranaStmtResult, HranaValue, PipelineResponseBody, StreamResult } from './protocol.js';

/**
 * The JSON text of a pipeline answer, written out field by field. The answer is many small
 * objects (every value is one), and JSON.stringify in Node 20 looks up `toJSON` on each of them:
 * for a point read that took most of the time Hrana spends beyond /v1. Every string and number
 * still goes through JSON.stringify, so escaping and number formatting are JSON.stringify's; the
 * text parses back to the same structure (test/unit/server/hrana/json.test.ts).
 */

const text = JSON.stringify;

/** The text of a Hrana value; anything that is not one of its five shapes goes to JSON.stringify. */
function valueJson(value: HranaValue): string {
  switch (value.type) {
    case 'null':
      return '{"type":"null"}';
    case 'integer':
      return `{"type":"integer","value":${text(value.value)}}`;
    case 'float':
      return `{"type":"float","value":${text(value.value)}}`;
    case 'text':
      return `{"type":"text","value":${text(value.value)}}`;
    case 'blob':
      return `{"type":"blob","base64":${text(value.base64)}}`;
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

export function stmtResultJson(result: HranaStmtResult): string {
  let json = '{"cols":[';
  for (let index = 0; index < result.cols.length; index++) {
    const col = result.cols[index];
    if (index > 0) json += ',';
    json += `{"name":${text(col?.name ?? null)},"decltype":${text(col?.decltype ?? null)}}`;
  }
  json += '],"rows":[';
  for (let index = 0; index < result.rows.length; index++) {
    const row = result.rows[index] ?? [];
    json += index > 0 ? `,${rowJson(row)}` : rowJson(row);
  }
  return `${json}],"affected_row_count":${text(result.affected_row_count)},"last_insert_rowid":${text(result.last_insert_rowid)}}`;
}

function batchResultJson(result: HranaBatchResult): string {
  const steps = result.step_results.map((step) => (step === null ? 'null' : stmtResultJson(step)));
  return `{"step_results":[${steps.join(',')}],"step_errors":${text(result.step_errors)}}`;
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
  const results = body.results.map(streamResultJson);
  return `{"baton":${text(body.baton)},"base_url":${text(body.base_url)},"results":[${results.join(',')}]}`;
}

/** One line of a v3 cursor: `JSON.stringify(entry)`, cheaper for rows. */
export function cursorEntryJson(entry: CursorEntry): string {
  return entry.type === 'row' ? `{"type":"row","row":${rowJson(entry.row)}}` : text(entry);
}
