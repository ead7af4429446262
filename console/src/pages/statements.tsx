import { useState } from 'preact/hooks';
import { db, type ApiError } from '../api.js';
import { asApiError, usePoll } from '../hooks.js';
import type { PageProps } from '../main.js';
import { needs } from '../permissions.js';
import type { StatementStats, StatementsAnswer } from '../types.js';
import { ConfirmButton, ErrorBox, formatAge } from '../ui.js';

/** The columns, how each sorts, and how each shows. */
interface Column {
  id: string;
  title: string;
  value: (row: StatementStats) => number | string;
  show?: (row: StatementStats) => string;
  /** Text columns sort ascending first; numbers descending (most first). */
  text?: boolean;
}

/** Milliseconds as people read them: three significant digits. */
export const formatMs = (ms: number): string => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toPrecision(3));

const COLUMNS: Column[] = [
  { id: 'sql', title: 'Statement', value: (row) => row.sql, text: true },
  { id: 'count', title: 'Runs', value: (row) => row.count },
  {
    id: 'errors',
    title: 'Errors',
    value: (row) => row.errors,
    show: (row) => (row.lastError ? `${row.errors} (${row.lastError.code})` : String(row.errors)),
  },
  { id: 'totalMs', title: 'Total ms', value: (row) => row.totalMs, show: (row) => formatMs(row.totalMs) },
  { id: 'meanMs', title: 'Mean ms', value: (row) => row.meanMs, show: (row) => formatMs(row.meanMs) },
  { id: 'p50Ms', title: 'p50 ms', value: (row) => row.p50Ms, show: (row) => formatMs(row.p50Ms) },
  { id: 'p90Ms', title: 'p90 ms', value: (row) => row.p90Ms, show: (row) => formatMs(row.p90Ms) },
  { id: 'p99Ms', title: 'p99 ms', value: (row) => row.p99Ms, show: (row) => formatMs(row.p99Ms) },
  { id: 'rowsRead', title: 'Rows read', value: (row) => row.rowsRead },
  { id: 'rowsWritten', title: 'Rows written', value: (row) => row.rowsWritten },
  { id: 'lastSeen', title: 'Last seen', value: (row) => row.lastSeen, show: (row) => formatAge(row.lastSeen) },
];

/** Server-side orders (which statements come back at all) and the column each matches. */
const ORDERS: Array<{ order: StatementsAnswer['order']; column: string; title: string }> = [
  { order: 'total', column: 'totalMs', title: 'total time' },
  { order: 'count', column: 'count', title: 'runs' },
  { order: 'p99', column: 'p99Ms', title: 'p99' },
  { order: 'mean', column: 'meanMs', title: 'mean time' },
  { order: 'errors', column: 'errors', title: 'errors' },
];
const LIMIT = 100;

/**
 * Statements: the normalized statements the node this page talks to ran on a database (or, merged
 * by that node, every live node's), with runs, errors, latency quantiles and rows
 * (GET /v1/databases/:db/statements), read every 5 s. The table sorts by any column in the
 * browser; "top by" picks which 100 the node sends.
 */
export function StatementsPage({ api, permissions, params }: PageProps) {
  const readable = permissions.databasesWith('read');
  const [database, setDatabase] = useState(() => params.get('db') ?? readable[0] ?? '');
  const [order, setOrder] = useState<StatementsAnswer['order']>('total');
  const [scope, setScope] = useState<StatementsAnswer['scope']>('node');
  const [sort, setSort] = useState<{ column: string; descending: boolean }>({ column: 'totalMs', descending: true });
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const answer = usePoll(
    async () =>
      database ? api.get<StatementsAnswer>(`/v1/databases/${db(database)}/statements?limit=${LIMIT}&order=${order}&scope=${scope}`) : null,
    5000,
    [database, order, scope],
  );

  const column = COLUMNS.find((candidate) => candidate.id === sort.column) ?? (COLUMNS[3] as Column);
  const rows = [...(answer.value?.statements ?? [])].sort((a, b) => {
    const x = column.value(a);
    const y = column.value(b);
    const ascending = x < y ? -1 : x > y ? 1 : 0;
    return sort.descending ? -ascending : ascending;
  });
  const sortBy = (id: string) =>
    setSort((current) =>
      current.column === id
        ? { column: id, descending: !current.descending }
        : { column: id, descending: !COLUMNS.find((c) => c.id === id)?.text },
    );

  const reset = async () => {
    setActionError(null);
    try {
      await api.delete(`/v1/databases/${db(database)}/statements`);
      answer.reload();
    } catch (error) {
      setActionError(asApiError(error));
    }
  };

  const mayReset = database !== '' && permissions.on(database, 'admin');
  const info = answer.value;
  return (
    <section>
      <div class="inline">
        <label>
          Database{' '}
          <select value={database} data-testid="statements-database" onChange={(event) => setDatabase(event.currentTarget.value)}>
            {!readable.includes(database) && database !== '' && <option value={database}>{database}</option>}
            {readable.map((name) => (
              <option value={name}>{name}</option>
            ))}
          </select>
        </label>
        <label>
          Top {LIMIT} by{' '}
          <select
            value={order}
            data-testid="statements-order"
            onChange={(event) => {
              const next = event.currentTarget.value as StatementsAnswer['order'];
              setOrder(next);
              setSort({ column: ORDERS.find((candidate) => candidate.order === next)?.column ?? 'totalMs', descending: true });
            }}
          >
            {ORDERS.map((candidate) => (
              <option value={candidate.order}>{candidate.title}</option>
            ))}
          </select>
        </label>
        <label>
          Counted on{' '}
          <select
            value={scope}
            data-testid="statements-scope"
            onChange={(event) => setScope(event.currentTarget.value as StatementsAnswer['scope'])}
          >
            <option value="node">this node</option>
            <option value="cluster">every node (merged)</option>
          </select>
        </label>
        <button onClick={() => answer.reload()}>Refresh</button>
        <ConfirmButton
          label="Reset"
          confirmLabel="Reset the counts"
          question={<>Start this node's statement counts for {database} again?</>}
          disabled={!mayReset}
          title={mayReset ? '' : needs('admin', database || undefined)}
          testId="statements-reset"
          onConfirm={reset}
        />
      </div>
      <ErrorBox error={actionError ?? answer.error} />
      {info && (
        <p class="hint" data-testid="statements-summary">
          {info.scope === 'cluster'
            ? `On ${(info.nodes ?? []).map((part) => (part.ok ? `${part.node} (${part.role})` : `${part.node} (${part.error?.code ?? 'no answer'})`)).join(', ')}, merged`
            : `On node ${info.node} (${info.role})`}
          : {info.tracked} statement{info.tracked === 1 ? '' : 's'} tracked
          {info.since ? ` since ${new Date(info.since).toLocaleString()}` : ''}
          {info.evicted > 0 ? `, ${info.evicted} dropped to stay within ${info.maxTracked}` : ''}. Each node counts the statements it ran:
          writes on the Primary, reads where they were served.
          {!info.enabled && ' Statement metrics are off on this node (--statement-metrics-max 0).'}
        </p>
      )}
      <div class="grid-wrap">
        <table data-testid="statements">
          <thead>
            <tr>
              {COLUMNS.map((candidate) => (
                <th>
                  <button class="link" data-testid={`statements-sort-${candidate.id}`} onClick={() => sortBy(candidate.id)}>
                    {candidate.title}
                    {sort.column === candidate.id ? (sort.descending ? ' ▼' : ' ▲') : ''}
                  </button>
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((row) => (
              <tr data-testid={`statement-${row.id}`}>
                {COLUMNS.map((candidate) => (
                  <td
                    class={candidate.id === 'sql' ? 'code statement-sql' : 'number'}
                    data-column={candidate.id}
                    title={candidate.id === 'sql' ? row.sql : undefined}
                  >
                    {candidate.show ? candidate.show(row) : String(candidate.value(row))}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {info && info.statements.length === 0 && <p class="hint">No statements on this node for {database} yet.</p>}
      {readable.length === 0 && <p class="hint">No databases this key may read.</p>}
    </section>
  );
}
