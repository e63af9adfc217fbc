import type { RunDocument } from '../domain/run-record';
import { isFinalRunStatus } from '../domain/status';
import type { Logger } from '../log';
import type { RunQueue, RunStore } from './store';
import { errorMessage } from '../errors';

/**
 * The reconciler: the store's run records are the truth and the queue only their place in line
 * (RELIABILITY.md rule 2). One pass looks at every unfinished run and
 * - ends `Expired` a run still Queued past its queue TTL (and drops its job);
 * - enqueues again a run that is Queued, Started or Running but has no job waiting, delayed or
 *   active: its job was lost (Redis lost the tail of its log, a job was removed by hand, the
 *   enqueue after create never happened). Enqueueing is idempotent, so a pass that races with a
 *   submit or with another reconciler does no harm.
 * A run Started or Running whose job is active but whose worker died is not this pass's
 * business: BullMQ's stalled checker puts that job back in line.
 */

export interface ReconcileDeps {
  store: Pick<RunStore, 'unfinished' | 'get' | 'end'>;
  queue: Pick<RunQueue, 'has' | 'enqueue' | 'remove'>;
  now?: () => Date;
  logger?: Pick<Logger, 'info' | 'warn'>;
}

export interface ReconcileReport {
  /** Unfinished runs looked at. */
  checked: number;
  expired: string[];
  requeued: string[];
}

/** Whether a run created at `run.createdAt` has waited past its queue TTL at `now` (ms). */
export function queuedTooLong(run: Pick<RunDocument, 'createdAt' | 'queueTtl'>, now: number): boolean {
  return Date.parse(run.createdAt) + run.queueTtl * 1000 <= now;
}

export function expiredReason(run: Pick<RunDocument, 'queueTtl'>): string {
  return `no worker took the run within ${run.queueTtl} s`;
}

/** One pass over the unfinished runs; a run that fails to reconcile is logged and left to the next pass. */
export async function reconcile(deps: ReconcileDeps): Promise<ReconcileReport> {
  const now = (deps.now ?? (() => new Date()))().getTime();
  const report: ReconcileReport = { checked: 0, expired: [], requeued: [] };
  for (const runId of await deps.store.unfinished()) {
    try {
      const run = await deps.store.get(runId);
      if (!run || isFinalRunStatus(run.status)) continue;
      report.checked++;
      if (run.status === 'Queued' && queuedTooLong(run, now)) {
        // The expected attempt keeps a run a worker claimed meanwhile out of this.
        if (await deps.store.end(runId, 'Expired', expiredReason(run), run.attempt)) {
          await deps.queue.remove(runId);
          report.expired.push(runId);
          deps.logger?.info({ runId, ttl: run.queueTtl }, 'run expired in the queue');
        }
        continue;
      }
      if (await deps.queue.has(runId)) continue;
      await deps.queue.enqueue(runId, { platform: run.platform, pool: run.pool });
      report.requeued.push(runId);
      deps.logger?.warn({ runId, status: run.status, attempt: run.attempt }, 'run had no job in the queue: enqueued again');
    } catch (err) {
      deps.logger?.warn({ runId, err: errorMessage(err) }, 'could not reconcile run');
    }
  }
  return report;
}

/**
 * Runs a pass every `intervalMs` (the first one at once), one at a time. Returns the function
 * that stops the loop; it resolves once a pass in progress has ended.
 */
export function startReconciler(deps: ReconcileDeps, intervalMs: number): () => Promise<void> {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let pass: Promise<void> = Promise.resolve();
  const tick = (): void => {
    pass = reconcile(deps)
      .then(
        () => undefined,
        (err: unknown) => deps.logger?.warn({ err: errorMessage(err) }, 'reconcile pass failed'),
      )
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, intervalMs);
      });
  };
  tick();
  return async () => {
    stopped = true;
    clearTimeout(timer);
    await pass;
  };
}
