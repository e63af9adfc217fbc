import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { KilnError } from '../errors';

/**
 * Who owns a container, network or volume that a worker created: the `kiln.owner` label is
 * `worker:<workerId>:<runAttempt>`. The run attempt is there because `kiln.attempt` is the step's
 * attempt: without the run's, a sweep could not tell a lost attempt's containers from the
 * current one's. `worker:<workerId>` (no attempt) is read too, for objects not tied to an attempt.
 */

const WORKER_ID = /^[A-Za-z0-9_.-]{1,100}$/;

/** `<host>-<pid>-<random>`: unique across restarts of the same process id. */
export function defaultWorkerId(): string {
  const host = hostname().replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 60) || 'host';
  return `${host}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

export function checkWorkerId(workerId: string): void {
  if (!WORKER_ID.test(workerId)) throw new KilnError('invalid_input', `worker id "${workerId}" may hold only letters, digits, ".", "_" and "-"`);
}

export function workerOwner(workerId: string, runAttempt?: number): string {
  return runAttempt === undefined ? `worker:${workerId}` : `worker:${workerId}:${runAttempt}`;
}

export interface ParsedOwner {
  workerId: string;
  runAttempt?: number;
}

/** The worker and run attempt of an owner label; undefined for any other owner (`kiln run`'s `<host>/<pid>`, none). */
export function parseWorkerOwner(owner: string | undefined): ParsedOwner | undefined {
  const m = owner === undefined ? null : /^worker:([A-Za-z0-9_.-]{1,100})(?::(\d{1,9}))?$/.exec(owner);
  if (!m) return undefined;
  return m[2] === undefined ? { workerId: m[1] } : { workerId: m[1], runAttempt: Number(m[2]) };
}
