import type { Logger } from 'pino';
import type { Policy, StepLimits } from '../runs/policy';
import type { SubmitDeps } from '../runs/submit';
import type { LogStore, RunQueue, RunStore, TaskStore, TokenStore } from '../runs/store';
import type { TriggerService } from '../triggers/service';
import type { DecisionLog, DependencyIndex } from '../triggers/store';
import type { AuthFailureLimit, RoleGuard } from './auth';
import type { KilnMetrics } from './metrics';

/** What createApp is given, and what its route modules share. */

export interface AppDefaults {
  /** The run registry when a request names none. */
  registry?: string;
  platform: string;
  pool: string;
  /** Run timeout, seconds. */
  timeout: number;
  /** Seconds a run may wait in the queue before it ends Expired. */
  queueTtl: number;
  /** The largest uploaded context, bytes. */
  uploadCapBytes: number;
  /** What runs' steps may ask of the host (runs/policy.ts); default `restricted`. */
  policy?: Policy;
  /** Per-step limits of every run; a saved task may set its own. */
  limits?: StepLimits;
}

export interface AppDeps {
  runs: RunStore;
  logs: LogStore;
  tasks: TaskStore;
  tokens: TokenStore;
  queue: RunQueue;
  /** Where uploaded contexts are written, as `<uploadId>.tar`. */
  uploadsDir: string;
  /** Verifies signed upload URLs (`uploadKeyFrom(serverKey)`); without it `GET /v1/uploads/{id}` answers 404. */
  uploadKey?: Buffer;
  defaults: AppDefaults;
  /** Whether the service can work (Redis answers); false or a rejection answers 503. */
  ready: () => Promise<boolean>;
  logger: Logger;
  metrics: KilnMetrics;
  /** Image aliases for the first word of `cmd` steps, as `kiln validate` uses them. */
  imageAliases?: Readonly<Record<string, string>>;
  /** Reads `alias.src` entries when tasks are checked at submit; without it they are refused there. */
  loadAliasSource?: (src: string) => Promise<string>;
  now?: () => Date;
  /** How often a log follower gets a comment when nothing else is sent (default 15 s). */
  heartbeatMs?: number;
  /** Failed authentications per client address (default 20 a minute). */
  authFailures?: AuthFailureLimit;
  /**
   * The built web console (`index.html`, `assets/`), served at `/` without a token; without it
   * nothing is served there. A directory without index.html answers `/` with a 404 saying how to
   * build it.
   */
  consoleDir?: string;
  /** Webhooks, registry notifications, timers and the dependency index; without it those routes do not exist. */
  triggers?: { service: TriggerService; dependencies: DependencyIndex; decisions: DecisionLog };
}

/** What the route modules share. */
export interface RouteContext {
  deps: AppDeps;
  requireRole: RoleGuard;
  submitDeps: SubmitDeps;
  logger: Logger;
}
