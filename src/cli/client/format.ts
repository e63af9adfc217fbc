import type { RunDocument } from '../../domain/run-record';
import { SOURCE_PROVIDERS, type RunTrigger, type TaskTriggers } from '../../domain/trigger';
import type { RunResult } from '../../domain/run-result';
import type { SavedTask, TokenInfo } from '../../runs/store';
import type { TriggerEvent } from '../../triggers/store';
import { formatSummary } from '../run-output';
import type { ImageDependents, TaskDependencies, TimerInfo } from './api';

/** What the client commands print for people; `--output json` prints the API's documents instead. */

/**
 * Columns as wide as their widest cell, two spaces apart, no trailing blanks; the same shape as
 * `kiln run`'s summary table, so that `awk`/`cut -c` work on it.
 */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  return alignColumns([header, ...rows]).join('\n') + '\n';
}

/** The rows as lines, each column as wide as its widest cell, two spaces apart, no trailing blanks. */
function alignColumns(rows: readonly (readonly string[])[]): string[] {
  const columns = Math.max(0, ...rows.map((r) => r.length));
  const widths = Array.from({ length: columns }, (_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => widths.map((w, c) => (r[c] ?? '').padEnd(w)).join('  ').trimEnd());
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
  return run.trigger?.type ?? '-';
}

/** The trigger for people: its type and what set it off. */
function triggerDetails(trigger: RunTrigger | undefined): string {
  if (!trigger) return '-';
  switch (trigger.type) {
    case 'Manual':
      return trigger.by ? `Manual (${trigger.by})` : 'Manual';
    case 'Commit':
    case 'PullRequest':
      return `${trigger.type} ${trigger.commit.slice(0, 12)} on ${trigger.branch}${trigger.pullRequest !== undefined ? ` (#${trigger.pullRequest})` : ''} via ${trigger.provider}`;
    case 'BaseImageUpdate': {
      const u = trigger.imageUpdateTrigger;
      return `BaseImageUpdate ${u.image}: ${u.oldDigest ?? 'none'} -> ${u.newDigest} (${u.via})`;
    }
    case 'Timer':
      return `Timer ${trigger.timer} (${trigger.schedule} ${trigger.timezone}) for ${trigger.scheduledFor}`;
  }
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
  const trigger = triggerDetails(run.trigger);
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

/** The triggers that are on: the source events, `baseImage`, `timers(N)` (the enabled ones). */
function triggerKinds(task: SavedTask): string[] {
  const triggers = task.triggers as TaskTriggers | undefined;
  if (!triggers) return [];
  const kinds: string[] = [];
  if (triggers.source.enabled) kinds.push(...triggers.source.events);
  if (triggers.baseImage.enabled) kinds.push('baseImage');
  const timers = triggers.timers.filter((t) => t.enabled).length;
  if (timers > 0) kinds.push(`timers(${timers})`);
  return kinds;
}

/** Where providers send a task's webhooks, one path for all of them. */
function webhookUrl(server: string, task: string): string {
  return `POST ${server}/v1/tasks/${encodeURIComponent(task)}/hooks/{${SOURCE_PROVIDERS.join('|')}}`;
}

/** The trigger settings for people, as `kiln task show` prints them under the task's settings. */
function triggerRows(task: SavedTask, server: string): [string, string][] {
  const triggers = task.triggers as TaskTriggers | undefined;
  if (!triggers) return [['triggers', '-']];
  const { source, baseImage, timers } = triggers;
  const rows: [string, string][] = [
    ['source trigger', source.enabled ? `on: ${source.events.join(', ') || 'no events'}` : 'off'],
    ['branch', source.branch],
    ['paths', `include ${source.paths.include.join(', ') || '-'}${source.paths.exclude.length > 0 ? `; exclude ${source.paths.exclude.join(', ')}` : ''}`],
    ['git poll', source.pollInterval > 0 ? `every ${source.pollInterval}s` : 'off (webhooks only)'],
  ];
  if (source.enabled) rows.push(['webhook', webhookUrl(server, task.name)]);
  rows.push(
    ['webhook secret', task.webhookSecretSet ? 'set' : 'not set (webhooks are refused)'],
    ['base image', baseImage.enabled ? `on: ${baseImage.type}` : 'off'],
    ['image poll', baseImage.pollInterval > 0 ? `every ${baseImage.pollInterval}s` : 'off (registry notifications only)'],
  );
  const lines = alignColumns(timers.map((t) => [t.name, t.schedule, t.timezone, t.enabled ? 'enabled' : 'disabled']));
  if (lines.length === 0) rows.push(['timers', '-']);
  lines.forEach((line, i) => rows.push([i === 0 ? 'timers' : '', line]));
  return rows;
}

/**
 * `kiln task show`: the settings, the triggers (with the webhook URL on `server` when the source
 * trigger is on), then the inline task text, if any.
 */
export function formatTaskDetails(task: SavedTask, server = ''): string {
  const rows: [string, string][] = [
    ['name', task.name],
    ['status', task.status],
    ['file', task.file ?? (task.task !== undefined ? '(inline task below)' : '-')],
    ['context', task.context ?? '-'],
    ['registry', task.registry ?? '-'],
    ['platform', `${task.platform} (pool ${task.pool})`],
    ['timeout', `${task.timeout}s`],
    ['concurrency', task.concurrency === 0 ? 'no limit' : String(task.concurrency)],
    ['values', task.values && Object.keys(task.values).length > 0 ? Object.keys(task.values).sort().join(', ') : '-'],
    ['secrets', task.secretIds?.length ? task.secretIds.join(', ') : '-'],
    ['credentials', task.credentialRegistries?.length ? task.credentialRegistries.join(', ') : '-'],
    ['created', `${formatTime(task.createdAt)} UTC`],
    ['updated', `${formatTime(task.updatedAt)} UTC`],
  ];
  let text = keyValues(rows) + '\n' + keyValues(triggerRows(task, server));
  if (task.task !== undefined) text += '\n' + (task.task.endsWith('\n') ? task.task : task.task + '\n');
  return text;
}

/** `kiln task timer list`. */
export function formatTimersTable(timers: readonly TimerInfo[]): string {
  return formatTable(
    ['NAME', 'SCHEDULE', 'TIMEZONE', 'ENABLED', 'NEXT (UTC)'],
    timers.map((t) => [t.name, t.schedule, t.timezone, t.enabled ? 'yes' : 'no', formatTime(t.next)]),
  );
}

/** `kiln task dependencies`: the base images, then the images the task pushed. */
export function formatDependencies(deps: TaskDependencies): string {
  return (
    formatTable(
      ['IMAGE', 'KIND', 'DIGEST', 'RUN'],
      deps.baseImages.map((d) => [d.image, d.kind, d.digest || '-', d.runId]),
    ) +
    '\n' +
    formatTable(['OUTPUT'], deps.outputs.map((o) => [o]))
  );
}

/** `kiln task dependents --image REF`. */
export function formatDependentsTable(deps: ImageDependents): string {
  return formatTable(
    ['TASK', 'KIND', 'DIGEST', 'RUN'],
    deps.dependents.map((d) => [d.task, d.kind, d.digest || '-', d.runId]),
  );
}

/** `kiln triggers events`: one decision a line, newest first; the reason last (it is the longest). */
export function formatTriggerEventsTable(events: readonly TriggerEvent[]): string {
  return formatTable(
    ['AT (UTC)', 'SOURCE', 'TASK', 'ACTION', 'RUN', 'REASON'],
    events.map((e) => [formatTime(e.at), e.source, e.task ?? '-', e.action, e.runId ?? '-', e.reason]),
  );
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
