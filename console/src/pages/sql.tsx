import { useState } from 'preact/hooks';
import { ApiError, db } from '../api.js';
import { asApiError } from '../hooks.js';
import type { PageProps } from '../main.js';
import { splitStatements } from '../sql-split.js';
import type { QueryAnswer, SqlValue, StatementResult } from '../types.js';
import { ErrorBox } from '../ui.js';

interface HistoryEntry {
  database: string;
  sql: string;
  params: string;
  at: string;
}

/**
 * Statements run from this browser, newest first, kept in localStorage per key id (SQL text and
 * parameters, never the key): signing in with another key shows that key's history only.
 */
const historyItem = (keyId: string): string => `litebase.console.history.${keyId}`;
const HISTORY_LIMIT = 50;

function readHistory(keyId: string): HistoryEntry[] {
  try {
    const parsed: unknown = JSON.parse(localStorage.getItem(historyItem(keyId)) ?? '[]');
    return Array.isArray(parsed) ? (parsed as HistoryEntry[]) : [];
  } catch {
    return [];
  }
}

function remember(keyId: string, entry: HistoryEntry): HistoryEntry[] {
  const history = [
    entry,
    ...readHistory(keyId).filter((old) => old.sql !== entry.sql || old.database !== entry.database || old.params !== entry.params),
  ].slice(0, HISTORY_LIMIT);
  localStorage.setItem(historyItem(keyId), JSON.stringify(history));
  return history;
}

/** The parameters box: empty, a JSON array (positional ?) or a JSON object (named :a, @a, $a). */
function parseParams(text: string): unknown[] | Record<string, unknown> | undefined {
  if (text.trim() === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ApiError(0, 'INVALID_PARAMETERS', `parameters must be JSON: ${(error as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object')
    throw new ApiError(0, 'INVALID_PARAMETERS', 'parameters must be a JSON array or object');
  return parsed as unknown[] | Record<string, unknown>;
}

function Value({ value }: { value: SqlValue }) {
  if (value === null) return <span class="null">NULL</span>;
  if (typeof value === 'object') return <span class="blob">blob ({Math.floor((value.base64.length * 3) / 4)} bytes)</span>;
  return <>{String(value)}</>;
}

function ResultGrid({ result, index }: { result: StatementResult; index: number }) {
  if (result.columns.length === 0) {
    return (
      <p class="hint" data-testid={`result-${index}`}>
        Statement {index + 1}: {result.rowsAffected} row{result.rowsAffected === 1 ? '' : 's'} changed
      </p>
    );
  }
  return (
    <div class="grid-wrap">
      <table class="grid" data-testid={`result-${index}`}>
        <thead>
          <tr>
            {result.columns.map((column) => (
              <th>{column}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {result.rows.map((row) => (
            <tr>
              {row.map((value) => (
                <td>
                  <Value value={value} />
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      <p class="hint">
        {result.rows.length} row{result.rows.length === 1 ? '' : 's'}
      </p>
    </div>
  );
}

interface PlanNode {
  id: number;
  detail: string;
  children: PlanNode[];
}

/** EXPLAIN QUERY PLAN rows (id, parent, notused, detail) as the tree sqlite3's shell draws. */
function planTree(result: StatementResult): PlanNode[] {
  const idColumn = result.columns.indexOf('id');
  const parentColumn = result.columns.indexOf('parent');
  const detailColumn = result.columns.indexOf('detail');
  const nodes = new Map<number, PlanNode>();
  const roots: PlanNode[] = [];
  for (const row of result.rows) {
    const node: PlanNode = { id: Number(row[idColumn]), detail: String(row[detailColumn]), children: [] };
    nodes.set(node.id, node);
    const parent = nodes.get(Number(row[parentColumn]));
    (parent ? parent.children : roots).push(node);
  }
  return roots;
}

function Plan({ nodes }: { nodes: PlanNode[] }) {
  return (
    <ul class="plan">
      {nodes.map((node) => (
        <li>
          {node.detail}
          {node.children.length > 0 && <Plan nodes={node.children} />}
        </li>
      ))}
    </ul>
  );
}

/** SQL editor: parameters, result grid, history, EXPLAIN QUERY PLAN, errors with their code. */
export function SqlPage({ api, permissions, params }: PageProps) {
  const readable = permissions.databasesWith('read');
  const [database, setDatabase] = useState(() => params.get('db') ?? readable[0] ?? '');
  const [sql, setSql] = useState('');
  const [paramsText, setParamsText] = useState('');
  const [mode, setMode] = useState<'transaction' | 'independent'>('transaction');
  const [answer, setAnswer] = useState<(QueryAnswer & { ms: number }) | null>(null);
  const [plan, setPlan] = useState<PlanNode[] | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const keyId = permissions.self.key.id;
  const [history, setHistory] = useState(() => readHistory(keyId));

  const run = async (explain: boolean) => {
    setError(null);
    setBusy(true);
    try {
      const statements = splitStatements(sql);
      if (statements.length === 0) throw new ApiError(0, 'EMPTY_SQL', 'type a statement first');
      const parsedParams = parseParams(paramsText);
      if (parsedParams !== undefined && statements.length > 1) {
        throw new ApiError(0, 'INVALID_PARAMETERS', 'parameters go with a single statement; run the statements one at a time');
      }
      const body = explain
        ? { statements: [{ sql: `EXPLAIN QUERY PLAN ${statements.at(-1)}`, ...(parsedParams ? { params: parsedParams } : {}) }] }
        : { statements: statements.map((statement) => ({ sql: statement, ...(parsedParams ? { params: parsedParams } : {}) })), mode };
      // Kept whether it succeeds or not: a failed statement is one to fix and run again.
      setHistory(remember(keyId, { database, sql, params: paramsText, at: new Date().toISOString() }));
      const started = performance.now();
      const result = await api.post<QueryAnswer>(`/v1/databases/${db(database)}/query`, body);
      const ms = performance.now() - started;
      if (explain) {
        setPlan(result.results[0] ? planTree(result.results[0]) : []);
        setAnswer(null);
      } else {
        setAnswer({ ...result, ms });
        setPlan(null);
      }
    } catch (caught) {
      setError(asApiError(caught));
      setAnswer(null);
      setPlan(null);
    } finally {
      setBusy(false);
    }
  };

  const mayWrite = permissions.on(database, 'write');
  return (
    <section class="sql">
      <div class="editor">
        <div class="inline">
          <label>
            Database{' '}
            <select value={database} data-testid="sql-database" onChange={(event) => setDatabase(event.currentTarget.value)}>
              {!readable.includes(database) && database !== '' && <option value={database}>{database}</option>}
              {readable.map((name) => (
                <option value={name}>{name}</option>
              ))}
            </select>
          </label>
          <label>
            Mode{' '}
            <select value={mode} onChange={(event) => setMode(event.currentTarget.value as 'transaction' | 'independent')}>
              <option value="transaction">one transaction</option>
              <option value="independent">each statement on its own</option>
            </select>
          </label>
          {!mayWrite && database !== '' && (
            <span class="badge" data-testid="sql-read-only">
              read-only key: writes will be refused
            </span>
          )}
        </div>
        <textarea
          class="code"
          rows={8}
          spellcheck={false}
          placeholder="SELECT * FROM sqlite_schema;   (Ctrl+Enter runs)"
          value={sql}
          data-testid="sql-editor"
          onInput={(event) => setSql(event.currentTarget.value)}
          onKeyDown={(event) => {
            if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
              event.preventDefault();
              void run(false);
            }
          }}
        />
        <label>
          Parameters (JSON array for ?, object for :name)
          <input
            class="code"
            value={paramsText}
            placeholder='[1, "a"]  or  {"id": 1}'
            data-testid="sql-params"
            onInput={(event) => setParamsText(event.currentTarget.value)}
          />
        </label>
        <div class="inline">
          <button class="primary" disabled={busy || database === ''} data-testid="sql-run" onClick={() => run(false)}>
            Run
          </button>
          <button disabled={busy || database === ''} data-testid="sql-explain" onClick={() => run(true)}>
            EXPLAIN QUERY PLAN
          </button>
        </div>
        <ErrorBox error={error} />
        {answer && (
          <div data-testid="sql-results">
            <p class="hint" data-testid="sql-summary">
              Position {answer.position} · answered by {answer.node} ({answer.role}) · {answer.ms.toFixed(1)} ms
            </p>
            {answer.results.map((result, index) => (
              <ResultGrid result={result} index={index} />
            ))}
          </div>
        )}
        {plan && (
          <div data-testid="sql-plan">
            <h2>Query plan</h2>
            <Plan nodes={plan} />
          </div>
        )}
      </div>
      <aside class="history">
        <h2>History</h2>
        <ol data-testid="sql-history">
          {history.map((entry) => (
            <li>
              <button
                class="link"
                title={entry.at}
                onClick={() => {
                  setDatabase(entry.database);
                  setSql(entry.sql);
                  setParamsText(entry.params);
                }}
              >
                <small>{entry.database}</small> <code>{entry.sql.length > 80 ? `${entry.sql.slice(0, 80)}…` : entry.sql}</code>
              </button>
            </li>
          ))}
        </ol>
      </aside>
    </section>
  );
}
