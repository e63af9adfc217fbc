import type { ImageDependencies } from '../domain/run-result';

/**
 * What the triggers keep between events: the base-image dependency index, the keys that make
 * each event start at most one run, and the decision log. Implemented on Redis in redis-store.ts.
 */

/** One base image of one task, as the index keeps it. */
export interface BaseImageDependency {
  task: string;
  /** The base image's canonical reference with its tag (`127.0.0.1:5000/base:1`, `docker.io/library/alpine:3.20`). */
  image: string;
  /** `runtime`: the final stage's base; `buildtime`: another stage's. A base that is both is `runtime`. */
  kind: 'runtime' | 'buildtime';
  /** The digest the task last built from; '' when the run could not tell. */
  digest: string;
  /** The run that recorded it, and when. */
  runId: string;
  recordedAt: string;
}

export interface DependencyIndex {
  /**
   * Replaces what the index knows of `task` with what one of its runs built: its base images
   * (from every `runtime-dependency` and `buildtime-dependency`) and the images it pushed (every
   * `image`). Atomic: a reader sees the old set or the new one. Images that no task depends on
   * any more leave the index.
   */
  record(task: string, runId: string, dependencies: readonly ImageDependencies[], at: Date): Promise<void>;
  /** The tasks that depend on `image` (a canonical reference with tag), by task name. */
  dependents(image: string): Promise<BaseImageDependency[]>;
  /** The base images of `task`, by image. */
  dependenciesOf(task: string): Promise<BaseImageDependency[]>;
  /** The images `task` pushed in its last recorded run (canonical references with tag). */
  outputsOf(task: string): Promise<string[]>;
  /** Every image some task depends on, sorted. */
  images(): Promise<string[]>;
  /** Removes the task from the index (it was deleted). */
  forget(task: string): Promise<void>;
}

/** Keys that let one event start at most one run, across every API process. */
export interface OnceKeys {
  /** True for the first caller to claim `key` within `ttlSeconds` (atomic `SET NX EX`). */
  claim(key: string, ttlSeconds: number): Promise<boolean>;
  /** Gives a claimed key back (the run it guarded could not be submitted, so a retry may try again). */
  release(key: string): Promise<void>;
}

export const TRIGGER_EVENT_SOURCES = ['webhook', 'registry', 'poll', 'timer'] as const;
export type TriggerEventSource = (typeof TRIGGER_EVENT_SOURCES)[number];

/**
 * What a trigger did with one thing it saw: `started` a run, `ignored` it (filters, disabled, no
 * change), saw a `duplicate`, `rejected` it (bad signature, bad payload) or `failed` (the run
 * could not be submitted).
 */
export const TRIGGER_ACTIONS = ['started', 'ignored', 'duplicate', 'rejected', 'failed'] as const;
export type TriggerAction = (typeof TRIGGER_ACTIONS)[number];

export interface TriggerEvent {
  /** Opaque, increasing. */
  id: string;
  at: string;
  source: TriggerEventSource;
  /** The task it was for, when it was for one. */
  task?: string;
  action: TriggerAction;
  /** The run it started. */
  runId?: string;
  /** Why, for people: "branch feature/x does not match main", "digest unchanged"... */
  reason: string;
  /** What was seen: provider, delivery id, commit, branch, image, digests, timer... (no secrets). */
  details: Record<string, string | number | boolean | null>;
}

export interface TriggerEventFilter {
  task?: string;
  source?: TriggerEventSource;
  action?: TriggerAction;
  /** From a previous page's `next`: events older than this. */
  cursor?: string;
  /** Default 50, at most 500. */
  limit?: number;
}

export interface DecisionLog {
  /** Appends an event; the log keeps the newest entries up to its cap. */
  append(event: Omit<TriggerEvent, 'id' | 'at'>): Promise<TriggerEvent>;
  /** Newest first. */
  list(filter: TriggerEventFilter): Promise<{ items: TriggerEvent[]; next?: string }>;
}
