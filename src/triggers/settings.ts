import picomatch from 'picomatch';
import { SOURCE_EVENTS, sourceDefaults, type SourceEventKind, type TaskTriggers, type TimerTrigger } from '../domain/trigger';
import { KilnError, errorMessage } from '../errors';
import { checkSchedule } from '../queue';
import { gitContextOf } from '../runs';

/**
 * A saved task's `triggers` as the API takes them (every member optional), checked and completed
 * with the defaults:
 * - source: on for a task whose context is a git URL; events `commit` only; branch: the context's
 *   ref, or every branch when it names none; paths: everything under the context's subdirectory;
 *   no polling.
 * - baseImage: on, type `Runtime`, no polling.
 * - timers: none; each one on, in UTC, unless it says otherwise.
 * The webhook secret is taken apart: it is sealed by the store and never shown.
 */

export interface TriggersInput {
  source?: {
    enabled?: boolean;
    events?: SourceEventKind[];
    branch?: string;
    paths?: { include?: string[]; exclude?: string[] };
    webhookSecret?: string;
    pollInterval?: number;
  };
  baseImage?: { enabled?: boolean; type?: 'Runtime' | 'All'; pollInterval?: number };
  timers?: { name: string; schedule: string; timezone?: string; enabled?: boolean }[];
}

/** The shortest poll interval, seconds: polls cost the remote a request each. */
export const MIN_POLL_INTERVAL = 2;

export interface NormalizedTriggers {
  triggers: TaskTriggers;
  /** Given with this request; undefined keeps the stored one. */
  webhookSecret?: string;
}

/** Throws KilnError('invalid_input') naming every problem (`triggers.timers[1].schedule: ...`). */
export function normalizeTriggers(input: TriggersInput | undefined, context: string | undefined): NormalizedTriggers {
  const problems: string[] = [];
  const git = context === undefined ? undefined : gitContextOf(context);
  const source = input?.source ?? {};
  const baseImage = input?.baseImage ?? {};

  const defaults = sourceDefaults(git);
  const branch = source.branch ?? defaults.branch;
  checkGlob(branch, 'triggers.source.branch', problems);
  const include = source.paths?.include ?? defaults.include;
  const exclude = source.paths?.exclude ?? [];
  include.forEach((glob, i) => checkGlob(glob, `triggers.source.paths.include[${i}]`, problems));
  exclude.forEach((glob, i) => checkGlob(glob, `triggers.source.paths.exclude[${i}]`, problems));
  const events: SourceEventKind[] = [...new Set<SourceEventKind>(source.events ?? ['commit'])];
  for (const event of events) {
    if (!(SOURCE_EVENTS as readonly string[]).includes(event)) problems.push(`triggers.source.events: "${event}" is not one of ${SOURCE_EVENTS.join(', ')}`);
  }
  const sourceEnabled = source.enabled ?? defaults.enabled;
  if (sourceEnabled && source.enabled === true && !git) problems.push('triggers.source.enabled: a source trigger needs a git context (--context https://host/repo.git#branch)');
  const sourcePoll = pollInterval(source.pollInterval, 'triggers.source.pollInterval', problems);
  const basePoll = pollInterval(baseImage.pollInterval, 'triggers.baseImage.pollInterval', problems);

  const timers: TimerTrigger[] = [];
  const names = new Set<string>();
  (input?.timers ?? []).forEach((timer, i) => {
    const where = `triggers.timers[${i}]`;
    if (names.has(timer.name)) problems.push(`${where}.name: "${timer.name}" is used twice`);
    names.add(timer.name);
    const normalized: TimerTrigger = { name: timer.name, schedule: timer.schedule.trim(), timezone: timer.timezone ?? 'UTC', enabled: timer.enabled ?? true };
    const problem = checkSchedule(normalized.schedule, normalized.timezone);
    if (problem) problems.push(`${where}: ${problem}`);
    timers.push(normalized);
  });

  if (problems.length > 0) throw new KilnError('invalid_input', problems.join('; '));
  const result: NormalizedTriggers = {
    triggers: {
      source: { enabled: sourceEnabled, events, branch, paths: { include, exclude }, pollInterval: sourcePoll },
      baseImage: { enabled: baseImage.enabled ?? true, type: baseImage.type ?? 'Runtime', pollInterval: basePoll },
      timers,
    },
  };
  if (source.webhookSecret !== undefined) result.webhookSecret = source.webhookSecret;
  return result;
}

/** A glob over branch names or paths, as the trigger filters use it. */
export function globMatcher(glob: string): (value: string) => boolean {
  return picomatch(glob, { dot: true, nonegate: true, nobrace: false, strictSlashes: true });
}

function checkGlob(glob: string, where: string, problems: string[]): void {
  if (glob.length === 0 || glob.length > 255) problems.push(`${where}: a glob of 1 to 255 characters`);
  else {
    try {
      picomatch.makeRe(glob);
    } catch (err) {
      problems.push(`${where}: "${glob}" is not a glob (${errorMessage(err)})`);
    }
  }
}

function pollInterval(value: number | undefined, where: string, problems: string[]): number {
  if (value === undefined) return 0;
  if (!Number.isInteger(value) || (value !== 0 && (value < MIN_POLL_INTERVAL || value > 86_400))) {
    problems.push(`${where}: 0 (off) or ${MIN_POLL_INTERVAL} to 86400 seconds`);
    return 0;
  }
  return value;
}
