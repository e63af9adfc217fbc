import type { Redis } from 'ioredis';
import type { MetaKeys } from './keys';

/**
 * The registry of workers: a heartbeat key per live worker (with a TTL, so a killed worker drops
 * out by itself) and the zset of known worker ids (see keys.ts). Shared by the workers, which
 * beat, and the queue, which counts them.
 */

/** How long a known worker id is remembered after its last heartbeat. */
const KNOWN_FOR_MS = 24 * 3600 * 1000;

export interface WorkerInfo {
  workerId: string;
  host: string;
  pid: number;
  platform: string;
  pool: string;
  concurrency: number;
  startedAt: string;
  /** Runs it holds now. */
  running: string[];
}

export async function beat(redis: Redis, keys: MetaKeys, info: WorkerInfo, ttlMs: number): Promise<void> {
  const now = Date.now();
  const rows = await redis
    .multi()
    .set(keys.heartbeat(info.workerId), JSON.stringify(info), 'PX', ttlMs)
    .zadd(keys.workers, now, info.workerId)
    .zremrangebyscore(keys.workers, '-inf', now - KNOWN_FOR_MS)
    .exec();
  const failed = rows?.find(([err]) => err);
  if (!rows || failed) throw failed?.[0] ?? new Error('heartbeat transaction aborted');
}

/** Removes the heartbeat (a worker that closed is not live); the id stays known. */
export async function dropHeartbeat(redis: Redis, keys: MetaKeys, workerId: string): Promise<void> {
  await redis.del(keys.heartbeat(workerId));
}

/** Of `workerIds`, which are known to this installation and which of those have a live heartbeat. */
export async function workerStates(redis: Redis, keys: MetaKeys, workerIds: readonly string[]): Promise<Map<string, 'live' | 'dead'>> {
  const states = new Map<string, 'live' | 'dead'>();
  if (workerIds.length === 0) return states;
  const pipeline = redis.pipeline();
  for (const id of workerIds) pipeline.zscore(keys.workers, id).exists(keys.heartbeat(id));
  const rows = (await pipeline.exec()) ?? [];
  workerIds.forEach((id, i) => {
    const [scoreErr, score] = rows[2 * i] ?? [];
    const [liveErr, live] = rows[2 * i + 1] ?? [];
    if (scoreErr || liveErr) throw scoreErr ?? liveErr;
    if (score === null || score === undefined) return; // not ours
    states.set(id, live === 1 ? 'live' : 'dead');
  });
  return states;
}

/** Ids of the workers with a live heartbeat. */
export async function liveWorkers(redis: Redis, keys: MetaKeys): Promise<string[]> {
  const ids = await redis.zrangebyscore(keys.workers, Date.now() - KNOWN_FOR_MS, '+inf');
  const states = await workerStates(redis, keys, ids);
  return ids.filter((id) => states.get(id) === 'live');
}
