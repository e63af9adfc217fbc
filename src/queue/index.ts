/** The queue layer: BullMQ queues and the worker that runs their jobs (the only bullmq user). */
export { BullRunQueue, JOB_NAME, type BullRunQueueOptions, type RunJobData } from './bullmq-queue';
export { startWorker, type StartWorkerOptions, type WorkerHandle } from './worker';
export { queueName, DEFAULT_PREFIX, type RunTarget } from './keys';
export { defaultWorkerId, parseWorkerOwner, workerOwner, type ParsedOwner } from './owner';
export { sweepLeftovers, type SweepDeps } from './sweeper';
export { TriggerScheduler, TRIGGER_QUEUE, checkSchedule, type TimerFire, type TriggerHandlers, type ScheduledTimer, type TriggerSchedulerOptions } from './trigger-scheduler';
