/**
 * Why a run started, and a saved task's trigger settings. Field names follow ACR where it has
 * them (`imageUpdateTrigger`, `Runtime`/`All`, the trigger types); the rest is ours.
 *
 * Glossary:
 * - source trigger: a git push (commit) or pull request on the task's context repository, seen
 *   through a webhook or by polling `git ls-remote`.
 * - base image: an image a task's Dockerfile builds FROM. The runtime base is the final stage's;
 *   build-time bases are the other stages'.
 * - base-image trigger: a new digest of a base image's tag (a registry notification or a digest
 *   poll) starts the tasks that build from it.
 * - timer: a named cron schedule of a task.
 */

export const TRIGGER_TYPES = ['Manual', 'Commit', 'PullRequest', 'BaseImageUpdate', 'Timer'] as const;
export type TriggerType = (typeof TRIGGER_TYPES)[number];

/** Where a source event came from. */
export const SOURCE_PROVIDERS = ['github', 'gitlab', 'gitea', 'bitbucket', 'generic'] as const;
export type SourceProvider = (typeof SOURCE_PROVIDERS)[number];

/** A base image's new digest, and how Kiln learned of it. */
export interface ImageUpdateTrigger {
  /** The base image's reference as the Dockerfile names it, canonical (`127.0.0.1:5000/base:1`). */
  image: string;
  /** The digest the task last built from; null when it never built from this image. */
  oldDigest: string | null;
  newDigest: string;
  /** `notification`: the registry said so; `poll`: a digest poll saw it. */
  via: 'notification' | 'poll';
  /** The registry's event id, for notifications. */
  eventId?: string;
}

export type RunTrigger =
  | {
      type: 'Manual';
      /** The token's name. */
      by?: string;
      /** The run this one repeats (`POST /v1/runs/{id}/rerun`). */
      rerunOf?: string;
    }
  | {
      type: 'Commit' | 'PullRequest';
      /** `poll` when a `git ls-remote` poll saw the commit. */
      provider: SourceProvider | 'poll';
      /** The full sha the run builds (the head of the push or of the pull request). */
      commit: string;
      /** The pushed branch, or the pull request's source branch. */
      branch: string;
      /** The provider's delivery id, when it sent one. */
      deliveryId?: string;
      pullRequest?: number;
      /** A pull request from another repository: its runs get no secrets. */
      fromFork?: boolean;
    }
  | { type: 'BaseImageUpdate'; imageUpdateTrigger: ImageUpdateTrigger }
  | {
      type: 'Timer';
      timer: string;
      schedule: string;
      timezone: string;
      /** The tick this run is for (ISO). */
      scheduledFor: string;
    };

export const SOURCE_EVENTS = ['commit', 'pullrequest'] as const;
export type SourceEventKind = (typeof SOURCE_EVENTS)[number];

/** `triggers.source`, with every default filled in. */
export interface SourceTriggerSettings {
  enabled: boolean;
  events: SourceEventKind[];
  /** A glob over branch names (`main`, `release/*`); `*` matches every branch without a `/`, `**` every branch. */
  branch: string;
  /** Globs over the changed files' paths; a push touching only excluded (or no included) paths starts nothing. */
  paths: { include: string[]; exclude: string[] };
  /** Seconds between `git ls-remote` polls; 0 = webhooks only. */
  pollInterval: number;
}

/** `triggers.baseImage`, with every default filled in. */
export interface BaseImageTriggerSettings {
  enabled: boolean;
  /** `Runtime`: only the final stage's base; `All`: build-time bases too. */
  type: 'Runtime' | 'All';
  /** Seconds between digest polls of this task's bases (jittered); 0 = notifications only. */
  pollInterval: number;
}

export interface TimerTrigger {
  name: string;
  /** Cron: 5 fields (minute hour day month weekday), or 6 with seconds first. */
  schedule: string;
  /** An IANA time zone; UTC by default. */
  timezone: string;
  enabled: boolean;
}

/**
 * What a source trigger defaults to for a task's context (its git parts, or undefined when the
 * context is not a git URL): on for a git context; the branch its ref names (every branch when it
 * names none, or a commit); every path under its subdirectory. The server fills these in; the CLI
 * recognises them to leave them out when a task's context changes.
 */
export function sourceDefaults(git: { ref?: string; subdir?: string } | undefined): { enabled: boolean; branch: string; include: string[] } {
  return {
    enabled: git !== undefined,
    branch: git?.ref && !/^[0-9a-f]{40}$/.test(git.ref) ? git.ref : '**',
    include: [git?.subdir ? `${git.subdir}/**` : '**'],
  };
}

/** A saved task's triggers, normalized. Write-only parts (the webhook secret) are not here. */
export interface TaskTriggers {
  source: SourceTriggerSettings;
  baseImage: BaseImageTriggerSettings;
  timers: TimerTrigger[];
}
