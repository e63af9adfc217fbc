import type { ComponentChildren } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { stream } from '../api';
import type { LogLine } from '../types';

/**
 * A run's log, followed live over SSE (`?follow=1`, resumed after the last offset on reconnect).
 * Each line has its step as a prefix; a step filter and a search narrow what is shown. It
 * scrolls itself to the newest line until the reader scrolls up, and again once they are back at
 * the bottom. Only the newest MAX_LINES stay in the page (a long build log would slow it down).
 */

export const MAX_LINES = 5000;
/** Lines that arrive together are added together. */
const FLUSH_MS = 60;
/** How close to the bottom counts as "at the bottom", in pixels. */
const BOTTOM_SLACK = 12;

interface Entry extends LogLine {
  /** The SSE id: the line's offset in the log, unique and increasing. */
  key: number;
}

type Phase = { kind: 'connecting' } | { kind: 'live' } | { kind: 'ended'; status: string } | { kind: 'refused'; message: string };

export function LogView({
  runId,
  steps,
  step,
  onStep,
  onEnd,
}: {
  runId: string;
  /** The run's steps, for the filter (steps seen in the log are added). */
  steps: readonly string[];
  step: string;
  onStep: (step: string) => void;
  /** The log ended: the run has its final status. */
  onEnd?: () => void;
}) {
  const [lines, setLines] = useState<Entry[]>([]);
  const [received, setReceived] = useState(0);
  const [phase, setPhase] = useState<Phase>({ kind: 'connecting' });
  const [search, setSearch] = useState('');
  const [follow, setFollow] = useState(true);
  const box = useRef<HTMLDivElement>(null);
  const ended = useRef(onEnd);
  ended.current = onEnd;

  useEffect(() => {
    setLines([]);
    setReceived(0);
    setPhase({ kind: 'connecting' });
    const abort = new AbortController();
    let pending: Entry[] = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    let counter = 0;
    const flush = (): void => {
      timer = undefined;
      const batch = pending;
      pending = [];
      setReceived((n) => n + batch.length);
      setLines((old) => {
        const all = old.concat(batch);
        return all.length <= MAX_LINES ? all : all.slice(all.length - MAX_LINES);
      });
    };
    void stream(
      `/v1/runs/${encodeURIComponent(runId)}/logs?follow=1`,
      {
        onOpen: () => setPhase((p) => (p.kind === 'ended' ? p : { kind: 'live' })),
        onEvent: (event, data) => {
          if (event === 'line') {
            pending.push({ ...(JSON.parse(data) as LogLine), key: counter++ });
            timer ??= setTimeout(flush, FLUSH_MS);
          } else if (event === 'end') {
            if (timer !== undefined) clearTimeout(timer);
            flush();
            setPhase({ kind: 'ended', status: (JSON.parse(data) as { status?: string }).status ?? 'ended' });
            ended.current?.();
            return 'stop';
          } else if (event === 'error') {
            // The server could not read the log; the stream ends and is resumed after the last line.
            setPhase({ kind: 'connecting' });
          }
        },
        onRefused: (error) => setPhase({ kind: 'refused', message: error.message }),
      },
      abort.signal,
    );
    return () => {
      abort.abort();
      if (timer !== undefined) clearTimeout(timer);
    };
  }, [runId]);

  const dropped = received - lines.length;
  const needle = search.trim().toLowerCase();
  const shown = lines.filter((l) => (step === '' || l.step === step) && (needle === '' || l.line.toLowerCase().includes(needle)));

  // Keep the newest line in view while following.
  useLayoutEffect(() => {
    const el = box.current;
    if (el && follow) el.scrollTop = el.scrollHeight;
  }, [shown.length, follow, lines]);

  const onScroll = (): void => {
    const el = box.current;
    if (!el) return;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight <= BOTTOM_SLACK;
    if (atBottom !== follow) setFollow(atBottom);
  };

  const stepIds = [...new Set([...steps, ...lines.map((l) => l.step)])];

  return (
    <div class="log-view">
      <div class="log-tools" role="group" aria-label="Log filters">
        <div class="field">
          <label for="log-step">Step</label>
          <select id="log-step" value={step} onChange={(e) => onStep(e.currentTarget.value)}>
            <option value="">All steps</option>
            {stepIds.map((id) => (
              <option key={id} value={id}>
                {id}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="log-search">Search</label>
          <input id="log-search" type="search" value={search} onInput={(e) => setSearch(e.currentTarget.value)} placeholder="text in the log" />
        </div>
        <button
          type="button"
          class="secondary"
          aria-pressed={follow}
          onClick={() => {
            const el = box.current;
            if (el && !follow) el.scrollTop = el.scrollHeight;
            setFollow(!follow);
          }}
        >
          Auto-scroll
        </button>
      </div>
      <p class="log-status" role="status">
        {phaseText(phase)}
        {follow ? '' : ' Auto-scroll is paused: scroll to the bottom or press Auto-scroll to resume it.'}
      </p>
      <p class="log-count">
        {needle !== '' || step !== '' ? `${shown.length} of ${lines.length} lines shown.` : ''}
        {dropped > 0 ? ` Only the last ${MAX_LINES.toLocaleString()} lines are kept here; ${dropped.toLocaleString()} earlier lines are not shown (kiln runs logs ${runId} has them all).` : ''}
      </p>
      <div
        ref={box}
        class="log"
        role="log"
        aria-live="polite"
        aria-relevant="additions"
        aria-label={`Log of run ${runId}`}
        tabIndex={0}
        onScroll={onScroll}
        data-testid="log"
      >
        {shown.map((l) => (
          <div key={l.key} class={`log-line${l.stream === 'stderr' ? ' stderr' : ''}`} data-step={l.step}>
            <span class={`log-prefix c${colourOf(l.step)}`}>{l.step}</span>
            <span class="log-text">{needle ? highlight(l.line, needle) : l.line}</span>
          </div>
        ))}
        {shown.length === 0 && <div class="log-empty">{lines.length === 0 ? 'No log lines yet.' : 'No line matches.'}</div>}
      </div>
    </div>
  );
}

function phaseText(phase: Phase): string {
  switch (phase.kind) {
    case 'connecting':
      return 'Connecting to the log…';
    case 'live':
      return 'Following the log live.';
    case 'ended':
      return `The log has ended (${phase.status}).`;
    case 'refused':
      return `The log cannot be read: ${phase.message}`;
    default: {
      const never: never = phase;
      return String(never);
    }
  }
}

/** A stable colour (one of 8 classes) per step id. */
function colourOf(step: string): number {
  let h = 0;
  for (let i = 0; i < step.length; i++) h = (h * 31 + step.charCodeAt(i)) | 0;
  return Math.abs(h) % 8;
}

function highlight(line: string, needle: string): ComponentChildren {
  const lower = line.toLowerCase();
  const parts: ComponentChildren[] = [];
  let from = 0;
  for (let at = lower.indexOf(needle); at !== -1; at = lower.indexOf(needle, from)) {
    if (at > from) parts.push(line.slice(from, at));
    parts.push(<mark key={at}>{line.slice(at, at + needle.length)}</mark>);
    from = at + needle.length;
  }
  parts.push(line.slice(from));
  return parts;
}
