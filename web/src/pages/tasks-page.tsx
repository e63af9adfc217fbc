import { useState } from 'preact/hooks';
import { api } from '../api';
import { ErrorNote, StatusBadge, TableBox, TableHead } from '../components/common';
import { dateTime } from '../format';
import { useLoad, useTitle } from '../hooks';
import type { SavedTask } from '../types';

/** The saved tasks, with a name filter. */

export function TasksPage() {
  useTitle('Tasks');
  const tasks = useLoad('tasks', (signal) => api<{ items: SavedTask[] }>('/v1/tasks', { signal }));
  const [filter, setFilter] = useState('');
  const needle = filter.trim().toLowerCase();
  const items = (tasks.data?.items ?? []).filter((t) => t.name.toLowerCase().includes(needle)).sort((a, b) => a.name.localeCompare(b.name));

  return (
    <section aria-labelledby="tasks-title">
      <h1 id="tasks-title">Tasks</h1>
      <form class="filters" role="search" aria-label="Filter tasks" onSubmit={(e) => e.preventDefault()}>
        <div class="field">
          <label for="task-filter">Name</label>
          <input id="task-filter" type="search" value={filter} placeholder="part of a name" onInput={(e) => setFilter(e.currentTarget.value)} />
        </div>
        <button type="button" class="secondary" onClick={tasks.reload}>
          Refresh
        </button>
      </form>
      <ErrorNote error={tasks.error} what="load the tasks" />
      {tasks.data && items.length === 0 && <p class="note">{needle ? 'No task has such a name.' : 'No task is saved yet (kiln task create).'}</p>}
      {items.length > 0 && (
        <TableBox label="Tasks">
          <table class="tasks">
            <caption class="sr-only">Saved tasks, by name</caption>
            <TableHead columns={['Task', 'Status', 'Context', 'File', 'Triggers', 'Updated']} />
            <tbody>
              {items.map((task) => (
                <tr key={task.name} data-task={task.name}>
                  <th scope="row">
                    <a href={`/tasks/${encodeURIComponent(task.name)}`}>{task.name}</a>
                  </th>
                  <td>
                    <StatusBadge status={task.status} />
                  </td>
                  <td class="mono wrap">{task.context ?? ''}</td>
                  <td class="mono">{task.file ?? 'inline'}</td>
                  <td>{triggerSummary(task)}</td>
                  <td>{dateTime(task.updatedAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableBox>
      )}
    </section>
  );
}

/** `commits on main, base images, 2 timers`, or `manual only`. */
export function triggerSummary(task: SavedTask): string {
  const parts: string[] = [];
  const { source, baseImage, timers } = task.triggers;
  if (source.enabled) parts.push(`commits on ${source.branch}`);
  if (baseImage.enabled) parts.push(`base images (${baseImage.type})`);
  const on = timers.filter((t) => t.enabled).length;
  if (on > 0) parts.push(`${on} timer${on === 1 ? '' : 's'}`);
  return parts.length > 0 ? parts.join(', ') : 'manual only';
}
