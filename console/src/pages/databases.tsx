import { useState } from 'preact/hooks';
import { db, type ApiError } from '../api.js';
import { asApiError, usePoll } from '../hooks.js';
import type { PageProps } from '../main.js';
import { needs } from '../permissions.js';
import { href } from '../route.js';
import type { ClusterInfo, DatabaseInfo, QueryAnswer } from '../types.js';
import { ConfirmButton, ErrorBox, formatBytes, saveBlob } from '../ui.js';

/** Sizes are page_count × page_size, read with a PRAGMA any reader may run, for this many databases at most. */
const SIZE_LIMIT = 200;

const formatSize = (bytes: number | null | undefined): string =>
  bytes === null || bytes === undefined || Number.isNaN(bytes) ? '–' : formatBytes(bytes);

/** Databases: size, position, per-node lag; create and drop (with confirmation). */
export function DatabasesPage({ api, permissions, refreshPermissions }: PageProps) {
  const [name, setName] = useState('');
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const mayCluster = permissions.global('cluster');

  const list = usePoll(async () => (await api.get<{ databases: DatabaseInfo[] }>('/v1/databases')).databases, 3000);
  const names = (list.value ?? []).map((database) => database.name);
  // Sizes cost a query each: read less often, and for the first SIZE_LIMIT databases only.
  const sizes = usePoll(
    async () => {
      const entries = await Promise.all(
        names.slice(0, SIZE_LIMIT).map(async (name): Promise<[string, number | null]> => {
          try {
            const answer = await api.post<QueryAnswer>(`/v1/databases/${db(name)}/query`, { statements: [{ sql: 'PRAGMA page_count' }] });
            const pageSize = list.value?.find((database) => database.name === name)?.pageSize ?? NaN;
            return [name, Number(answer.results[0]?.rows[0]?.[0] ?? NaN) * pageSize];
          } catch {
            return [name, null];
          }
        }),
      );
      return new Map(entries);
    },
    15_000,
    [names.join('\u0000')],
  );
  const cluster = usePoll(async () => (mayCluster ? api.get<ClusterInfo>('/v1/cluster') : null), 3000, [mayCluster]);
  const nodes = cluster.value?.nodes ?? [];

  const create = async (event: Event) => {
    event.preventDefault();
    setActionError(null);
    try {
      await api.post('/v1/databases', { name: name.trim() });
      setName('');
      await refreshPermissions();
      list.reload();
    } catch (error) {
      setActionError(asApiError(error));
    }
  };

  const drop = async (database: string) => {
    setActionError(null);
    try {
      await api.delete(`/v1/databases/${db(database)}`);
      await refreshPermissions();
      list.reload();
    } catch (error) {
      setActionError(asApiError(error));
    }
  };

  const download = async (database: string) => {
    setActionError(null);
    try {
      const { blob } = await api.blob(`/v1/databases/${db(database)}/backup`);
      saveBlob(blob, `${database}.sqlite`);
    } catch (error) {
      setActionError(asApiError(error));
    }
  };

  const mayCreate = permissions.mayCreateDatabases();
  return (
    <section>
      <form class="inline" onSubmit={create}>
        <input
          placeholder="new database name"
          value={name}
          pattern="[a-z0-9][a-z0-9_\-]{0,62}"
          disabled={!mayCreate}
          data-testid="create-database-name"
          onInput={(event) => setName(event.currentTarget.value)}
        />
        <button
          type="submit"
          disabled={!mayCreate || name.trim() === ''}
          title={mayCreate ? '' : needs('admin')}
          data-testid="create-database"
        >
          Create database
        </button>
      </form>
      <ErrorBox error={actionError ?? list.error} />
      <table data-testid="databases">
        <thead>
          <tr>
            <th>Name</th>
            <th>Size</th>
            <th>Position</th>
            {nodes.map((node) => (
              <th>
                Lag on {node.nodeId} <small>({node.role})</small>
              </th>
            ))}
            <th>Created</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(list.value ?? []).map((database) => (
            <tr data-testid={`database-${database.name}`}>
              <td>
                <a href={href('sql', { db: database.name })}>{database.name}</a>
              </td>
              <td data-testid="database-size">{formatSize(sizes.value?.get(database.name))}</td>
              <td data-testid="database-position">{database.position}</td>
              {nodes.map((node) => {
                const entry = node.databases[database.name];
                return <td>{entry ? (entry.lag === null ? '?' : String(entry.lag)) : '–'}</td>;
              })}
              <td>{new Date(database.createdAt).toLocaleString()}</td>
              <td class="actions">
                <a href={href('restore', { db: database.name })}>Restore</a>
                <button onClick={() => download(database.name)}>Backup</button>
                <ConfirmButton
                  label="Drop"
                  confirmLabel="Drop for good"
                  question={<>Type the name to drop {database.name} and all its data:</>}
                  typeToConfirm={database.name}
                  disabled={!permissions.on(database.name, 'admin')}
                  title={permissions.on(database.name, 'admin') ? '' : needs('admin', database.name)}
                  testId={`drop-${database.name}`}
                  onConfirm={() => drop(database.name)}
                />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.value?.length === 0 && <p class="hint">No databases this key may read.</p>}
      {!mayCluster && <p class="hint">Per-node lag needs a key with the cluster permission.</p>}
    </section>
  );
}
