import { KilnError } from '../errors';

/**
 * Names the queue layer puts in Redis. BullMQ keeps its own keys under `<prefix>:<queue>:...`;
 * ours live under `<prefix>:meta:...`, a name no queue can have (every queue name starts with
 * `runs.`).
 *
 * Glossary:
 * - target: the platform and pool a run asks for; one BullMQ queue per target.
 * - heartbeat: a key per worker with a short TTL, renewed while the worker lives.
 * - known worker: a worker id this installation has seen (kept a day after its last heartbeat),
 *   so that a sweep tells a dead worker of ours from a process of another installation sharing
 *   the Docker Engine, whose objects it must leave alone.
 */

export const DEFAULT_PREFIX = 'kiln';

export interface RunTarget {
  platform: string;
  pool: string;
}

const SEGMENT = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * `runs.<platform>.<pool>`, with the `/` of a platform (`linux/amd64`) written `-`. BullMQ refuses
 * `:` in queue names and the `.` separates the parts, so anything but letters, digits, `_` and `-`
 * is refused: the API validates targets before a run is created, this is the last guard.
 */
export function queueName(target: RunTarget): string {
  const platform = target.platform.replace(/\//g, '-');
  for (const [what, value] of [['platform', platform], ['pool', target.pool]] as const) {
    if (!SEGMENT.test(value)) throw new KilnError('invalid_input', `${what} "${value}" may hold only letters, digits, "_", "-" (and "/" in a platform)`);
  }
  return `runs.${platform}.${target.pool}`;
}

/**
 * BullMQ job ids: a custom id must not contain `:` and must not be all digits (it would be taken
 * for one of BullMQ's own counters).
 */
export function checkJobId(runId: string): void {
  if (runId.length === 0 || runId.includes(':') || /^\d+$/.test(runId)) {
    throw new KilnError('invalid_input', `run id "${runId}" cannot be a job id (empty, all digits, or with ":")`);
  }
}

export class MetaKeys {
  constructor(readonly prefix: string) {}

  /** Set of every queue name ever used, so that depth() and has() can visit all of them. */
  get queues(): string {
    return `${this.prefix}:meta:queues`;
  }

  /** Zset of known worker ids, scored by their last heartbeat (ms). */
  get workers(): string {
    return `${this.prefix}:meta:workers`;
  }

  heartbeat(workerId: string): string {
    return `${this.prefix}:meta:worker:${workerId}`;
  }

  /** Zset of the run ids holding a slot of a saved task, scored by when their lease ends (ms). */
  taskSlots(taskName: string): string {
    return `${this.prefix}:meta:slots:${taskName}`;
  }
}
