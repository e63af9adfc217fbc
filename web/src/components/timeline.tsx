import { formatMs } from '../format';
import type { RunDocument } from '../types';
import { StatusBadge, TableBox } from './common';

/**
 * Per-step timings: when each step started after the run did, how long it took, and a bar on the
 * run's time axis. The bars are SVG (positions as attributes, which the console's CSP allows);
 * the numbers are in the cells, so the bars are decoration for screen readers.
 */

const AXIS = 1000;

export function Timeline({ run, now, selected, onSelect }: { run: RunDocument; now: number; selected: string; onSelect: (step: string) => void }) {
  const runStart = run.startedAt ? Date.parse(run.startedAt) : undefined;
  const runEnd = run.finishedAt ? Date.parse(run.finishedAt) : now;
  const span = runStart === undefined ? 0 : Math.max(runEnd - runStart, 1);

  return (
    <TableBox label="Step timings">
      <table class="timeline">
        <caption class="sr-only">Step timings; a step's button shows only its lines in the log.</caption>
        <thead>
          <tr>
            <th scope="col">Step</th>
            <th scope="col">Status</th>
            <th scope="col">Kind</th>
            <th scope="col">Start</th>
            <th scope="col">Duration</th>
            <th scope="col">Attempts</th>
            <th scope="col">Exit</th>
            <th scope="col" class="bar-col">
              Timeline
            </th>
          </tr>
        </thead>
        <tbody>
          {run.steps.map((step) => {
            const start = step.startedAt ? Date.parse(step.startedAt) : undefined;
            const end = step.finishedAt ? Date.parse(step.finishedAt) : now;
            const offset = start !== undefined && runStart !== undefined ? start - runStart : undefined;
            const length = start !== undefined ? Math.max(end - start, 0) : undefined;
            const pressed = selected === step.id;
            return (
              <tr key={step.id} data-step={step.id}>
                <th scope="row">
                  <button
                    type="button"
                    class="link-button"
                    aria-pressed={pressed}
                    title={pressed ? 'Show every step in the log' : `Show only the lines of ${step.id} in the log`}
                    onClick={() => onSelect(pressed ? '' : step.id)}
                  >
                    {step.id}
                  </button>
                  {step.error && <div class="step-error">{step.error}</div>}
                </th>
                <td>
                  <StatusBadge status={step.status} />
                </td>
                <td>{step.kind ?? ''}</td>
                <td class="num">{offset !== undefined ? `+${formatMs(offset)}` : ''}</td>
                <td class="num">{length !== undefined ? formatMs(length) : ''}</td>
                <td class="num">{step.attempts}</td>
                <td class="num">{step.exitCode ?? ''}</td>
                <td class="bar-col">
                  {offset !== undefined && length !== undefined && span > 0 && (
                    <svg class="bar" viewBox={`0 0 ${AXIS} 10`} preserveAspectRatio="none" aria-hidden="true" focusable="false">
                      <rect class="bar-track" x="0" y="0" width={AXIS} height="10" />
                      <rect
                        class={`bar-fill st-${step.status}`}
                        x={((offset / span) * AXIS).toFixed(1)}
                        y="0"
                        width={Math.max((length / span) * AXIS, 3).toFixed(1)}
                        height="10"
                      />
                    </svg>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </TableBox>
  );
}
