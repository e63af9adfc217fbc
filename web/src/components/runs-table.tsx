import { commitText, dateTime, duration, imageText, runTaskName, shortDigest, triggerText } from '../format';
import type { RunDocument } from '../types';
import { StatusBadge, TableBox, TableHead } from './common';

/**
 * Runs as a table, one row each; the run id in each row is a link, so rows are reached with Tab
 * and opened with Enter. On a narrow screen the table scrolls inside its box.
 */
export function RunsTable({ runs, now, caption }: { runs: readonly RunDocument[]; now: number; caption: string }) {
  return (
    <TableBox label="Runs">
      <table class="runs">
        <caption class="sr-only">{caption}</caption>
        <TableHead columns={['Run', 'Status', 'Task', 'Trigger', 'Commit', 'Started', 'Duration', 'Output images']} />
        <tbody>
          {runs.map((run) => (
            <RunRow key={run.runId} run={run} now={now} />
          ))}
        </tbody>
      </table>
    </TableBox>
  );
}

function RunRow({ run, now }: { run: RunDocument; now: number }) {
  return (
    <tr data-run={run.runId}>
      <th scope="row">
        <a href={`/runs/${encodeURIComponent(run.runId)}`}>{run.runId}</a>
      </th>
      <td>
        <StatusBadge status={run.status} />
      </td>
      <td>{run.task ? <a href={`/tasks/${encodeURIComponent(run.task)}`}>{run.task}</a> : runTaskName(run)}</td>
      <td>{triggerText(run.trigger)}</td>
      <td class="mono">{commitText(run.trigger)}</td>
      <td>{run.startedAt ? dateTime(run.startedAt) : <span class="muted">queued {dateTime(run.createdAt)}</span>}</td>
      <td class="num">{duration(run.startedAt, run.finishedAt, now)}</td>
      <td>
        {run.outputImages.length > 0 && (
          <ul class="plain">
            {run.outputImages.map((image) => (
              <li key={`${imageText(image)}@${image.digest}`} class="mono" title={image.digest}>
                {imageText(image)} <span class="muted">{shortDigest(image.digest)}</span>
              </li>
            ))}
          </ul>
        )}
      </td>
    </tr>
  );
}
