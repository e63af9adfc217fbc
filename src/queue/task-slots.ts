import type { Redis } from 'ioredis';
import type { MetaKeys } from './keys';

/**
 * Per-task concurrency (SavedTask.concurrency): a zset per task of the run ids holding a slot,
 * each scored by when its lease ends. Taking a slot drops expired leases first, so a worker that
 * died holding one frees it within a lease; a live worker renews its leases with its heartbeat.
 * The scripts read the time from Redis, so hosts with skewed clocks agree on what has expired.
 */

const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

/** KEYS[1] slots; ARGV run id, limit, lease ms. 1 when the run holds a slot (again), 0 when all are taken. */
const ACQUIRE = `${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
`;

/** KEYS[1] slots; ARGV run id, lease ms. 0 when the run no longer holds a slot. */
const RENEW = `${NOW}
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`;

export class TaskSlots {
  constructor(
    private readonly redis: Redis,
    private readonly keys: MetaKeys,
    private readonly leaseMs: number,
  ) {}

  async acquire(taskName: string, runId: string, limit: number): Promise<boolean> {
    return (await this.redis.eval(ACQUIRE, 1, this.keys.taskSlots(taskName), runId, limit, this.leaseMs)) === 1;
  }

  async renew(taskName: string, runId: string): Promise<boolean> {
    return (await this.redis.eval(RENEW, 1, this.keys.taskSlots(taskName), runId, this.leaseMs)) === 1;
  }

  async release(taskName: string, runId: string): Promise<void> {
    await this.redis.zrem(this.keys.taskSlots(taskName), runId);
  }
}
