import { LocationProvider, Route, Router, useLocation } from 'preact-iso';
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, clearToken, getToken, onTokenRefused, setToken } from './api';
import { TokenPrompt } from './components/token-prompt';
import { errorMessage } from './format';
import { RunPage } from './pages/run-page';
import { RunsPage } from './pages/runs-page';
import { TaskPage } from './pages/task-page';
import { TasksPage } from './pages/tasks-page';
import { TriggersPage } from './pages/triggers-page';
import { SessionContext, type Session } from './session';
import type { Whoami } from './types';

/**
 * The console: the token prompt until the API accepts a token, then the pages, routed with the
 * history API (the API answers index.html for every client route).
 */
export function App() {
  const [session, setSession] = useState<Session | undefined>(undefined);
  const [message, setMessage] = useState<string | undefined>(undefined);
  const [checking, setChecking] = useState(() => getToken() !== null);

  useEffect(
    () =>
      onTokenRefused(() => {
        setSession(undefined);
        setMessage('The API refused the token (it may have been revoked). Enter it again.');
      }),
    [],
  );

  // A token kept from earlier in this tab: check it once.
  useEffect(() => {
    if (getToken() === null) return;
    whoami()
      .then(setSession, (err: unknown) => {
        if (!(err instanceof ApiError && err.status === 401)) setMessage(`Could not reach the API: ${errorMessage(err)}`);
      })
      .finally(() => setChecking(false));
  }, []);

  const signIn = async (token: string): Promise<void> => {
    setToken(token);
    try {
      setSession(await whoami());
      setMessage(undefined);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        // Not "revoked": this token was never taken.
        setMessage(undefined);
        throw new Error('The API refused this token.');
      }
      throw err;
    }
  };

  const signOut = (): void => {
    clearToken();
    setSession(undefined);
    setMessage('Signed out.');
  };

  if (checking) return <p class="note">Checking the token…</p>;
  if (!session) return <TokenPrompt message={message} onSubmit={signIn} />;
  return (
    <SessionContext.Provider value={session}>
      <LocationProvider>
        <Layout session={session} onSignOut={signOut} />
      </LocationProvider>
    </SessionContext.Provider>
  );
}

/** The token's name and role (and a check that the API takes it). */
function whoami(): Promise<Whoami> {
  return api<Whoami>('/v1/whoami');
}

const SECTIONS = [
  { href: '/runs', label: 'Runs', match: (path: string) => path === '/' || path.startsWith('/runs') },
  { href: '/tasks', label: 'Tasks', match: (path: string) => path.startsWith('/tasks') },
  { href: '/triggers', label: 'Triggers', match: (path: string) => path.startsWith('/triggers') },
];

function Layout({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const { path } = useLocation();
  const main = useRef<HTMLElement>(null);
  const shownPath = useRef(path);

  // A new page: focus goes to its content, as a full page load would put it at the top.
  useEffect(() => {
    if (shownPath.current === path) return;
    shownPath.current = path;
    main.current?.focus();
    window.scrollTo(0, 0);
  }, [path]);

  return (
    <>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <a class="brand" href="/runs">
          Kiln
        </a>
        <nav aria-label="Sections">
          <ul>
            {SECTIONS.map((s) => (
              <li key={s.href}>
                <a href={s.href} aria-current={s.match(path) ? 'page' : undefined}>
                  {s.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <span>
            {session.name ?? 'signed in'}
            {` · ${session.role}`}
          </span>
          <button type="button" class="link-button" onClick={onSignOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        <Router>
          <Route path="/" component={RunsPage} />
          <Route path="/runs" component={RunsPage} />
          <Route path="/runs/:id" component={RunPage} />
          <Route path="/tasks" component={TasksPage} />
          <Route path="/tasks/:name" component={TaskPage} />
          <Route path="/triggers" component={TriggersPage} />
          <Route default component={NotFound} />
        </Router>
      </main>
    </>
  );
}

function NotFound() {
  return (
    <section>
      <h1>Not found</h1>
      <p>
        Nothing here. <a href="/runs">See the runs</a>.
      </p>
    </section>
  );
}
