import { ApiError } from '@ibex/client';
import { type FormEvent, useState } from 'react';
import { clientFor, errorText } from '../api';
import { Logo } from '../App';

/** Sign in with an API token: it is checked against the controller, then kept in this browser. */
export function LoginPage({ onSignedIn }: { onSignedIn: (token: string) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  async function submit(e: FormEvent) {
    e.preventDefault();
    const t = token.trim();
    if (!/^ibx_[A-Za-z0-9]{20,128}$/.test(t)) {
      setError('An API token starts with ibx_ followed by 20 to 128 letters or digits.');
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      await clientFor(t).listDevices({ limit: 1 });
      onSignedIn(t);
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? 'The controller does not accept this token (unknown, revoked or expired).' : errorText(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="login">
      <form className="login-card" onSubmit={submit}>
        <div className="login-brand">
          <Logo />
          <h1>Ibex</h1>
        </div>
        <p className="muted">Fleet manager for edge Linux devices. Sign in with an API token.</p>
        <label htmlFor="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autoComplete="current-password"
          placeholder="ibx_…"
          value={token}
          onChange={(e) => setToken(e.target.value)}
          autoFocus
        />
        {error && (
          <div className="note note-bad" role="alert">
            {error}
          </div>
        )}
        <button className="btn btn-primary" type="submit" disabled={busy || !token}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
        <p className="hint">
          <code>npm start</code> keeps an admin token in <code>.ibex/admin-token</code>; create others with <code>ibexctl api-tokens create</code>.
        </p>
      </form>
    </div>
  );
}
