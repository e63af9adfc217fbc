import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { stream } from './api';
import type { RunEvent } from './types';

/** What a page loaded: the last good data stays shown while a reload runs or fails. */
export interface Loaded<T> {
  data: T | undefined;
  error: Error | undefined;
  loading: boolean;
  reload: () => void;
}

/**
 * Loads with `load` when `key` changes, and again on `reload()`. Reloads that are asked for while
 * one runs are folded into one more after it, so a burst of live events costs two requests.
 */
export function useLoad<T>(key: string, load: (signal: AbortSignal) => Promise<T>): Loaded<T> {
  const [state, setState] = useState<{ data: T | undefined; error: Error | undefined; loading: boolean }>({ data: undefined, error: undefined, loading: true });
  const loadRef = useRef(load);
  loadRef.current = load;
  const control = useRef({ running: false, again: false, abort: new AbortController() });

  const run = useCallback(() => {
    const c = control.current;
    if (c.running) {
      c.again = true;
      return;
    }
    c.running = true;
    const signal = c.abort.signal;
    setState((s) => ({ ...s, loading: true }));
    loadRef
      .current(signal)
      .then(
        (data) => !signal.aborted && setState({ data, error: undefined, loading: false }),
        (error: unknown) => !signal.aborted && setState((s) => ({ ...s, error: error instanceof Error ? error : new Error(String(error)), loading: false })),
      )
      .finally(() => {
        if (control.current !== c) return;
        c.running = false;
        if (c.again && !signal.aborted) {
          c.again = false;
          run();
        }
      });
  }, []);

  useEffect(() => {
    control.current = { running: false, again: false, abort: new AbortController() };
    setState({ data: undefined, error: undefined, loading: true });
    run();
    const c = control.current;
    return () => c.abort.abort();
  }, [key, run]);

  return { ...state, reload: run };
}

/** How often a page polls when the server refuses the run events stream. */
const POLL_MS = 5000;

/**
 * Calls `onChange` when runs change: on each `event: run` of `GET /v1/runs/events` (of one run
 * when `runId` is given) and on each (re)connection, since events may have been missed while it
 * was away. Where the server refuses the stream, it polls instead.
 */
export function useRunEvents(runId: string | undefined, onChange: (event?: RunEvent) => void): void {
  const changed = useRef(onChange);
  changed.current = onChange;
  useEffect(() => {
    const abort = new AbortController();
    let poll: ReturnType<typeof setInterval> | undefined;
    const path = runId === undefined ? '/v1/runs/events' : `/v1/runs/events?run=${encodeURIComponent(runId)}`;
    void stream(
      path,
      {
        onOpen: () => changed.current(),
        onEvent: (event, data) => {
          if (event !== 'run') return;
          try {
            changed.current(JSON.parse(data) as RunEvent);
          } catch {
            changed.current();
          }
        },
        onRefused: () => {
          poll = setInterval(() => changed.current(), POLL_MS);
        },
      },
      abort.signal,
    );
    return () => {
      abort.abort();
      if (poll !== undefined) clearInterval(poll);
    };
  }, [runId]);
}

/** The current time, ticking every `ms` while `active` (live durations of running runs). */
export function useNow(active: boolean, ms = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [active, ms]);
  return active ? now : Date.now();
}

/** Sets the document's title for the page shown. */
export function useTitle(title: string): void {
  useEffect(() => {
    document.title = `${title} · Kiln`;
  }, [title]);
}

/** `fn`, called at most once per `ms` after the last call of a burst (live events come in bursts). */
export function useDebounced(fn: () => void, ms: number): () => void {
  const latest = useRef(fn);
  latest.current = fn;
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => () => clearTimeout(timer.current), []);
  return useCallback(() => {
    clearTimeout(timer.current);
    timer.current = setTimeout(() => latest.current(), ms);
  }, [ms]);
}

/** Whether the media query matches now (e.g. a narrow screen), following its changes. */
export function useMediaQuery(query: string): boolean {
  const [matches, setMatches] = useState(() => window.matchMedia(query).matches);
  useEffect(() => {
    const list = window.matchMedia(query);
    const changed = (): void => setMatches(list.matches);
    list.addEventListener('change', changed);
    changed();
    return () => list.removeEventListener('change', changed);
  }, [query]);
  return matches;
}
