/** Where a run is in its life. `Error` is an infrastructure fault, `Failed` a step's own failure. */
export const RUN_STATUSES = [
  'Queued',
  'Started',
  'Running',
  'Succeeded',
  'Failed',
  'Canceled',
  'Error',
  'Timeout',
  'Expired',
] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

export const STEP_STATUSES = ['Queued', 'Running', 'Succeeded', 'Failed', 'Skipped', 'Canceled', 'Timeout'] as const;
export type StepStatus = (typeof STEP_STATUSES)[number];

const FINAL_RUN_STATUSES: ReadonlySet<RunStatus> = new Set(['Succeeded', 'Failed', 'Canceled', 'Error', 'Timeout', 'Expired']);

export function isFinalRunStatus(status: RunStatus): boolean {
  return FINAL_RUN_STATUSES.has(status);
}
