import { useLocation } from 'preact-iso';
import { useEffect, useState } from 'preact/hooks';
import { api, query } from '../api';
import { ChoiceFilter, ErrorNote, StatusBadge, TableBox, TableHead, TaskFilter } from '../components/common';
import { dateTime } from '../format';
import { useDebounced, useLoad, useRunEvents, useTitle } from '../hooks';
import { TRIGGER_ACTIONS, TRIGGER_EVENT_SOURCES, type TriggerEvent, type TriggerEventPage } from '../types';

/**
 * The triggers' decision log: what each webhook, registry notification, poll and timer did, or
 * why it did nothing. Filtered by the URL's query; refreshed when runs start, and on demand.
 */

const PAGE = 100;

export function TriggersPage() {
  useTitle('Triggers');
  const { query: q, route } = useLocation();
  const filters = { task: q.task ?? '', source: q.source ?? '', action: q.action ?? '' };
  const events = useLoad(`${filters.task}|${filters.source}|${filters.action}`, (signal) =>
    api<TriggerEventPage>(`/v1/triggers/events${query({ ...filters, limit: PAGE })}`, { signal }),
  );
  // Older pages, fetched with the cursor; dropped when the filters change.
  const [older, setOlder] = useState<{ items: TriggerEvent[]; next?: string | null; error?: Error }>({ items: [] });
  useEffect(() => setOlder({ items: [] }), [filters.task, filters.source, filters.action]);
  const refresh = useDebounced(events.reload, 500);
  useRunEvents(undefined, (event) => event?.status === 'Queued' && refresh());

  const setFilter = (name: keyof typeof filters, value: string): void => route(`/triggers${query({ ...filters, [name]: value.trim() })}`, true);
  const next = older.items.length > 0 ? older.next : events.data?.next;
  const loadOlder = async (): Promise<void> => {
    if (!next) return;
    try {
      const page = await api<TriggerEventPage>(`/v1/triggers/events${query({ ...filters, limit: PAGE, cursor: next })}`);
      setOlder((o) => ({ items: [...o.items, ...page.items], next: page.next ?? null }));
    } catch (err) {
      setOlder((o) => ({ ...o, error: err instanceof Error ? err : new Error(String(err)) }));
    }
  };
  const seen = new Set((events.data?.items ?? []).map((e) => e.id));
  const items = [...(events.data?.items ?? []), ...older.items.filter((e) => !seen.has(e.id))];

  return (
    <section aria-labelledby="triggers-title">
      <h1 id="triggers-title">Triggers</h1>
      <p class="lede">What each webhook, registry notification, poll and timer did, or why it did nothing. Newest first.</p>
      <form class="filters" role="search" aria-label="Filter trigger events" onSubmit={(e) => e.preventDefault()}>
        <TaskFilter id="trig-task" value={filters.task} onChange={(v) => setFilter('task', v)} />
        <ChoiceFilter id="trig-source" label="Source" value={filters.source} choices={TRIGGER_EVENT_SOURCES} onChange={(v) => setFilter('source', v)} />
        <ChoiceFilter id="trig-action" label="Action" value={filters.action} choices={TRIGGER_ACTIONS} onChange={(v) => setFilter('action', v)} />
        <button type="button" class="secondary" onClick={events.reload}>
          Refresh
        </button>
      </form>
      <ErrorNote error={events.error ?? older.error} what="load the trigger events" />
      {events.data && items.length === 0 && <p class="note">Nothing recorded{filters.task || filters.source || filters.action ? ' that matches these filters' : ' yet'}.</p>}
      {items.length > 0 && (
        <TableBox label="Trigger events">
          <table class="trigger-events">
            <caption class="sr-only">Trigger decisions, newest first</caption>
            <TableHead columns={['When', 'Source', 'Task', 'Action', 'Run', 'Reason', 'Details']} />
            <tbody>
              {items.map((e) => (
                <tr key={e.id} data-event={e.id}>
                  <td>{dateTime(e.at)}</td>
                  <td>{e.source}</td>
                  <td>{e.task ? <a href={`/tasks/${encodeURIComponent(e.task)}`}>{e.task}</a> : ''}</td>
                  <td>
                    <StatusBadge status={e.action} />
                  </td>
                  <td>{e.runId ? <a href={`/runs/${encodeURIComponent(e.runId)}`}>{e.runId}</a> : ''}</td>
                  <td class="wrap">{e.reason}</td>
                  <td>
                    <Details details={e.details} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableBox>
      )}
      {next && (
        <button type="button" class="secondary" onClick={() => void loadOlder()}>
          Show older events
        </button>
      )}
    </section>
  );
}

function Details({ details }: { details: TriggerEvent['details'] }) {
  const entries = Object.entries(details).filter(([key, value]) => value !== null && value !== '' && key !== 'task');
  if (entries.length === 0) return null;
  return (
    <dl class="inline-facts">
      {entries.map(([key, value]) => (
        <div key={key}>
          <dt>{key}</dt>
          <dd class="mono">{String(value)}</dd>
        </div>
      ))}
    </dl>
  );
}
