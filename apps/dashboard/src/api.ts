import { ApiError, ControllerUnreachable, IbexClient } from '@ibex/client';
import { createContext, useCallback, useContext, useEffect, useRef, useState } from 'react';

const TOKEN_KEY = 'ibex.token';

/** The API token of this browser, kept in localStorage until the user signs out. */
export const session = {
  token: (): string | null => localStorage.getItem(TOKEN_KEY),
  save: (token: string) => localStorage.setItem(TOKEN_KEY, token),
  clear: () => localStorage.removeItem(TOKEN_KEY),
};

/** A client for the controller that served this page (same origin, so no URL to configure). */
export function clientFor(token: string): IbexClient {
  return new IbexClient({ baseUrl: window.location.origin, token, timeoutMs: 30_000 });
}

export const ApiContext = createContext<{ api: IbexClient; signOut: () => void } | null>(null);

export function useApi(): IbexClient {
  const ctx = useContext(ApiContext);
  if (!ctx) throw new Error('useApi outside ApiContext');
  return ctx.api;
}

export function useSignOut(): () => void {
  return useContext(ApiContext)!.signOut;
}

/** How often pages refresh what they show (live updates without reloading). */
export const POLL_MS = 2500;

export interface Polled<T> {
  data: T | undefined;
  error: unknown;
  /** Load again now (after an action). */
  reload: () => void;
}

/**
 * Loads `load()` now and every POLL_MS while the page is visible; keeps the last good data
 * while a later load fails (the error is shown beside it). `deps` restart it.
 */
export function usePoll<T>(load: (api: IbexClient) => Promise<T>, deps: unknown[], everyMs = POLL_MS): Polled<T> {
  const api = useApi();
  const ctx = useContext(ApiContext)!;
  const [data, setData] = useState<T>();
  const [error, setError] = useState<unknown>();
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let stopped = false;
    let timer: number | undefined;
    const run = async () => {
      try {
        const v = await loadRef.current(api);
        if (stopped) return;
        setData(v);
        setError(undefined);
      } catch (err) {
        if (stopped) return;
        // A token revoked or expired meanwhile: back to the login page.
        if (err instanceof ApiError && err.status === 401) return ctx.signOut();
        setError(err);
      }
      if (!stopped) timer = window.setTimeout(run, document.hidden ? everyMs * 4 : everyMs);
    };
    void run();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [api, tick, ...deps]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, reload };
}

/** An error as one line for people: the API's message, with the fields it names. */
export function errorText(err: unknown): string {
  if (err instanceof ApiError) return [err.message, ...err.issues.map((i) => `${i.path}: ${i.message}`)].join(' · ');
  if (err instanceof ControllerUnreachable) return 'The controller does not answer; retrying…';
  return err instanceof Error ? err.message : String(err);
}
