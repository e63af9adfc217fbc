import type { TaskNetwork, TaskSecret, TaskVersion, TaskVolume, VolumeMount } from './task';

/**
 * A Plan is a Task compiled for one run: plain JSON (it crosses the queue and `kiln render` prints
 * it), every default resolved, every step's dependencies explicit. The runtime takes only a Plan.
 */
export interface Plan {
  version: TaskVersion;
  /** Default working directory of steps. */
  workingDirectory: string;
  networks: readonly TaskNetwork[];
  volumes: readonly TaskVolume[];
  /** Declared secrets (ids and sources only: values never enter a Plan). */
  secrets: readonly TaskSecret[];
  steps: readonly PlanStep[];
  /** Step ids grouped by depth in the graph: each level waits only on earlier levels. */
  levels: readonly (readonly string[])[];
}

export interface RetryPolicy {
  /** Extra attempts after the first failure. */
  retries: number;
  /** Seconds between attempts. */
  delay: number;
  /** Retry only when the failed attempt's output contains one of these; empty means any failure. */
  onErrors: readonly string[];
}

export interface PlanStepCommon {
  id: string;
  /** Position in the task file, 0-based. */
  index: number;
  /** Ids of the steps that must succeed before this one starts; empty means at once. */
  dependsOn: readonly string[];
  /** Seconds; one deadline over every attempt and repeat. */
  timeout: number;
  startDelay: number;
  retry: RetryPolicy;
  /** Extra runs after the first (`repeat: N` runs N+1 times). */
  repeat: number;
  ignoreErrors: boolean;
  /** Runs after the others whatever their outcome (v1.2.0). */
  finally: boolean;
  /** False when the step's `if:` rendered false: the step is Skipped. */
  enabled: boolean;
  /** Exit codes that count as success (always includes 0). */
  allowExitCodes: readonly number[];
  /** `K=V` entries: the task's env merged with the step's (the step wins). */
  env: readonly string[];
  workingDirectory: string;
}

export interface ContainerOptions {
  entryPoint?: string;
  user?: string;
  privileged: boolean;
  expose: readonly string[];
  ports: readonly string[];
  network?: string;
  isolation?: string;
  cpus?: string;
  volumeMounts: readonly VolumeMount[];
  /** Keep the image's own working directory instead of the step's. */
  disableWorkingDirectoryOverride: boolean;
  detach: boolean;
  keep: boolean;
}

export interface PlanCmdStep extends PlanStepCommon, ContainerOptions {
  kind: 'cmd';
  /** Canonical image reference (registry/repository:tag). */
  image: string;
  /** The first word of `cmd` as the user wrote it (after image-alias expansion). */
  imageAsWritten: string;
  args: readonly string[];
  pull: boolean;
  downloadRetries: number;
  downloadRetryDelay: number;
}

export type BuildContext =
  | { kind: 'workspace'; path: string }
  | { kind: 'git'; url: string; ref?: string; subdir?: string }
  | { kind: 'tar'; url: string };

export interface PlanBuildStep extends PlanStepCommon {
  kind: 'build';
  /** Canonical image references to tag the result with. */
  tags: readonly string[];
  /** Dockerfile path, relative to the context (default `Dockerfile`). */
  dockerfile: string;
  /** In the order given; a later duplicate key wins. `value` absent: taken from the step env. */
  buildArgs: readonly { name: string; value?: string }[];
  target?: string;
  noCache: boolean;
  pull: boolean;
  labels: readonly { name: string; value: string }[];
  platform?: string;
  network?: string;
  cacheFrom: readonly string[];
  context: BuildContext;
  cache: boolean;
}

export interface PlanPushStep extends PlanStepCommon {
  kind: 'push';
  /** Canonical references, deduplicated, `:latest` added where no tag was given. */
  images: readonly string[];
}

export type PlanStep = PlanCmdStep | PlanBuildStep | PlanPushStep;
