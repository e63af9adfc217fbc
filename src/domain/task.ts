/**
 * Glossary
 * - Task: a task file after templating, parsing and validation. Keys keep their file spelling; the
 *   step kind is decided once, in `task/`, and carried as `kind`.
 * - Step: one unit of work in a task: `cmd` (run a container), `build` (docker build) or `push`.
 * - Plan: a Task compiled for one run (see plan.ts): typed options, defaults resolved, the graph.
 * - Run: one execution of a Plan; its outcome is a RunResult.
 */

export const TASK_VERSIONS = ['1.0-preview-1', 'v1.0.0', 'v1.1.0', 'v1.2.0'] as const;
export type TaskVersion = (typeof TASK_VERSIONS)[number];

/** A secret a task declares; its value is resolved before the template is rendered. */
export interface TaskSecret {
  id: string;
  source: SecretSource;
}

export type SecretSource =
  | { kind: 'run' } // given with the run: `--secret id=value`, the API request or the saved task
  | { kind: 'env'; name: string }
  | { kind: 'file'; path: string }
  | { kind: 'keyvault'; url: string; clientId?: string };

export interface TaskNetwork {
  name: string;
  driver?: string;
  ipv6: boolean;
  skipCreation: boolean;
  isDefault: boolean;
}

export interface TaskVolume {
  name: string;
  /** File name -> base64 content. */
  secret: Readonly<Record<string, string>>;
}

export interface VolumeMount {
  name: string;
  mountPath: string;
}

/** Keys every step kind accepts. Optional keys are absent when the file does not set them. */
export interface TaskStepCommon {
  /** Position in the file, 0-based. */
  index: number;
  id: string;
  when?: readonly string[];
  timeout?: number;
  startDelay?: number;
  retries?: number;
  retryDelay?: number;
  retryOnErrors?: readonly string[];
  repeat?: number;
  ignoreErrors?: boolean;
  detach?: boolean;
  keep?: boolean;
  env?: readonly string[];
  workingDirectory?: string;
  disableWorkingDirectoryOverride?: boolean;
  entryPoint?: string;
  user?: string;
  privileged?: boolean;
  expose?: readonly string[];
  ports?: readonly string[];
  network?: string;
  isolation?: string;
  cpus?: string;
  pull?: boolean;
  cmdDownloadRetries?: number;
  cmdDownloadRetryDelay?: number;
  cache?: 'enabled' | 'disabled';
  volumeMounts?: readonly VolumeMount[];
  // v1.2.0 additions
  finally?: boolean;
  if?: boolean;
  allowExitCodes?: readonly number[];
}

export interface TaskCmdStep extends TaskStepCommon {
  kind: 'cmd';
  cmd: string;
}

export interface TaskBuildStep extends TaskStepCommon {
  kind: 'build';
  build: string;
}

export interface TaskPushStep extends TaskStepCommon {
  kind: 'push';
  push: readonly string[];
}

export type TaskStep = TaskCmdStep | TaskBuildStep | TaskPushStep;
export type StepKind = TaskStep['kind'];

export interface Task {
  version: TaskVersion;
  stepTimeout?: number;
  workingDirectory?: string;
  env: readonly string[];
  secrets: readonly TaskSecret[];
  networks: readonly TaskNetwork[];
  volumes: readonly TaskVolume[];
  steps: readonly TaskStep[];
}

/** Compares task versions as versions (`v1.10.0` > `v1.2.0`); `1.0-preview-1` sorts before `v1.0.0`. */
export function compareVersions(a: string, b: string): number {
  const parts = (v: string): number[] => {
    const m = /^v?(\d+)\.(\d+)(?:\.(\d+))?(-.*)?$/.exec(v);
    if (!m) return [0, 0, 0, 0];
    return [Number(m[1]), Number(m[2]), Number(m[3] ?? 0), m[4] ? 0 : 1];
  };
  const pa = parts(a);
  const pb = parts(b);
  for (let i = 0; i < pa.length; i++) {
    if (pa[i] !== pb[i]) return pa[i] < pb[i] ? -1 : 1;
  }
  return 0;
}
