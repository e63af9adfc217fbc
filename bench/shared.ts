import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Redis, RedisOptions } from 'ioredis';

/** What the benchmarks (and, re-exported, the tests) share. */

/**
 * The set-up's Redis (scripts/services.sh): 127.0.0.1:6379, with the password that the script
 * keeps in `$KILN_SERVICES_DIR/etc/redis.pass` (none when there is no such file).
 */
export function localRedisOptions(db = 0): RedisOptions {
  const password = localRedisPassword();
  return { host: '127.0.0.1', port: 6379, db, ...(password ? { password } : {}) };
}

/** The same as a `redis://` URL, for REDIS_URL. */
export function localRedisUrl(db = 0): string {
  const password = localRedisPassword();
  return `redis://${password ? `:${encodeURIComponent(password)}@` : ''}127.0.0.1:6379/${db}`;
}

let password: string | undefined | null = null;

function localRedisPassword(): string | undefined {
  if (password === null) {
    const file = join(process.env.KILN_SERVICES_DIR ?? '/var/lib/kiln-services', 'etc', 'redis.pass');
    try {
      password = readFileSync(file, 'utf8').trim() || undefined;
    } catch {
      password = undefined;
    }
  }
  return password;
}

/** A TCP port free on 127.0.0.1 now, for a server a benchmark starts. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Deletes every key under `prefix:` (SCAN, never KEYS): what a run left in a shared Redis. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}

/** One Server-Sent Event; a comment is an event named `comment`, its text the data. */
export interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

/**
 * The complete events at the start of what an SSE stream sent so far, and the rest (an event not
 * yet complete). Comments are events named `comment`, their text the data.
 */
export function takeSseEvents(text: string): { events: SseEvent[]; rest: string } {
  const blocks = text.split('\n\n');
  const rest = blocks.pop() ?? '';
  const events = blocks.map((block) => {
    const event: SseEvent = { event: 'message', data: '' };
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) {
        event.event = 'comment';
        data.push(line.slice(1).trim());
      } else if (line.startsWith('id: ')) event.id = line.slice(4);
      else if (line.startsWith('event: ')) event.event = line.slice(7);
      else if (line.startsWith('data: ')) data.push(line.slice(6));
    }
    event.data = data.join('\n');
    return event;
  });
  return { events, rest };
}
