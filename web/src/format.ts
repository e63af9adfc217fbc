import type { OutputImage, RunDocument, RunStatus, RunTrigger } from './types';

/** What was thrown, as text: the service's own helper. */
export { errorMessage } from '../../src/errors';

/** How the console writes times, durations, triggers and images. */

const FINAL: ReadonlySet<RunStatus> = new Set(['Succeeded', 'Failed', 'Canceled', 'Error', 'Timeout', 'Expired']);

export function isFinal(status: RunStatus): boolean {
  return FINAL.has(status);
}

/** A local date and time, to the second; '' for null. */
export function dateTime(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

/** `1h 02m`, `3m 05s`, `4.2s`. */
export function formatMs(ms: number): string {
  if (ms < 0) ms = 0;
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** From start to end, or to `now` while it goes on; '' before it started. */
export function duration(start: string | null, end: string | null, now: number): string {
  if (!start) return '';
  return formatMs((end ? Date.parse(end) : now) - Date.parse(start));
}

/** Why a run started, in a few words. */
export function triggerText(trigger: RunTrigger): string {
  switch (trigger.type) {
    case 'Manual':
      return trigger.rerunOf ? `Re-run of ${trigger.rerunOf}` : trigger.by ? `Manual, by ${trigger.by}` : 'Manual';
    case 'Commit':
      return `Commit (${trigger.provider})`;
    case 'PullRequest':
      return trigger.pullRequest !== undefined ? `Pull request #${trigger.pullRequest}` : 'Pull request';
    case 'BaseImageUpdate':
      return `Base image ${trigger.imageUpdateTrigger.image}`;
    case 'Timer':
      return `Timer ${trigger.timer}`;
    default: {
      const never: never = trigger;
      return String((never as { type?: unknown }).type);
    }
  }
}

/** `abc1234 on main` for source-triggered runs, '' for the others. */
export function commitText(trigger: RunTrigger): string {
  if (trigger.type !== 'Commit' && trigger.type !== 'PullRequest') return '';
  return `${trigger.commit.slice(0, 7)} on ${trigger.branch}`;
}

export function imageText(image: Pick<OutputImage, 'registry' | 'repository' | 'tag'>): string {
  return `${image.registry ? `${image.registry}/` : ''}${image.repository}${image.tag ? `:${image.tag}` : ''}`;
}

/** `sha256:0123456789ab`: enough to tell digests apart; the full one goes in a title. */
export function shortDigest(digest: string): string {
  return digest.length > 19 ? digest.slice(0, 19) : digest;
}

export function runTaskName(run: RunDocument): string {
  return run.task ?? '(inline)';
}
