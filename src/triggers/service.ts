import { randomInt } from 'node:crypto';
import type { RunRequest } from '../domain/run-record';
import type { RunResult } from '../domain/run-result';
import type { RunTrigger, SourceProvider } from '../domain/trigger';
import { formatImageRef, parseImageRef, withDefaultTag } from '../domain/image-ref';
import { KilnError, errorMessage } from '../errors';
import type { Logger } from '../log';
import { checkSchedule, type TimerFire, type TriggerScheduler } from '../queue';
import { parseRegistryEnvelope, type RegistryPush } from '../registry/notifications';
import { gitContextAt, gitContextOf, StoreUnavailableError, submitTaskRun, type SavedTask, type TaskInput, type TaskRunDeps, type TaskStore } from '../runs';
import { globMatcher } from './settings';
import type { BaseImageDependency, DecisionLog, DependencyIndex, OnceKeys, TriggerEvent } from './store';
import { parseWebhook, verifyWebhook, type SourceEvent } from './webhooks';

/**
 * The triggers: what turns a webhook, a registry notification, a poll or a timer tick into a run
 * of a saved task, at most once per thing that happened, with every decision written to the
 * decision log (`GET /v1/triggers/events`).
 *
 * Once-only keys (kept in Redis, shared by every API process):
 * - `delivery:<provider>:<id>` (7 days): a webhook delivery; a redelivery does nothing.
 * - `source:<task>:<kind>:<sha>` (30 days): a commit or pull-request head builds once per task,
 *   whether a webhook or a poll saw it first.
 * - `registry-event:<id>` (7 days): a registry notification event.
 * - `base:<task>:<digest>` (30 days): a base image's digest rebuilds a task once.
 * - `timer:<fireId>` (1 day): a timer tick.
 * - `poll:image:<ref>`, `poll:git:<task>` (the poll interval, jittered): the next poll is due
 *   when the key has expired, whichever process polls.
 * A key is given back when the run it guards could not be submitted, so that a retry can work.
 */

const DAY = 86_400;
const DELIVERY_TTL = 7 * DAY;
const SOURCE_TTL = 30 * DAY;
const BASE_TTL = 30 * DAY;
const TIMER_TTL = DAY;

/** What the route answers a webhook or a notification with. */
export interface HookAnswer {
  status: number;
  body: { action: TriggerEvent['action'] | 'received'; reason?: string; runId?: string; runs?: string[] };
}

export interface RemoteBranches {
  head: string | null;
  branches: Map<string, string>;
}

export interface TriggerServiceDeps {
  tasks: TaskStore;
  submit: TaskRunDeps;
  dependencies: DependencyIndex;
  once: OnceKeys;
  decisions: DecisionLog;
  /** The digest a registry has now for `image` (a canonical reference); undefined when the tag does not exist. */
  manifestDigest: (image: string, login: { username: string; password: string } | undefined) => Promise<string | undefined>;
  /** `git ls-remote` of a context URL. */
  listBranches: (url: string) => Promise<RemoteBranches>;
  /** The BullMQ job schedulers of the timers. */
  timers: Pick<TriggerScheduler, 'syncTimers' | 'removeTask' | 'listTimers'>;
  /** The last commit a git poll saw per branch, kept between polls (and processes). */
  polled: { get(task: string): Promise<Record<string, string>>; set(task: string, branches: Record<string, string>): Promise<void> };
  logger: Logger;
}

export class TriggerService {
  private readonly log: Logger;

  constructor(private readonly deps: TriggerServiceDeps) {
    this.log = deps.logger.child({ component: 'triggers' });
  }

  // Source webhooks

  /**
   * A webhook for one task: signature, then payload, then the task's filters, then once-only keys.
   * Answers 401 for a bad or missing signature (and for a task without a webhook secret, so that
   * task names cannot be probed), 400 for a body that is not JSON, 202 with the run it started,
   * 200 when it did nothing (with the reason), 422 when the task cannot run, 503 when the run
   * could not be stored (the sender retries).
   */
  async sourceWebhook(taskName: string, provider: SourceProvider, headers: Record<string, string | string[] | undefined>, raw: Buffer): Promise<HookAnswer> {
    const seen = { provider, task: taskName };
    const task = await this.deps.tasks.get(taskName);
    const secret = task ? await this.deps.tasks.webhookSecretOf(taskName) : undefined;
    if (!task || !secret) {
      await this.decide('webhook', 'rejected', task ? 'the task has no webhook secret' : 'no such task', seen);
      return { status: 401, body: { action: 'rejected', reason: 'the signature does not match' } };
    }
    const verified = verifyWebhook(provider, headers, raw, secret);
    if (!verified.ok) {
      await this.decide('webhook', 'rejected', verified.reason, seen);
      return { status: 401, body: { action: 'rejected', reason: verified.reason } };
    }
    let body: unknown;
    try {
      body = parseBody(raw, headerOf(headers, 'content-type'));
    } catch (err) {
      await this.decide('webhook', 'rejected', `the body is not JSON: ${errorMessage(err)}`, seen);
      return { status: 400, body: { action: 'rejected', reason: 'the body is not JSON' } };
    }
    const event = parseWebhook(provider, headers, body);
    const details = { ...seen, deliveryId: event.deliveryId ?? null };
    if (event.kind === 'ignored') {
      await this.decide('webhook', 'ignored', event.reason, details);
      return { status: 200, body: { action: 'ignored', reason: event.reason } };
    }
    if (event.deliveryId !== undefined && !(await this.deps.once.claim(`delivery:${provider}:${event.deliveryId}`, DELIVERY_TTL))) {
      await this.decide('webhook', 'duplicate', `delivery ${event.deliveryId} was seen already`, { ...details, ...eventDetails(event) });
      return { status: 200, body: { action: 'duplicate', reason: 'this delivery was seen already' } };
    }
    const outcome = await this.startSource(task, event, 'webhook');
    if (outcome.action === 'failed' && event.deliveryId !== undefined) await this.deps.once.release(`delivery:${provider}:${event.deliveryId}`);
    return answer(outcome);
  }

  /** Filters, once-only key, then the run: shared by webhooks and git polls. */
  private async startSource(task: SavedTask, event: SourceEvent, via: 'webhook' | 'poll'): Promise<Outcome> {
    const details = { task: task.name, ...eventDetails(event) };
    const skip = sourceFilter(task, event);
    if (skip) return this.decide(via, 'ignored', skip, details);
    const key = `source:${task.name}:${event.kind}:${event.commit}`;
    if (!(await this.deps.once.claim(key, SOURCE_TTL))) return this.decide(via, 'duplicate', `commit ${event.commit} was built for this task already`, details);
    const git = task.context === undefined ? undefined : gitContextOf(task.context);
    if (!git) {
      await this.deps.once.release(key);
      return this.decide(via, 'ignored', 'the task has no git context', details);
    }
    const trigger: RunTrigger = {
      type: event.kind === 'commit' ? 'Commit' : 'PullRequest',
      provider: via === 'poll' ? 'poll' : event.provider,
      commit: event.commit,
      branch: event.branch,
      ...(event.deliveryId !== undefined ? { deliveryId: event.deliveryId } : {}),
      ...(event.pullRequest !== undefined ? { pullRequest: event.pullRequest } : {}),
      ...(event.fromFork !== undefined ? { fromFork: event.fromFork } : {}),
    };
    // Bitbucket's pull-request events carry a short hash, which git cannot fetch: its branch then.
    const ref = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/.test(event.commit) ? event.commit : event.branch;
    return this.submit(task, trigger, details, [key], {
      source: { kind: 'url', url: gitContextAt(git, ref) },
      withoutSecrets: event.kind === 'pullrequest' && event.fromFork === true,
    });
  }

  // Base images

  /**
   * A Docker Registry 2.0 notification envelope. `registryHost` replaces the host the events name
   * (the registry's own `request.host`), for a registry that tasks reach under another name.
   */
  async registryNotification(body: unknown, registryHost?: string): Promise<HookAnswer> {
    const { pushes, ignored } = parseRegistryEnvelope(body);
    if (pushes.length === 0) {
      const why = ignored.length === 0 ? 'no events' : `${ignored.length} event(s), none a push of a tagged manifest (${summarize(ignored.map((i) => i.reason))})`;
      await this.decide('registry', 'ignored', why, { events: ignored.length });
      return { status: 200, body: { action: 'ignored', reason: why } };
    }
    const runs: string[] = [];
    for (const push of pushes) {
      const started = await this.registryPush(push, registryHost);
      runs.push(...started);
    }
    return { status: 200, body: { action: 'received', runs } };
  }

  private async registryPush(push: RegistryPush, registryHost: string | undefined): Promise<string[]> {
    let image: string;
    try {
      image = canonical(`${registryHost ?? push.registryHost}/${push.repository}:${push.tag}`);
    } catch (err) {
      await this.decide('registry', 'rejected', `not an image reference: ${errorMessage(err)}`, { eventId: push.id });
      return [];
    }
    const details = { image, digest: push.digest, eventId: push.id };
    if (!(await this.deps.once.claim(`registry-event:${push.id}`, DELIVERY_TTL))) {
      await this.decide('registry', 'duplicate', `event ${push.id} was seen already`, details);
      return [];
    }
    return this.imageUpdated(image, push.digest, 'registry', push.id);
  }

  /**
   * A base image's tag now names `digest`: each dependent task whose base-image trigger is on,
   * that did not build from this digest, and that does not push this image itself, gets one run.
   * A task with such a run still Queued gets no second one: that run pulls the newest base when it
   * starts (bursts are debounced that way).
   */
  async imageUpdated(image: string, digest: string, via: 'registry' | 'poll', eventId?: string, known?: readonly BaseImageDependency[]): Promise<string[]> {
    // A poll has just read them: not read again.
    const dependents = known ?? (await this.deps.dependencies.dependents(image));
    if (dependents.length === 0) {
      await this.decide(via, 'ignored', 'no task builds from this image', { image, digest, eventId: eventId ?? null });
      return [];
    }
    const started: string[] = [];
    for (const dependency of dependents) {
      const outcome = await this.rebuild(dependency, digest, via, eventId);
      if (outcome.runId) started.push(outcome.runId);
    }
    return started;
  }

  private async rebuild(dependency: BaseImageDependency, digest: string, via: 'registry' | 'poll', eventId: string | undefined): Promise<Outcome> {
    const { image } = dependency;
    const details = { task: dependency.task, image, kind: dependency.kind, oldDigest: dependency.digest || null, newDigest: digest, eventId: eventId ?? null };
    const task = await this.deps.tasks.get(dependency.task);
    if (!task) return this.decide(via, 'ignored', 'the task no longer exists', details);
    if (task.status === 'Disabled') return this.decide(via, 'ignored', 'the task is disabled', details);
    const settings = task.triggers.baseImage;
    if (!settings.enabled) return this.decide(via, 'ignored', 'the base-image trigger is off', details);
    if (settings.type === 'Runtime' && dependency.kind === 'buildtime') return this.decide(via, 'ignored', 'a build-time base, and the trigger type is Runtime', details);
    if (dependency.digest === digest) return this.decide(via, 'ignored', 'the task built from this digest already', details);
    if (via === 'poll' && dependency.digest === '') return this.decide(via, 'ignored', "the last build did not record this base's digest", details);
    if ((await this.deps.dependencies.outputsOf(task.name)).includes(image)) return this.decide(via, 'ignored', 'the task pushes this image itself', details);
    const key = `base:${task.name}:${digest}`;
    if (!(await this.deps.once.claim(key, BASE_TTL))) return this.decide(via, 'duplicate', `a run for digest ${digest} was started already`, details);
    const queued = await this.deps.submit.runs.list({ task: task.name, status: 'Queued', trigger: 'BaseImageUpdate', limit: 1 });
    if (queued.items.length > 0) return this.decide(via, 'ignored', `run ${queued.items[0].runId} is still queued and will build from the new digest`, details);
    const trigger: RunTrigger = {
      type: 'BaseImageUpdate',
      imageUpdateTrigger: {
        image,
        oldDigest: dependency.digest || null,
        newDigest: digest,
        via: via === 'registry' ? 'notification' : 'poll',
        ...(eventId !== undefined ? { eventId } : {}),
      },
    };
    return this.submit(task, trigger, details, [key]);
  }

  // Timers

  /** Makes the task's timer schedulers match its settings (after it was saved). */
  async taskSaved(task: SavedTask): Promise<void> {
    await this.deps.timers.syncTimers(task.name, task.status === 'Enabled' ? task.triggers.timers : []);
  }

  /** Forgets a deleted task: its timers and its place in the dependency index. */
  async taskDeleted(name: string): Promise<void> {
    await this.deps.timers.removeTask(name);
    await this.deps.dependencies.forget(name);
  }

  /**
   * Every task's timers as its settings say, and no scheduler of a task that is gone: repairs what
   * a failed sync after a save left (the store and the scheduler are two writes).
   */
  async syncAllTimers(): Promise<void> {
    const tasks = await this.deps.tasks.list();
    for (const task of tasks) await this.taskSaved(task);
    const known = new Set(tasks.map((t) => t.name));
    for (const timer of await this.deps.timers.listTimers()) if (!known.has(timer.task)) await this.deps.timers.removeTask(timer.task);
  }

  async listTimers(task: string): Promise<{ name: string; next: string | null }[]> {
    return this.deps.timers.listTimers(task);
  }

  /** Adds or changes one timer of a task; `created` when it is new. */
  async setTimer(name: string, timer: { name: string; schedule: string; timezone?: string; enabled?: boolean }): Promise<{ saved: SavedTask; created: boolean }> {
    const task = await this.deps.tasks.get(name);
    if (!task) throw new KilnError('not_found', `no task ${name}`);
    const problem = checkSchedule(timer.schedule.trim(), timer.timezone ?? 'UTC');
    if (problem) throw new KilnError('invalid_input', `timer ${timer.name}: ${problem}`);
    const next = { name: timer.name, schedule: timer.schedule.trim(), timezone: timer.timezone ?? 'UTC', enabled: timer.enabled ?? true };
    const created = !task.triggers.timers.some((t) => t.name === timer.name);
    if (created && task.triggers.timers.length >= MAX_TIMERS) throw new KilnError('invalid_input', `task ${name} has ${MAX_TIMERS} timers already`);
    const timers = created ? [...task.triggers.timers, next] : task.triggers.timers.map((t) => (t.name === timer.name ? next : t));
    const saved = await this.deps.tasks.put(inputOf({ ...task, triggers: { ...task.triggers, timers } }));
    await this.taskSaved(saved);
    return { saved, created };
  }

  /** Removes one timer of a task; false when it has none of that name. */
  async removeTimer(name: string, timerName: string): Promise<boolean> {
    const task = await this.deps.tasks.get(name);
    if (!task || !task.triggers.timers.some((t) => t.name === timerName)) return false;
    const saved = await this.deps.tasks.put(inputOf({ ...task, triggers: { ...task.triggers, timers: task.triggers.timers.filter((t) => t.name !== timerName) } }));
    await this.taskSaved(saved);
    return true;
  }

  async timerFired(fire: TimerFire): Promise<void> {
    const details = { task: fire.task, timer: fire.timer, scheduledFor: fire.scheduledFor };
    const task = await this.deps.tasks.get(fire.task);
    const timer = task?.triggers.timers.find((t) => t.name === fire.timer);
    if (!task) {
      await this.decide('timer', 'ignored', 'the task no longer exists', details);
      return;
    }
    if (!timer || !timer.enabled) {
      await this.decide('timer', 'ignored', 'the timer is no longer on', details);
      return;
    }
    if (task.status === 'Disabled') {
      await this.decide('timer', 'ignored', 'the task is disabled', details);
      return;
    }
    const key = `timer:${fire.fireId}`;
    if (!(await this.deps.once.claim(key, TIMER_TTL))) {
      await this.decide('timer', 'duplicate', 'this tick started a run already', details);
      return;
    }
    const trigger: RunTrigger = { type: 'Timer', timer: timer.name, schedule: timer.schedule, timezone: timer.timezone, scheduledFor: fire.scheduledFor };
    const outcome = await this.submit(task, trigger, details, [key]);
    // A tick that could not start its run is an error of the job (logged by the scheduler).
    if (outcome.action === 'failed') throw new Error(outcome.reason);
  }

  // Polls

  /** One pass of the pollers: base-image digests, then git remotes; each item only when it is due. */
  async poll(): Promise<void> {
    await this.pollImages();
    await this.pollSources();
  }

  /** Digest polls of every base image some task with polling on depends on. */
  async pollImages(): Promise<void> {
    for (const image of await this.deps.dependencies.images()) {
      try {
        await this.pollImage(image);
      } catch (err) {
        this.log.warn({ image, err: errorMessage(err) }, 'base image poll failed');
        await this.decide('poll', 'failed', `cannot read the digest: ${errorMessage(err)}`, { image });
      }
    }
  }

  private async pollImage(image: string): Promise<void> {
    const dependents = await this.deps.dependencies.dependents(image);
    const polling: { dependency: BaseImageDependency; task: SavedTask }[] = [];
    for (const dependency of dependents) {
      const task = await this.deps.tasks.get(dependency.task);
      if (task && task.status === 'Enabled' && task.triggers.baseImage.enabled && task.triggers.baseImage.pollInterval > 0) polling.push({ dependency, task });
    }
    if (polling.length === 0) return;
    const interval = Math.min(...polling.map((p) => p.task.triggers.baseImage.pollInterval));
    if (!(await this.deps.once.claim(`poll:image:${image}`, jittered(interval)))) return;
    const registry = parseImageRef(image).registry;
    const login = await this.loginFor(registry, polling.map((p) => p.task.name));
    const digest = await this.deps.manifestDigest(image, login);
    if (digest === undefined) {
      await this.decide('poll', 'ignored', 'the tag does not exist in its registry', { image });
      return;
    }
    // Only a digest that differs from what some polling task built from is news.
    if (polling.every((p) => p.dependency.digest === digest || p.dependency.digest === '')) return;
    await this.imageUpdated(image, digest, 'poll', undefined, dependents);
  }

  private async loginFor(registry: string, tasks: readonly string[]): Promise<{ username: string; password: string } | undefined> {
    for (const name of tasks) {
      const found = (await this.deps.tasks.secretsOf(name)).credentials.find((c) => c.registry === registry);
      if (found) return { username: found.username, password: found.password };
    }
    return undefined;
  }

  /**
   * `git ls-remote` of each task whose source trigger polls. The first poll of a task only learns
   * its branches; a later one that sees a branch (matching the filter) at a new commit starts a
   * run, as a push webhook would (without path filters: a poll does not know the changed files).
   */
  async pollSources(): Promise<void> {
    for (const task of await this.deps.tasks.list()) {
      const source = task.triggers.source;
      if (task.status !== 'Enabled' || !source.enabled || source.pollInterval === 0 || !source.events.includes('commit')) continue;
      const git = task.context === undefined ? undefined : gitContextOf(task.context);
      if (!git) continue;
      if (!(await this.deps.once.claim(`poll:git:${task.name}`, jittered(source.pollInterval)))) continue;
      try {
        await this.pollSource(task, git.url);
      } catch (err) {
        this.log.warn({ task: task.name, err: errorMessage(err) }, 'git poll failed');
        await this.decide('poll', 'failed', `git ls-remote failed: ${errorMessage(err)}`, { task: task.name });
      }
    }
  }

  private async pollSource(task: SavedTask, url: string): Promise<void> {
    const { branches } = await this.deps.listBranches(url);
    const matches = globMatcher(task.triggers.source.branch);
    const before = await this.deps.polled.get(task.name);
    const now: Record<string, string> = {};
    for (const [branch, sha] of branches) if (matches(branch)) now[branch] = sha;
    await this.deps.polled.set(task.name, now);
    // The first poll only learns the branches.
    if (Object.keys(before).length === 0) return;
    for (const [branch, commit] of Object.entries(now)) {
      if (before[branch] === commit) continue;
      await this.startSource(task, { kind: 'commit', provider: 'generic', branch, commit, changedPaths: null }, 'poll');
    }
  }

  // Runs

  /** The decision log's entry, and the outcome to act on. */
  private async decide(source: TriggerEvent['source'], action: TriggerEvent['action'], reason: string, details: Record<string, string | number | boolean | null>, runId?: string): Promise<Outcome> {
    const { task, ...rest } = details;
    const event: Omit<TriggerEvent, 'id' | 'at'> = { source, action, reason, details: rest };
    if (typeof task === 'string') event.task = task;
    if (runId !== undefined) event.runId = runId;
    try {
      await this.deps.decisions.append(event);
    } catch (err) {
      // The log explains; it never stops a trigger.
      this.log.warn({ err: errorMessage(err) }, 'could not write the trigger decision log');
    }
    this.log.info({ source, action, reason, runId, ...details }, 'trigger decision');
    return { action, reason, ...(runId !== undefined ? { runId } : {}) };
  }

  /** Submits a run; on failure gives the once-only keys back so that a retry can start it. */
  private async submit(task: SavedTask, trigger: RunTrigger, details: Record<string, string | number | boolean | null>, keys: readonly string[], input: { source?: { kind: 'url'; url: string }; withoutSecrets?: boolean } = {}): Promise<Outcome> {
    const via = sourceOf(trigger);
    try {
      const { run } = await submitTaskRun(task, { trigger, ...input }, this.deps.submit);
      return await this.decide(via, 'started', `run ${run.runId} queued`, details, run.runId);
    } catch (err) {
      for (const key of keys) await this.deps.once.release(key).catch(() => undefined);
      const invalid = err instanceof KilnError && !(err instanceof StoreUnavailableError);
      const outcome = await this.decide(via, 'failed', `the run could not be submitted: ${errorMessage(err)}`, details);
      return { ...outcome, invalid };
    }
  }
}

/**
 * A run ended (on any worker): a Succeeded run of a saved task records what it built from and
 * what it pushed, for the base-image triggers.
 */
export async function recordBuild(index: Pick<DependencyIndex, 'record'>, request: Pick<RunRequest, 'taskName'>, result: RunResult): Promise<void> {
  if (request.taskName === undefined || result.status !== 'Succeeded' || result.dependencies.length === 0) return;
  await index.record(request.taskName, result.runId, result.dependencies, new Date(result.finishedAt || Date.now()));
}

interface Outcome {
  action: TriggerEvent['action'];
  reason: string;
  runId?: string;
  /** A failure of the task itself (it does not validate), not of the store. */
  invalid?: boolean;
}

/** A task's timers at most (the API's schema says the same). */
const MAX_TIMERS = 20;

/** A saved task as the store takes it back (the store adds the rest again). */
function inputOf(task: SavedTask): TaskInput {
  const { createdAt: _c, updatedAt: _u, secretIds: _s, credentialRegistries: _r, webhookSecretSet: _w, ...input } = task;
  return input;
}

function answer(outcome: Outcome): HookAnswer {
  switch (outcome.action) {
    case 'started':
      return { status: 202, body: { action: 'started', runId: outcome.runId, reason: outcome.reason } };
    case 'failed':
      return { status: outcome.invalid ? 422 : 503, body: { action: 'failed', reason: outcome.reason } };
    default:
      return { status: 200, body: { action: outcome.action, reason: outcome.reason } };
  }
}

/** Why a task's source trigger does not start a run for this event, or undefined when it does. */
export function sourceFilter(task: SavedTask, event: SourceEvent): string | undefined {
  const settings = task.triggers.source;
  if (task.status === 'Disabled') return 'the task is disabled';
  if (!settings.enabled) return 'the source trigger is off';
  if (!settings.events.includes(event.kind)) return `${event.kind} events are off for this task`;
  if (!globMatcher(settings.branch)(event.branch)) return `branch "${event.branch}" does not match "${settings.branch}"`;
  if (event.changedPaths === null) return undefined;
  const included = settings.paths.include.map(globMatcher);
  const excluded = settings.paths.exclude.map(globMatcher);
  const relevant = event.changedPaths.filter((path) => included.some((m) => m(path)) && !excluded.some((m) => m(path)));
  if (relevant.length === 0) return `none of the ${event.changedPaths.length} changed path(s) is included (or all are excluded)`;
  return undefined;
}

function eventDetails(event: SourceEvent): Record<string, string | number | boolean | null> {
  return {
    provider: event.provider,
    event: event.kind,
    branch: event.branch,
    commit: event.commit,
    deliveryId: event.deliveryId ?? null,
    pullRequest: event.pullRequest ?? null,
    fromFork: event.fromFork ?? null,
    changedPaths: event.changedPaths === null ? null : event.changedPaths.length,
  };
}

function sourceOf(trigger: RunTrigger): TriggerEvent['source'] {
  switch (trigger.type) {
    case 'Commit':
    case 'PullRequest':
      return trigger.provider === 'poll' ? 'poll' : 'webhook';
    case 'BaseImageUpdate':
      return trigger.imageUpdateTrigger.via === 'poll' ? 'poll' : 'registry';
    default:
      return 'timer';
  }
}

/** An image reference as the dependency index keys it: canonical, with its tag. */
export function canonical(reference: string): string {
  return formatImageRef(withDefaultTag(parseImageRef(reference)));
}

/** GitHub may send `application/x-www-form-urlencoded` with the JSON in `payload`. */
function parseBody(raw: Buffer, contentType: string | undefined): unknown {
  const text = raw.toString('utf8');
  if (contentType?.toLowerCase().startsWith('application/x-www-form-urlencoded')) {
    const payload = new URLSearchParams(text).get('payload');
    if (payload === null) throw new Error('no "payload" field');
    return JSON.parse(payload) as unknown;
  }
  return JSON.parse(text) as unknown;
}

function headerOf(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
}

/** `interval` seconds, ±20 %, so that many pollers do not fall into step. */
function jittered(intervalSeconds: number): number {
  const spread = Math.max(1, Math.round(intervalSeconds * 0.2));
  return Math.max(1, intervalSeconds - spread + randomInt(0, 2 * spread + 1));
}

function summarize(reasons: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const reason of reasons) counts.set(reason, (counts.get(reason) ?? 0) + 1);
  return [...counts].map(([reason, n]) => (n > 1 ? `${reason} x${n}` : reason)).join('; ');
}

