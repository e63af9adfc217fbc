import type { Redis } from 'ioredis';

/**
 * What the git poller saw last, per task: branch -> commit, in one Redis hash per task
 * (`P:poll:git:<task>`), replaced whole after each poll. Shared by every API process, so a poll
 * in one compares with the last poll in any.
 */
export class RedisPollMemory {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'kiln',
  ) {}

  private key(task: string): string {
    return `${this.prefix}:poll:git:${task}`;
  }

  async get(task: string): Promise<Record<string, string>> {
    return this.redis.hgetall(this.key(task));
  }

  async set(task: string, branches: Record<string, string>): Promise<void> {
    const multi = this.redis.multi().del(this.key(task));
    // An empty hash cannot be stored: a marker keeps "polled, no branch" apart from "never polled".
    multi.hset(this.key(task), Object.keys(branches).length > 0 ? branches : { '': '' });
    await multi.exec();
  }
}
