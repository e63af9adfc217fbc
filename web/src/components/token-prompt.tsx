import { useState } from 'preact/hooks';
import { errorMessage } from '../format';

/**
 * Asks for the API token: once per browser tab, and again when the API refuses it. The token is
 * checked before the prompt goes away (`onSubmit` rejects with the reason).
 */
export function TokenPrompt({ message, onSubmit }: { message?: string; onSubmit: (token: string) => Promise<void> }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    const value = token.trim();
    if (!value) {
      setError('Enter a token.');
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      await onSubmit(value);
    } catch (err) {
      setError(errorMessage(err));
      setBusy(false);
    }
  };

  return (
    <main id="main" class="token-page">
      <form class="token-form" onSubmit={submit} aria-labelledby="token-title" aria-busy={busy}>
        <h1 id="token-title">Kiln</h1>
        {message && <p class="note">{message}</p>}
        <label for="token">API token</label>
        <input
          id="token"
          type="password"
          autoComplete="off"
          spellcheck={false}
          required
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
          aria-describedby="token-help"
          aria-invalid={error !== undefined}
        />
        <p id="token-help" class="help">
          A token from <code>kiln token create</code>. It is kept in this browser tab only, until the tab is closed.
        </p>
        {error && (
          <p class="error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
