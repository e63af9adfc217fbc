import type { Redis } from 'ioredis';
import { isFinalRunStatus } from '../domain/status';
import type { RunDocument } from '../domain/run-record';
import type { Backend, RunStore } from '../runs';
import type { MetaKeys } from './keys';
import { parseWorkerOwner } from './owner';
import { workerStates } from './registry';

/**
 * Removes what workers of this installation left on the engine: every object whose owner label
 * names a known worker (see keys.ts) and whose
 * - worker has no live heartbeat (it was killed), or
 * - run is final or gone (its teardown failed, or the run was ended for it), or
 * - run attempt is older than the run's current one (the attempt lost the run).
 * Objects of no run (a worker's warm network sandboxes) go only when their worker is dead.
 * Objects of other owners (`kiln run`, another installation on the same engine) are left alone.
 *
 * The backend's sweep asks about each object synchronously, so the decision needs the facts at
 * hand: a first pass only looks (removing nothing), the heartbeats and runs of what it saw are
 * read, and the second pass removes only objects the first one saw. An object created in
 * between is too new to judge and waits for the next sweep.
 */

export interface SweepDeps {
  backend: Backend;
  redis: Redis;
  keys: MetaKeys;
  store: Pick<RunStore, 'get'>;
}

/** Sweeps the engine, or only the objects of `runId`; returns how many objects were removed. */
export async function sweepLeftovers(deps: SweepDeps, runId?: string): Promise<number> {
  const seen = new Set<string>();
  const runIds = new Set<string>();
  const workerIds = new Set<string>();
  await deps.backend.sweep(({ runId: id, owner }) => {
    const parsed = parseWorkerOwner(owner);
    if (parsed && (runId === undefined || id === runId)) {
      seen.add(`${id ?? ''}\u0000${owner}`);
      if (id !== undefined) runIds.add(id);
      workerIds.add(parsed.workerId);
    }
    return false;
  });
  if (seen.size === 0) return 0;
  const states = await workerStates(deps.redis, deps.keys, [...workerIds]);
  const runs = new Map<string, RunDocument | undefined>(await Promise.all([...runIds].map(async (id) => [id, await deps.store.get(id)] as const)));
  return deps.backend.sweep(({ runId: id, owner }) => {
    const parsed = parseWorkerOwner(owner);
    if (!parsed || !seen.has(`${id ?? ''}\u0000${owner}`)) return false;
    const state = states.get(parsed.workerId);
    if (state === undefined) return false;
    if (state === 'dead') return true;
    if (id === undefined) return false;
    const run = runs.get(id);
    if (!run || isFinalRunStatus(run.status)) return true;
    return parsed.runAttempt !== undefined && parsed.runAttempt < run.attempt;
  });
}
