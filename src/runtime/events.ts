import type { OutputStream } from '../backend/types';
import type { RunResult, StepResult } from '../domain/run-result';

/** What a run reports while it goes; the CLI prints these, the service stores them. */
export type RunEvent =
  | { type: 'run-started'; runId: string; at: string }
  | { type: 'step-started'; stepId: string; attempt: number; at: string }
  | { type: 'log'; stepId: string; stream: OutputStream; line: string }
  | { type: 'step-retry'; stepId: string; attempt: number; reason: string; delaySeconds: number }
  | { type: 'step-finished'; step: StepResult }
  | { type: 'image-built'; stepId: string; tags: readonly string[]; imageId: string }
  | { type: 'image-pushed'; stepId: string; image: string; digest: string }
  | { type: 'run-finished'; result: RunResult };
