import type { RunDocument } from '../../domain/run-record';
import type { RunResult } from '../../domain/run-result';
import type { SavedTask, TokenInfo } from '../../runs/store';
import { formatSummary } from '../run-output';

/** What the client commands print for people; `--output json` prints the API's documents instead. */

/**
 * Columns as wide as their widest cell, two spaces apart, no trailing blanks; the same shape as
 * `kiln run`'s summary table, so that `awk`/`cut -c` work on it.
 */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
  return all.map((r) => header.map((_, c) => (r[c] ?? '').padEnd(widths[c])).join('  ').trimEnd()).join('\n') + '\n';
}

/** `2026-05-01 12:00:03` in UTC (the headers say so), or `-`. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '-';
  const time = Date.parse(iso);
  if (Number.isNaN(time)) return iso;
  return new Date(time).toISOString().slice(0, 19).replace('T', ' ');
}

/** `0.4s`, `59.9s`, `4m05s`, `2h03m`; `-` when it has not started. A run still going counts to `now`. */
export function formatDuration(from: string | null | undefined, to: string | null | undefined, now: Date): string {
  if (!from) return '-';
  const start = Date.parse(from);
  const end = to ? Date.parse(to) : now.getTime();
  if (Number.isNaN(start) || Number.isNaN(end)) return '-';
  const seconds = Math.max(0, (end - start) / 1000);
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const whole = Math.floor(seconds);
  if (whole < 3600) return `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, '0')}s`;
  return `${Math.floor(whole / 3600)}h${String(Math.floor((whole % 3600) / 60)).padStart(2, '0')}m`;
}

function triggerText(run: RunDocument): string {
  return run.trigger?.kind ?? '-';
}

export function formatRunsTable(runs: readonly RunDocument[], now: Date): string {
  return formatTable(
    ['RUN', 'STATUS', 'TASK', 'TRIGGER', 'CREATED (UTC)', 'DURATION'],
    runs.map((r) => [r.runId, r.status, r.task ?? '-', triggerText(r), formatTime(r.createdAt), formatDuration(r.startedAt, r.finishedAt, now)]),
  );
}

/** A RunDocument in the shape `kiln run`'s summary takes: times not yet known are empty. */
export function toRunResult(run: RunDocument): RunResult {
  const result: RunResult = {
    runId: run.runId,
    status: run.status,
    startedAt: run.startedAt ?? '',
    finishedAt: run.finishedAt ?? '',
    steps: run.steps ?? [],
    outputImages: run.outputImages ?? [],
    dependencies: run.dependencies ?? [],
  };
  if (run.error) result.error = run.error;
  return result;
}

/** `kiln runs show`: what the run is, then the step table and outcome `kiln run` prints. */
export function formatRunDetails(run: RunDocument): string {
  const trigger = run.trigger ? `${run.trigger.kind}${run.trigger.detail ? ` (${run.trigger.detail})` : ''}` : '-';
  const rows: [string, string][] = [
    ['run', run.runId],
    ['status', run.status],
    ['task', run.task ?? '-'],
    ['trigger', trigger],
    ['created', `${formatTime(run.createdAt)} UTC`],
    ['started', run.startedAt ? `${formatTime(run.startedAt)} UTC` : '-'],
    ['finished', run.finishedAt ? `${formatTime(run.finishedAt)} UTC` : '-'],
    ['platform', `${run.platform ?? '-'} (pool ${run.pool ?? '-'})`],
    ['worker', run.worker ? `${run.worker} (attempt ${run.attempt})` : '-'],
  ];
  return keyValues(rows) + '\n' + formatSummary(toRunResult(run));
}

export function formatTasksTable(tasks: readonly SavedTask[]): string {
  return formatTable(
    ['NAME', 'STATUS', 'TASK', 'CONTEXT', 'TRIGGERS', 'UPDATED (UTC)'],
    tasks.map((t) => [t.name, t.status, taskSource(t), t.context ?? '-', triggerKinds(t).join(',') || '-', formatTime(t.updatedAt)]),
  );
}

function taskSource(task: SavedTask): string {
  if (task.file !== undefined) return task.file;
  return task.task !== undefined ? '(inline)' : '-';
}

function triggerKinds(task: SavedTask): string[] {
  const kinds: string[] = [];
  if (task.triggers?.source) kinds.push('source');
  if (task.triggers?.baseImage) kinds.push('baseImage');
  if (task.triggers?.timers?.length) kinds.push(`timers(${task.triggers.timers.length})`);
  return kinds;
}

/** `kiln task show`: the settings, then the inline task text, if any. */
export function formatTaskDetails(task: SavedTask): string {
  const rows: [string, string][] = [
    ['name', task.name],
    ['status', task.status],
    ['file', task.file ?? (task.task !== undefined ? '(inline task below)' : '-')],
    ['context', task.context ?? '-'],
    ['registry', task.registry ?? '-'],
    ['platform', `${task.platform} (pool ${task.pool})`],
    ['timeout', `${task.timeout}s`],
    ['concurrency', task.concurrency === 0 ? 'no limit' : String(task.concurrency)],
    ['triggers', triggerKinds(task).join(', ') || '-'],
    ['values', task.values && Object.keys(task.values).length > 0 ? Object.keys(task.values).sort().join(', ') : '-'],
    ['secrets', task.secretIds?.length ? task.secretIds.join(', ') : '-'],
    ['credentials', task.credentialRegistries?.length ? task.credentialRegistries.join(', ') : '-'],
    ['created', `${formatTime(task.createdAt)} UTC`],
    ['updated', `${formatTime(task.updatedAt)} UTC`],
  ];
  let text = keyValues(rows);
  if (task.task !== undefined) text += '\n' + (task.task.endsWith('\n') ? task.task : task.task + '\n');
  return text;
}

export function formatTokensTable(tokens: readonly TokenInfo[]): string {
  return formatTable(
    ['ID', 'NAME', 'ROLE', 'CREATED (UTC)'],
    tokens.map((t) => [t.id, t.name, t.role, formatTime(t.createdAt)]),
  );
}

function keyValues(rows: readonly [string, string][]): string {
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n') + '\n';
}

/**
 * Log lines as `kiln run` prints them: each prefixed by its step id, padded so the bars line up.
 * The step ids are not known in advance here, so the column grows to the longest id seen.
 */
export function makeLinePrinter(out: NodeJS.WritableStream): (step: string, line: string) => void {
  let width = 4;
  return (step, line) => {
    width = Math.max(width, step.length);
    out.write(`${step.padEnd(width)} | ${line}\n`);
  };
}
