import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { CachedTokens } from '../../src/http/token-cache';
import { RedisStore } from '../../src/runs/redis-store';
import type { TokenStore } from '../../src/runs/store';
import { localRedisOptions } from '../helpers/redis';

const redis = new Redis({ ...localRedisOptions(), lazyConnect: true, maxRetriesPerRequest: 1 });
const prefix = `kiln-test-token-cache-${process.pid}-${randomBytes(3).toString('hex')}`;
let store: RedisStore;

beforeAll(async () => {
  await redis.connect();
  store = new RedisStore({ redis, prefix, secretKey: randomBytes(32) });
});

afterAll(async () => {
  await store.close();
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
});

/** The real token store, counting the lookups that reach it. */
function counting(tokens: TokenStore): TokenStore & { lookups: number } {
  const counted = Object.create(tokens) as TokenStore & { lookups: number };
  counted.lookups = 0;
  counted.verify = async (token) => {
    counted.lookups++;
    return tokens.verify(token);
  };
  counted.revoke = (id) => tokens.revoke(id);
  return counted;
}

describe('CachedTokens', () => {
  it('looks a valid token up once per window, never caches a bad one, and forgets a revoked one at once', async () => {
    let now = 1_000_000;
    const inner = counting(store.tokens);
    const cached = new CachedTokens(inner, 2000, 100, () => now);
    const { token, info } = await store.tokens.create('ci', 'runner');

    expect(await cached.verify(token)).toEqual(info);
    expect(await cached.verify(token)).toEqual(info);
    expect(inner.lookups).toBe(1);
    now += 2001;
    expect(await cached.verify(token)).toEqual(info);
    expect(inner.lookups).toBe(2);

    expect(await cached.verify('wrong')).toBeUndefined();
    expect(await cached.verify('wrong')).toBeUndefined();
    expect(inner.lookups).toBe(4);

    expect(await cached.revoke(info.id)).toBe(true);
    expect(await cached.verify(token)).toBeUndefined();
  });

  it('a token revoked by another process stops working within the window', async () => {
    let now = 5_000_000;
    const cached = new CachedTokens(store.tokens, 2000, 100, () => now);
    const { token, info } = await store.tokens.create('elsewhere', 'reader');
    expect(await cached.verify(token)).toEqual(info);
    await store.tokens.revoke(info.id); // not through the cache
    expect(await cached.verify(token)).toEqual(info);
    now += 2001;
    expect(await cached.verify(token)).toBeUndefined();
  });
});
