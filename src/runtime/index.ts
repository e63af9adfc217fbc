export { executePlan, stepsMayOverlap, DEFAULT_RUN_TIMEOUT, type ExecuteOptions } from './execute';
export type { RunEvent } from './events';
export { systemClock, fastClock, isAbortError, abortError, type Clock } from './clock';
export { SecretMasker, MASK } from './mask';
