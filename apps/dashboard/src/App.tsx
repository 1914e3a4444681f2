import { useMemo, useState } from 'react';
import { ApiContext, clientFor, session } from './api';
import { LoginPage } from './pages/LoginPage';
import { href, match, useHashPath } from './router';
import { routes } from './routes';

export function App() {
  const [token, setToken] = useState(session.token);
  const path = useHashPath();
  const value = useMemo(
    () =>
      token
        ? {
            api: clientFor(token),
            signOut: () => {
              session.clear();
              setToken(null);
            },
          }
        : null,
    [token],
  );
  if (!value) {
    return (
      <LoginPage
        onSignedIn={(t) => {
          session.save(t);
          setToken(t);
        }}
      />
    );
  }
  let page = <NotFound />;
  for (const r of routes) {
    const params = match(r.path, path);
    if (params) {
      page = <r.page params={params} key={path} />;
      break;
    }
  }
  const section = '/' + (path.split('/')[1] ?? '');
  return (
    <ApiContext.Provider value={value}>
      <div className="shell">
        <header className="topbar">
          <a className="brand" href={href('/')}>
            <Logo />
            <span>Ibex</span>
          </a>
          <nav className="nav">
            {routes
              .filter((r) => r.nav)
              .map((r) => {
                const active = r.path === '/' ? section === '/' || section === '/devices' : section === r.path;
                return (
                  <a key={r.path} href={href(r.path)} className={active ? 'active' : ''}>
                    {r.nav}
                  </a>
                );
              })}
          </nav>
          <button className="btn btn-ghost signout" onClick={value.signOut}>
            Sign out
          </button>
        </header>
        <main className="content">{page}</main>
      </div>
    </ApiContext.Provider>
  );
}

export function Logo() {
  return (
    <svg viewBox="0 0 32 32" width="28" height="28" aria-hidden="true">
      <rect width="32" height="32" rx="7" fill="#15803d" />
      <path d="M7 23l5.5-12 3.2 7 3-4 6.3 9z" fill="#fff" />
    </svg>
  );
}

function NotFound() {
  return (
    <div className="empty">
      <h1>Not found</h1>
      <p>
        There is no such page. <a href={href('/')}>Back to the fleet</a>
      </p>
    </div>
  );
}
