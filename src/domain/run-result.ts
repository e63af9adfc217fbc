import type { PlanStep } from './plan';
import type { RunStatus, StepStatus } from './status';

/**
 * The outcome of one run: the document `kiln run --output json` prints and the API returns. Field
 * names are a contract (DESIGN.md, "Contracts"); dependency keys follow ACR's run summary.
 */
export interface RunResult {
  runId: string;
  status: RunStatus;
  /** ISO 8601 times. */
  startedAt: string;
  finishedAt: string;
  steps: StepResult[];
  outputImages: OutputImage[];
  dependencies: ImageDependencies[];
  /** Why the run ended Error (or Failed before any step ran), for people. */
  error?: string;
}

export interface StepResult {
  id: string;
  /** The step's kind, as the plan decided it. */
  kind: PlanStep['kind'];
  /**
   * The ids of the steps it waits for: the plan's resolved `when` (the previous step when it has
   * none, nothing for `when: ["-"]`). With the ids, the steps of a run draw its graph.
   */
  dependsOn: string[];
  status: StepStatus;
  /** The last attempt's exit code; null when no container exited (skipped, build, push, or an error before it ran). */
  exitCode: number | null;
  startedAt: string | null;
  finishedAt: string | null;
  attempts: number;
  /** What went wrong, when the step failed for a reason other than its exit code. */
  error?: string;
}

/** A step of `plan` before it ran: the shape every step table starts from (status and times follow). */
export function pendingStep(step: Pick<PlanStep, 'id' | 'kind' | 'dependsOn'>, status: StepStatus = 'Queued'): StepResult {
  return { id: step.id, kind: step.kind, dependsOn: [...step.dependsOn], status, exitCode: null, startedAt: null, finishedAt: null, attempts: 0 };
}

export interface OutputImage {
  registry: string;
  repository: string;
  tag: string;
  digest: string;
}

export interface DependencyImage {
  registry: string;
  repository: string;
  tag: string;
  digest: string;
  reference: string;
}

export interface ImageDependencies {
  image: DependencyImage;
  'runtime-dependency'?: DependencyImage;
  'buildtime-dependency': DependencyImage[];
  git?: { 'git-head-revision': string };
}
