export type * from './store';
export { checkTask, contextSource, gitContextAt, gitContextOf, submitRun, submitTaskRun, taskConfinement, INLINE_TASK_FILE, type TaskRunDeps, type TaskRunInput, StoreUnavailableError, type CheckTaskDeps, type CheckTaskInput, type SubmitDeps, type SubmitInput, type Submitted } from './submit';
export { quickBuildTask, QUICK_BUILD_FILE, type QuickBuildOptions } from './quick-build';
export { executeClaimedRun, removeUpload, uploadPath, LogShipper, RunAbort, SERVICE_STEP, type ClaimedRunOutcome, type ExecuteClaimedRunOptions, type LogShipperOptions } from './worker-run';
export { expiredReason, queuedTooLong, reconcile, startReconciler, type ReconcileDeps, type ReconcileReport } from './reconcile';
// What the queue layer needs from below runs/ (it may import only runs/ and the vocabulary).
export type { Backend } from '../backend/types';
export type { NetworkPolicy } from '../source';
export { checkPolicy, confinementOf, parseMemory, policyViolations, PolicyDeniedError, POLICIES, type Policy, type PolicyViolation, type StepLimits } from './policy';
