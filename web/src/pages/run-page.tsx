import { useLocation, useRoute } from 'preact-iso';
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError } from '../api';
import { ErrorNote, Facts, StatusBadge, TableBox, TableHead } from '../components/common';
import { LogView } from '../components/log-view';
import { StepGraph } from '../components/step-graph';
import { Timeline } from '../components/timeline';
import { dateTime, duration, imageText, isFinal, triggerText } from '../format';
import { useDebounced, useLoad, useNow, useRunEvents, useTitle } from '../hooks';
import { may, useSession } from '../session';
import type { Accepted, DependencyImage, ImageDependencies, RunDocument } from '../types';

/** One run: its facts, step graph, timings, images, dependencies and live log; Cancel and Re-run. */

export function RunPage() {
  const { params } = useRoute();
  const id = params.id ?? '';
  useTitle(`Run ${id}`);
  const session = useSession();
  const { route } = useLocation();
  const run = useLoad(id, (signal) => api<RunDocument>(`/v1/runs/${encodeURIComponent(id)}`, { signal }));
  const refresh = useDebounced(run.reload, 150);
  useRunEvents(id, refresh);
  const [step, setStep] = useState('');
  const [action, setAction] = useState<{ busy: boolean; message?: string; error?: Error }>({ busy: false });
  // Another run (Re-run goes from one to the next in the same page): nothing of the last one stays.
  useEffect(() => {
    setStep('');
    setAction({ busy: false });
  }, [id]);
  const doc = run.data;
  const now = useNow(doc !== undefined && !isFinal(doc.status));

  const cancel = async (): Promise<void> => {
    setAction({ busy: true });
    try {
      await api<RunDocument>(`/v1/runs/${encodeURIComponent(id)}/cancel`, { method: 'POST' });
      setAction({ busy: false, message: 'Cancel requested.' });
    } catch (err) {
      setAction({ busy: false, error: err instanceof Error ? err : new Error(String(err)) });
    }
    run.reload();
  };
  const rerun = async (): Promise<void> => {
    setAction({ busy: true });
    try {
      const accepted = await api<Accepted>(`/v1/runs/${encodeURIComponent(id)}/rerun`, { method: 'POST' });
      setAction({ busy: false });
      route(`/runs/${encodeURIComponent(accepted.runId)}`);
    } catch (err) {
      setAction({ busy: false, error: err instanceof Error ? err : new Error(String(err)) });
    }
  };

  if (!doc) {
    return (
      <section aria-labelledby="run-title">
        <h1 id="run-title">Run {id}</h1>
        {run.error instanceof ApiError && run.error.status === 404 ? <p class="error">There is no run {id}.</p> : <ErrorNote error={run.error} what="load the run" />}
        {!run.error && <p class="note">Loading…</p>}
      </section>
    );
  }

  const canRun = may(session, 'runner');
  const commit = doc.trigger.type === 'Commit' || doc.trigger.type === 'PullRequest' ? doc.trigger : undefined;
  return (
    <section aria-labelledby="run-title" class="run-page">
      <div class="title-row">
        <h1 id="run-title">
          Run <span class="mono">{doc.runId}</span>
        </h1>
        <StatusBadge status={doc.status} />
        {canRun && (
          <div class="actions">
            {!isFinal(doc.status) && (
              <button type="button" class="danger" disabled={action.busy} onClick={() => void cancel()}>
                Cancel run
              </button>
            )}
            <button type="button" disabled={action.busy} onClick={() => void rerun()}>
              Re-run
            </button>
          </div>
        )}
      </div>
      <div role="status" class="action-status">
        {action.message}
      </div>
      <ErrorNote error={action.error} what="do that" />
      <ErrorNote error={run.error} what="refresh the run" />
      <Facts
        items={[
          ['Task', doc.task ? <a href={`/tasks/${encodeURIComponent(doc.task)}`}>{doc.task}</a> : 'inline task'],
          ['Trigger', doc.trigger.type === 'Manual' && doc.trigger.rerunOf ? <a href={`/runs/${encodeURIComponent(doc.trigger.rerunOf)}`}>{triggerText(doc.trigger)}</a> : triggerText(doc.trigger)],
          ['Commit', commit ? <span class="mono">{commit.commit}</span> : ''],
          ['Branch', commit?.branch ?? ''],
          ['Created', dateTime(doc.createdAt)],
          ['Started', dateTime(doc.startedAt)],
          ['Finished', dateTime(doc.finishedAt)],
          ['Duration', duration(doc.startedAt, doc.finishedAt, now)],
          ['Attempt', String(doc.attempt)],
          ['Worker', doc.worker ?? ''],
          ['Platform', `${doc.platform} (pool ${doc.pool})`],
        ]}
      />
      {doc.error && (
        <p class="error">
          <strong>Error:</strong> {doc.error}
        </p>
      )}

      <h2>Steps</h2>
      {doc.steps.length === 0 ? (
        <p class="note">{isFinal(doc.status) ? 'No step ran.' : 'The steps appear when a worker starts the run.'}</p>
      ) : (
        <>
          <StepGraph steps={doc.steps} />
          <Timeline run={doc} now={now} selected={step} onSelect={setStep} />
        </>
      )}

      <h2>Output images</h2>
      {doc.outputImages.length === 0 ? (
        <p class="note">{isFinal(doc.status) ? 'This run pushed no image.' : 'None yet.'}</p>
      ) : (
        <TableBox label="Output images">
          <table>
            <TableHead columns={['Image', 'Digest']} />
            <tbody>
              {doc.outputImages.map((image) => (
                <tr key={`${imageText(image)}@${image.digest}`}>
                  <td class="mono">{imageText(image)}</td>
                  <td class="mono digest">{image.digest}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </TableBox>
      )}

      <h2>Base-image dependencies</h2>
      {doc.dependencies.length === 0 ? <p class="note">None recorded.</p> : <Dependencies items={doc.dependencies} />}

      <h2 id="log-title">Log</h2>
      <LogView runId={doc.runId} steps={doc.steps.map((s) => s.id)} step={step} onStep={setStep} onEnd={run.reload} />
    </section>
  );
}

function Dependencies({ items }: { items: readonly ImageDependencies[] }) {
  const ref = (image: DependencyImage) => (
    <span class="mono" title={image.digest}>
      {image.reference || imageText(image)}
      {image.digest ? <span class="muted digest"> @{image.digest}</span> : null}
    </span>
  );
  return (
    <TableBox label="Base-image dependencies">
      <table>
        <TableHead columns={['Image', 'Runtime base', 'Build-time bases', 'Git revision']} />
        <tbody>
          {items.map((d) => (
            <tr key={d.image.reference || imageText(d.image)}>
              <td>{ref(d.image)}</td>
              <td>{d['runtime-dependency'] ? ref(d['runtime-dependency']) : ''}</td>
              <td>
                <ul class="plain">
                  {d['buildtime-dependency'].map((b) => (
                    <li key={b.reference}>{ref(b)}</li>
                  ))}
                </ul>
              </td>
              <td class="mono">{d.git?.['git-head-revision'] ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableBox>
  );
}
