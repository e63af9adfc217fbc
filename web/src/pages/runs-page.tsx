import { useLocation } from 'preact-iso';
import { useRef } from 'preact/hooks';
import { api, query } from '../api';
import { ChoiceFilter, ErrorNote, TaskFilter } from '../components/common';
import { RunsTable } from '../components/runs-table';
import { isFinal } from '../format';
import { useDebounced, useLoad, useNow, useRunEvents, useTitle } from '../hooks';
import { RUN_STATUSES, TRIGGER_TYPES, type RunPage } from '../types';

/** The runs, newest first, filtered by the URL's query, kept current by the run events. */

const PAGE = 50;
/** The API's largest page. */
const MAX_PAGE = 500;

export function RunsPage() {
  useTitle('Runs');
  const { query: q, route } = useLocation();
  const filters = { status: q.status ?? '', task: q.task ?? '', trigger: q.trigger ?? '' };
  // How many runs are shown: "Show older runs" asks for a bigger first page, so that a live
  // reload keeps everything shown in one consistent page.
  const limit = useRef(PAGE);
  const runs = useLoad(`${filters.status}|${filters.task}|${filters.trigger}`, (signal) =>
    api<RunPage>(`/v1/runs${query({ ...filters, limit: limit.current })}`, { signal }),
  );
  const refresh = useDebounced(runs.reload, 250);
  useRunEvents(undefined, refresh);

  const setFilter = (name: keyof typeof filters, value: string): void => {
    limit.current = PAGE;
    route(`/runs${query({ ...filters, [name]: value.trim() })}`, true);
  };
  const items = runs.data?.items ?? [];
  const now = useNow(items.some((r) => !isFinal(r.status)));

  return (
    <section aria-labelledby="runs-title">
      <h1 id="runs-title">Runs</h1>
      <form class="filters" role="search" aria-label="Filter runs" onSubmit={(e) => e.preventDefault()}>
        <ChoiceFilter id="filter-status" label="Status" value={filters.status} choices={RUN_STATUSES} onChange={(v) => setFilter('status', v)} />
        <TaskFilter id="filter-task" value={filters.task} onChange={(v) => setFilter('task', v)} />
        <ChoiceFilter id="filter-trigger" label="Trigger" value={filters.trigger} choices={TRIGGER_TYPES} onChange={(v) => setFilter('trigger', v)} />
        {(filters.status || filters.task || filters.trigger) && (
          <button type="button" class="secondary" onClick={() => route('/runs', true)}>
            Clear filters
          </button>
        )}
      </form>
      <ErrorNote error={runs.error} what="load the runs" />
      {runs.data && items.length === 0 && <p class="note">No runs{filters.status || filters.task || filters.trigger ? ' match these filters' : ' yet'}.</p>}
      {items.length > 0 && (
        <RunsTable runs={items} now={now} caption="Runs, newest first; the table updates live." />
      )}
      {runs.data?.next && limit.current < MAX_PAGE && (
        <button
          type="button"
          class="secondary"
          onClick={() => {
            limit.current = Math.min(limit.current + PAGE, MAX_PAGE);
            runs.reload();
          }}
        >
          Show older runs
        </button>
      )}
      {runs.data?.next && limit.current >= MAX_PAGE && <p class="note">Showing the newest {MAX_PAGE}; filter to see older runs.</p>}
    </section>
  );
}
