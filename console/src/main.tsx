import { render } from 'preact';
import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { Api, ApiError } from './api.js';
import { asApiError } from './hooks.js';
import { Permissions } from './permissions.js';
import { href, useRoute } from './route.js';
import { session } from './session.js';
import type { KeySelf } from './types.js';
import { ErrorBox } from './ui.js';
import { ClusterPage } from './pages/cluster.js';
import { DatabasesPage } from './pages/databases.js';
import { KeysPage } from './pages/keys.js';
import { MetricsPage } from './pages/metrics.js';
import { RestorePage } from './pages/restore.js';
import { SqlPage } from './pages/sql.js';
import { StatementsPage } from './pages/statements.js';

/** What every page gets: the API with the key, what the key may do, and a way to re-read that. */
export interface PageProps {
  api: Api;
  permissions: Permissions;
  refreshPermissions: () => Promise<void>;
  params: URLSearchParams;
}

const PAGES: Array<{ id: string; title: string; component: (props: PageProps) => preact.JSX.Element }> = [
  { id: 'databases', title: 'Databases', component: DatabasesPage },
  { id: 'sql', title: 'SQL', component: SqlPage },
  { id: 'statements', title: 'Statements', component: StatementsPage },
  { id: 'cluster', title: 'Cluster', component: ClusterPage },
  { id: 'restore', title: 'Restore', component: RestorePage },
  { id: 'keys', title: 'Access keys', component: KeysPage },
  { id: 'metrics', title: 'Metrics', component: MetricsPage },
];

function SignIn({ onSignedIn, reason }: { onSignedIn: (key: string, self: KeySelf) => void; reason: ApiError | null }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<ApiError | null>(reason);
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    try {
      const self = await new Api(key.trim()).get<KeySelf>('/v1/keys/self');
      session.signIn(key.trim());
      onSignedIn(key.trim(), self);
    } catch (caught) {
      setError(asApiError(caught));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="sign-in">
      <h1>Litebase console</h1>
      <form onSubmit={submit}>
        <label>
          Access key
          <input
            type="password"
            autocomplete="off"
            value={key}
            data-testid="sign-in-key"
            onInput={(event) => setKey(event.currentTarget.value)}
          />
        </label>
        <button type="submit" disabled={busy || key.trim() === ''} data-testid="sign-in">
          Sign in
        </button>
        <p class="hint">The key stays in this tab (sessionStorage) and goes with every API call as a Bearer token.</p>
      </form>
      <ErrorBox error={error} />
    </main>
  );
}

function Console() {
  const route = useRoute();
  const [key, setKey] = useState<string | null>(() => session.key());
  const [self, setSelf] = useState<KeySelf | null>(null);
  const [signedOutBecause, setSignedOutBecause] = useState<ApiError | null>(null);

  const signOut = useCallback((reason: ApiError | null) => {
    session.signOut();
    setKey(null);
    setSelf(null);
    setSignedOutBecause(reason);
  }, []);
  const api = useMemo(() => (key ? new Api(key, (error) => signOut(error)) : null), [key, signOut]);
  const refreshPermissions = useCallback(async () => {
    if (api) setSelf(await api.get<KeySelf>('/v1/keys/self'));
  }, [api]);

  useEffect(() => {
    // A reload of the tab: the key is still in sessionStorage, its permissions are read again.
    if (api && !self) refreshPermissions().catch((error: unknown) => signOut(asApiError(error)));
  }, [api]);

  if (!key || !api) {
    return (
      <SignIn
        reason={signedOutBecause}
        onSignedIn={(signedInKey, signedInSelf) => {
          setSelf(signedInSelf);
          setKey(signedInKey);
          setSignedOutBecause(null);
        }}
      />
    );
  }
  if (!self) return <main class="loading">Loading…</main>;
  const permissions = new Permissions(self);
  const page = PAGES.find((candidate) => candidate.id === route.page) ?? PAGES[0]!;
  const Page = page.component;
  return (
    <div class="shell">
      <header>
        <span class="brand">Litebase</span>
        <nav>
          {PAGES.map((candidate) => (
            <a href={href(candidate.id)} class={candidate.id === page.id ? 'active' : ''} data-testid={`nav-${candidate.id}`}>
              {candidate.title}
            </a>
          ))}
        </nav>
        <span class="who" data-testid="signed-in-as">
          {self.key.name} <small>({self.key.root ? 'root' : self.key.actions.join(', ')})</small>
        </span>
        <button data-testid="sign-out" onClick={() => signOut(null)}>
          Sign out
        </button>
      </header>
      <main>
        <h1>{page.title}</h1>
        <Page key={page.id} api={api} permissions={permissions} refreshPermissions={refreshPermissions} params={route.params} />
      </main>
    </div>
  );
}

render(<Console />, document.getElementById('app') as HTMLElement);
