import { useLocation, useRoute } from 'preact-iso';
import { useState } from 'preact/hooks';
import { api, ApiError, query } from '../api';
import { ErrorNote, Facts, StatusBadge, TableBox, TableHead } from '../components/common';
import { RunsTable } from '../components/runs-table';
import { dateTime, errorMessage, isFinal, shortDigest } from '../format';
import { useDebounced, useLoad, useNow, useRunEvents, useTitle } from '../hooks';
import { may, useSession } from '../session';
import type { Accepted, RunPage, SavedTask, TaskDependencies } from '../types';
import { triggerSummary } from './tasks-page';

/** One saved task: its settings, triggers, base images, last runs; Run now, Enable/Disable. */

const LAST_RUNS = 10;

export function TaskPage() {
  const { params } = useRoute();
  const name = params.name ?? '';
  useTitle(`Task ${name}`);
  const session = useSession();
  const path = `/v1/tasks/${encodeURIComponent(name)}`;
  const task = useLoad(name, (signal) => api<SavedTask>(path, { signal }));
  const deps = useLoad(name, (signal) => api<TaskDependencies>(`${path}/dependencies`, { signal }));
  const runs = useLoad(name, (signal) => api<RunPage>(`/v1/runs${query({ task: name, limit: LAST_RUNS })}`, { signal }));
  const refreshRuns = useDebounced(runs.reload, 250);
  useRunEvents(undefined, (event) => {
    if (!event || event.task === name) refreshRuns();
  });
  const now = useNow((runs.data?.items ?? []).some((r) => !isFinal(r.status)));
  const [toggle, setToggle] = useState<{ busy: boolean; error?: Error }>({ busy: false });

  const t = task.data;
  if (!t) {
    return (
      <section aria-labelledby="task-title">
        <h1 id="task-title">Task {name}</h1>
        {task.error instanceof ApiError && task.error.status === 404 ? <p class="error">There is no task {name}.</p> : <ErrorNote error={task.error} what="load the task" />}
        {!task.error && <p class="note">Loading…</p>}
      </section>
    );
  }

  const setStatus = async (status: SavedTask['status']): Promise<void> => {
    setToggle({ busy: true });
    try {
      await api<SavedTask>(path, { method: 'PUT', body: { ...taskBody(t), status } });
      setToggle({ busy: false });
    } catch (err) {
      setToggle({ busy: false, error: err instanceof Error ? err : new Error(String(err)) });
    }
    task.reload();
  };

  const enabled = t.status === 'Enabled';
  return (
    <section aria-labelledby="task-title" class="task-page">
      <div class="title-row">
        <h1 id="task-title">
          Task <span class="mono">{t.name}</span>
        </h1>
        <StatusBadge status={t.status} />
        {may(session, 'admin') && (
          <div class="actions">
            <button type="button" class="secondary" disabled={toggle.busy} onClick={() => void setStatus(enabled ? 'Disabled' : 'Enabled')}>
              {enabled ? 'Disable task' : 'Enable task'}
            </button>
          </div>
        )}
      </div>
      <ErrorNote error={toggle.error} what={enabled ? 'disable the task' : 'enable the task'} />
      <Facts
        items={[
          ['Context', t.context ? <span class="mono wrap">{t.context}</span> : 'none'],
          ['Task file', t.file ? <span class="mono">{t.file}</span> : 'inline (below)'],
          ['Triggers', triggerSummary(t)],
          ['Registry', t.registry ?? 'the server default'],
          ['Platform', `${t.platform} (pool ${t.pool})`],
          ['Timeout', `${t.timeout} s`],
          ['Concurrency', t.concurrency === 0 ? 'no limit' : String(t.concurrency)],
          ['Policy', t.policy ?? 'the server default'],
          ['Secrets', t.secretIds.join(', ')],
          ['Credentials for', t.credentialRegistries.join(', ')],
          ['Webhook secret', t.webhookSecretSet ? 'set' : 'not set'],
          ['Created', dateTime(t.createdAt)],
          ['Updated', dateTime(t.updatedAt)],
        ]}
      />
      {t.task !== undefined && (
        <details>
          <summary>Task file (inline)</summary>
          <pre class="code">{t.task}</pre>
        </details>
      )}
      {t.values !== undefined && Object.keys(t.values).length > 0 && (
        <details>
          <summary>Values</summary>
          <pre class="code">{JSON.stringify(t.values, null, 2)}</pre>
        </details>
      )}

      {may(session, 'runner') && <RunNow task={t} />}

      <h2>Last runs</h2>
      <ErrorNote error={runs.error} what="load the runs" />
      {runs.data && runs.data.items.length === 0 ? (
        <p class="note">No run yet.</p>
      ) : (
        runs.data && <RunsTable runs={runs.data.items} now={now} caption={`The last runs of ${t.name}, newest first; updates live.`} />
      )}
      {runs.data?.next && (
        <p>
          <a href={`/runs${query({ task: t.name })}`}>All runs of {t.name}</a>
        </p>
      )}

      <h2>Triggers</h2>
      <Facts
        items={[
          [
            'Source (git)',
            t.triggers.source.enabled
              ? `${t.triggers.source.events.join(' and ')} on ${t.triggers.source.branch}; paths ${t.triggers.source.paths.include.join(', ')}${t.triggers.source.paths.exclude.length > 0 ? ` except ${t.triggers.source.paths.exclude.join(', ')}` : ''}${t.triggers.source.pollInterval > 0 ? `; polled every ${t.triggers.source.pollInterval} s` : ''}`
              : 'off',
          ],
          ['Base images', t.triggers.baseImage.enabled ? `${t.triggers.baseImage.type}${t.triggers.baseImage.pollInterval > 0 ? `; polled every ${t.triggers.baseImage.pollInterval} s` : ''}` : 'off'],
        ]}
      />
      {t.triggers.timers.length > 0 && (
        <TableBox label="Timers">
          <table>
            <TableHead columns={['Timer', 'Schedule', 'Time zone', 'Enabled']} />
            <tbody>
              {t.triggers.timers.map((timer) => (
                <tr key={timer.name}>
                  <th scope="row">{timer.name}</th>
                  <td class="mono">{timer.schedule}</td>
                  <td>{timer.timezone}</td>
                  <td>{timer.enabled ? 'yes' : 'no'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableBox>
      )}
      <p>
        <a href={`/triggers${query({ task: t.name })}`}>What the triggers did for {t.name}</a>
      </p>

      <h2>Dependencies</h2>
      <ErrorNote error={deps.error} what="load the dependencies" />
      {deps.data && deps.data.baseImages.length === 0 && <p class="note">No base image recorded yet (a run that builds records them).</p>}
      {deps.data && deps.data.baseImages.length > 0 && (
        <TableBox label="Base images">
          <table>
            <TableHead columns={['Base image', 'Kind', 'Digest', 'Recorded by']} />
            <tbody>
              {deps.data.baseImages.map((b) => (
                <tr key={b.image}>
                  <td class="mono">{b.image}</td>
                  <td>{b.kind}</td>
                  <td class="mono" title={b.digest}>
                    {b.digest ? shortDigest(b.digest) : 'unknown'}
                  </td>
                  <td>
                    <a href={`/runs/${encodeURIComponent(b.runId)}`}>{b.runId}</a> {dateTime(b.recordedAt)}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableBox>
      )}
      {deps.data && deps.data.outputs.length > 0 && (
        <>
          <h3>Images it pushed</h3>
          <ul class="plain">
            {deps.data.outputs.map((o) => (
              <li key={o} class="mono">
                {o}
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

/**
 * The task as `PUT /v1/tasks/{name}` takes it back: its settings, without the server's fields.
 * Secrets, credentials and the webhook secret are write-only: left out, the stored ones stay.
 */
function taskBody(t: SavedTask): Record<string, unknown> {
  const { createdAt: _c, updatedAt: _u, secretIds: _s, credentialRegistries: _r, webhookSecretSet: _w, ...settings } = t;
  return settings;
}

/** Run now, with values and `--set` overrides. */
function RunNow({ task }: { task: SavedTask }) {
  const { route } = useLocation();
  const [values, setValues] = useState('');
  const [set, setSet] = useState('');
  const [state, setState] = useState<{ busy: boolean; error?: string }>({ busy: false });

  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    const body: { values?: Record<string, unknown>; set?: Record<string, string> } = {};
    try {
      if (values.trim()) {
        const parsed: unknown = JSON.parse(values);
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('Values must be a JSON object.');
        body.values = parsed as Record<string, unknown>;
      }
      const pairs = set
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean);
      if (pairs.length > 0) {
        body.set = {};
        for (const pair of pairs) {
          const eq = pair.indexOf('=');
          if (eq < 1) throw new Error(`"${pair}" is not KEY=VALUE.`);
          body.set[pair.slice(0, eq)] = pair.slice(eq + 1);
        }
      }
    } catch (err) {
      setState({ busy: false, error: err instanceof SyntaxError ? `Values are not JSON: ${err.message}` : errorMessage(err) });
      return;
    }
    setState({ busy: true });
    try {
      const accepted = await api<Accepted>(`/v1/tasks/${encodeURIComponent(task.name)}/runs`, { method: 'POST', body });
      route(`/runs/${encodeURIComponent(accepted.runId)}`);
    } catch (err) {
      setState({ busy: false, error: errorMessage(err) });
    }
  };

  const disabled = task.status === 'Disabled';
  return (
    <form class="run-now" onSubmit={(e) => void submit(e)} aria-labelledby="run-now-title">
      <h2 id="run-now-title">Run now</h2>
      {disabled && <p class="note">The task is disabled: enable it to run it.</p>}
      <div class="field">
        <label for="run-values">Values (a JSON object, optional)</label>
        <textarea id="run-values" rows={3} value={values} onInput={(e) => setValues(e.currentTarget.value)} placeholder='{"tag": "v1"}' spellcheck={false} />
      </div>
      <div class="field">
        <label for="run-set">Overrides (one KEY=VALUE a line, optional)</label>
        <textarea id="run-set" rows={3} value={set} onInput={(e) => setSet(e.currentTarget.value)} placeholder="tag=v1" spellcheck={false} />
      </div>
      {state.error && (
        <p class="error" role="alert">
          {state.error}
        </p>
      )}
      <button type="submit" disabled={state.busy || disabled}>
        Run now
      </button>
    </form>
  );
}
