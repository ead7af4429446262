import { useState } from 'preact/hooks';
import type { ApiError } from '../api.js';
import { asApiError, usePoll } from '../hooks.js';
import type { PageProps } from '../main.js';
import { needs } from '../permissions.js';
import { ACTIONS, type Action, type KeyInfo } from '../types.js';
import { ConfirmButton, ErrorBox } from '../ui.js';

/** Access keys: create (the secret shown once), list, revoke. Needs admin on "*". */
export function KeysPage({ api, permissions }: PageProps) {
  const mayManage = permissions.global('admin');
  const [name, setName] = useState('');
  const [databases, setDatabases] = useState('*');
  const [actions, setActions] = useState<Action[]>(['read']);
  const [created, setCreated] = useState<(KeyInfo & { secret: string }) | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const keys = usePoll(async () => (mayManage ? (await api.get<{ keys: KeyInfo[] }>('/v1/keys')).keys : []), 0, [mayManage]);

  const create = async (event: Event) => {
    event.preventDefault();
    setError(null);
    try {
      const patterns = databases
        .split(',')
        .map((pattern) => pattern.trim())
        .filter((pattern) => pattern !== '');
      const { key } = await api.post<{ key: KeyInfo & { secret: string } }>('/v1/keys', {
        name: name.trim(),
        databases: patterns,
        actions,
      });
      setCreated(key);
      setName('');
      keys.reload();
    } catch (caught) {
      setError(asApiError(caught));
    }
  };

  const revoke = async (id: string) => {
    setError(null);
    try {
      await api.delete(`/v1/keys/${encodeURIComponent(id)}`);
      keys.reload();
    } catch (caught) {
      setError(asApiError(caught));
    }
  };

  return (
    <section>
      {!mayManage && (
        <p class="hint" data-testid="keys-denied">
          Managing keys needs a key with admin on "*".
        </p>
      )}
      <form class="key-form" onSubmit={create}>
        <label>
          Name <input value={name} disabled={!mayManage} data-testid="key-name" onInput={(event) => setName(event.currentTarget.value)} />
        </label>
        <label>
          Databases (names or patterns, comma-separated){' '}
          <input
            value={databases}
            disabled={!mayManage}
            data-testid="key-databases"
            onInput={(event) => setDatabases(event.currentTarget.value)}
          />
        </label>
        <span class="checks">
          {ACTIONS.map((action) => (
            <label>
              <input
                type="checkbox"
                checked={actions.includes(action)}
                disabled={!mayManage}
                data-testid={`key-action-${action}`}
                onChange={(event) =>
                  setActions(event.currentTarget.checked ? [...actions, action] : actions.filter((other) => other !== action))
                }
              />{' '}
              {action}
            </label>
          ))}
        </span>
        <button
          type="submit"
          class="primary"
          disabled={!mayManage || name.trim() === '' || actions.length === 0}
          title={mayManage ? '' : needs('admin')}
          data-testid="key-create"
        >
          Create key
        </button>
      </form>
      {created && (
        <div class="secret" data-testid="new-key">
          <p>
            Key <strong>{created.name}</strong> ({created.id}) created. Its secret is shown <strong>this once</strong>; only its hash is
            kept:
          </p>
          <code data-testid="new-key-secret">{created.secret}</code>{' '}
          <button onClick={() => void navigator.clipboard?.writeText(created.secret)}>Copy</button>{' '}
          <button data-testid="new-key-dismiss" onClick={() => setCreated(null)}>
            I have saved it
          </button>
        </div>
      )}
      <ErrorBox error={error ?? keys.error} />
      {mayManage && (
        <table data-testid="keys">
          <thead>
            <tr>
              <th>Id</th>
              <th>Name</th>
              <th>Databases</th>
              <th>Actions</th>
              <th>Created</th>
              <th>Revoked</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {(keys.value ?? []).map((key) => (
              <tr data-testid={`key-${key.id}`} class={key.revokedAt ? 'dead' : ''}>
                <td>
                  <code>{key.id}</code>
                </td>
                <td>{key.name}</td>
                <td>{key.databases.join(', ')}</td>
                <td>{key.actions.join(', ')}</td>
                <td>{new Date(key.createdAt).toLocaleString()}</td>
                <td data-testid="key-revoked">{key.revokedAt ? new Date(key.revokedAt).toLocaleString() : ''}</td>
                <td>
                  {!key.revokedAt && (
                    <ConfirmButton
                      label="Revoke"
                      confirmLabel="Revoke for good"
                      question={<>Revoke {key.name}? Every node refuses it within a second.</>}
                      testId={`revoke-${key.id}`}
                      onConfirm={() => revoke(key.id)}
                    />
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
