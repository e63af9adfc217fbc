import type { Redis } from 'ioredis';
import type { DependencyImage, ImageDependencies } from '../domain/run-result';
import { KilnError } from '../errors';
import {
  TRIGGER_ACTIONS,
  TRIGGER_EVENT_SOURCES,
  type BaseImageDependency,
  type DecisionLog,
  type DependencyIndex,
  type OnceKeys,
  type TriggerAction,
  type TriggerEvent,
  type TriggerEventFilter,
  type TriggerEventSource,
} from './store';

/**
 * The triggers' store on Redis, next to the run store (same connection, same prefix).
 *
 * Keys, under the prefix P:
 * - `P:deps:task:<task>` hash: base image -> JSON `{kind, digest, runId, recordedAt}`, what the
 *   task's last recorded run built from.
 * - `P:deps:image:<image>` hash: task -> the same JSON, the mirror of the task hashes, so that the
 *   dependents of one image are one HGETALL.
 * - `P:deps:images` zset (every score 0, so in byte order): the images with at least one dependent.
 * - `P:deps:outputs:<task>` set: the images the task's last recorded run pushed.
 * - `P:once:<key>` string with a TTL: an event that has been claimed.
 * - `P:trigger-events` stream: the decision log, trimmed to about its cap (`MAXLEN ~`).
 *
 * Invariants, kept by the two scripts below (the only writers of the `deps` keys): a task is in
 * `P:deps:image:<i>` exactly when `<i>` is in `P:deps:task:<task>`, with the same value; an image
 * is in `P:deps:images` exactly when its hash has a field (Redis deletes an emptied hash).
 */

export interface RedisTriggerStoreOptions {
  redis: Redis;
  /** Key prefix (default `kiln`); tests use their own. */
  prefix?: string;
  /** Decision log entries kept, approximately (default 10,000): never fewer, at most one stream node (100 entries by default) more. */
  logCap?: number;
  now?: () => Date;
}

const DEFAULT_LOG_CAP = 10_000;
const PAGE_DEFAULT = 50;
const PAGE_MAX = 500;

/**
 * Unlinks a task from the images it no longer depends on. KEYS[1] the task hash, KEYS[2] the
 * images zset; ARGV[1] prefix, ARGV[2] task; `keep` the images to leave linked (a set).
 */
const LUA_UNLINK = `
local function unlink(taskKey, allKey, prefix, task, keep)
  for _, image in ipairs(redis.call('HKEYS', taskKey)) do
    if not keep[image] then
      local imageKey = prefix .. ':deps:image:' .. image
      redis.call('HDEL', imageKey, task)
      if redis.call('EXISTS', imageKey) == 0 then redis.call('ZREM', allKey, image) end
    end
  end
end
`;

/**
 * record: KEYS task hash, images zset, outputs set; ARGV prefix, task, n, then n pairs image/value,
 * then the outputs. Replaces all the task's entries in one step.
 */
const RECORD = `${LUA_UNLINK}
local taskKey, allKey, outKey = KEYS[1], KEYS[2], KEYS[3]
local prefix, task, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local keep = {}
for i = 0, n - 1 do keep[ARGV[4 + 2 * i]] = true end
unlink(taskKey, allKey, prefix, task, keep)
redis.call('DEL', taskKey, outKey)
for i = 0, n - 1 do
  local image, value = ARGV[4 + 2 * i], ARGV[5 + 2 * i]
  redis.call('HSET', taskKey, image, value)
  redis.call('HSET', prefix .. ':deps:image:' .. image, task, value)
  redis.call('ZADD', allKey, 0, image)
end
for i = 4 + 2 * n, #ARGV do redis.call('SADD', outKey, ARGV[i]) end
return n
`;

/** forget: KEYS task hash, images zset, outputs set; ARGV prefix, task. */
const FORGET = `${LUA_UNLINK}
unlink(KEYS[1], KEYS[2], ARGV[1], ARGV[2], {})
redis.call('DEL', KEYS[1], KEYS[3])
return 1
`;

export class RedisTriggerStore {
  readonly dependencies: DependencyIndex;
  readonly once: OnceKeys;
  readonly decisions: DecisionLog;

  constructor(options: RedisTriggerStoreOptions) {
    const p = options.prefix ?? 'kiln';
    const now = options.now ?? (() => new Date());
    const cap = options.logCap ?? DEFAULT_LOG_CAP;
    if (!Number.isInteger(cap) || cap < 1) throw new KilnError('invalid_input', `logCap must be a positive integer, not ${cap}`);
    this.dependencies = new RedisDependencyIndex(options.redis, p);
    this.once = new RedisOnceKeys(options.redis, p);
    this.decisions = new RedisDecisionLog(options.redis, p, cap, now);
  }
}

// Dependency index

/** What both hashes hold for one (task, image) pair. */
interface StoredDependency {
  kind: BaseImageDependency['kind'];
  digest: string;
  runId: string;
  recordedAt: string;
}

class RedisDependencyIndex implements DependencyIndex {
  private readonly all: string;

  constructor(
    private readonly redis: Redis,
    private readonly p: string,
  ) {
    this.all = `${p}:deps:images`;
  }

  private taskKey(task: string): string {
    return `${this.p}:deps:task:${task}`;
  }

  private outputsKey(task: string): string {
    return `${this.p}:deps:outputs:${task}`;
  }

  async record(task: string, runId: string, dependencies: readonly ImageDependencies[], at: Date): Promise<void> {
    if (task === '') throw new KilnError('invalid_input', 'a dependency record needs a task name');
    const bases = mergeBases(dependencies, runId, at.toISOString());
    const outputs = [...new Set(dependencies.map((d) => d.image.reference).filter((r) => r !== ''))];
    const args: string[] = [this.p, task, String(bases.size)];
    for (const [image, value] of bases) args.push(image, JSON.stringify(value));
    args.push(...outputs);
    await this.redis.eval(RECORD, 3, this.taskKey(task), this.all, this.outputsKey(task), ...args);
  }

  async dependents(image: string): Promise<BaseImageDependency[]> {
    const rows = await this.redis.hgetall(`${this.p}:deps:image:${image}`);
    return Object.entries(rows)
      .map(([task, value]) => toDependency(task, image, value))
      .sort((a, b) => compare(a.task, b.task));
  }

  async dependenciesOf(task: string): Promise<BaseImageDependency[]> {
    const rows = await this.redis.hgetall(this.taskKey(task));
    return Object.entries(rows)
      .map(([image, value]) => toDependency(task, image, value))
      .sort((a, b) => compare(a.image, b.image));
  }

  async outputsOf(task: string): Promise<string[]> {
    return (await this.redis.smembers(this.outputsKey(task))).sort(compare);
  }

  async images(): Promise<string[]> {
    // Every score is 0: ZRANGE gives byte order, the same as `compare` for these ASCII references.
    return this.redis.zrange(this.all, 0, -1);
  }

  async forget(task: string): Promise<void> {
    await this.redis.eval(FORGET, 3, this.taskKey(task), this.all, this.outputsKey(task), this.p, task);
  }
}

/**
 * The base images of one run, by reference: a base that is the runtime one of any entry is
 * `runtime`, and its digest is the runtime entry's (or any entry's, when that one is empty).
 * References that are empty (the run could not tell) are left out.
 */
function mergeBases(dependencies: readonly ImageDependencies[], runId: string, recordedAt: string): Map<string, StoredDependency> {
  const bases = new Map<string, StoredDependency>();
  const add = (image: DependencyImage | undefined, kind: StoredDependency['kind']): void => {
    if (!image || image.reference === '') return;
    const digest = image.digest ?? '';
    const seen = bases.get(image.reference);
    if (!seen) bases.set(image.reference, { kind, digest, runId, recordedAt });
    else if (kind === 'runtime' && seen.kind === 'buildtime') bases.set(image.reference, { ...seen, kind, digest: digest || seen.digest });
    else if (seen.digest === '') seen.digest = digest;
  };
  for (const entry of dependencies) {
    add(entry['runtime-dependency'], 'runtime');
    for (const base of entry['buildtime-dependency'] ?? []) add(base, 'buildtime');
  }
  return bases;
}

function toDependency(task: string, image: string, value: string): BaseImageDependency {
  const stored = parseJson<Partial<StoredDependency>>(value, {});
  return {
    task,
    image,
    kind: stored.kind === 'runtime' ? 'runtime' : 'buildtime',
    digest: stored.digest ?? '',
    runId: stored.runId ?? '',
    recordedAt: stored.recordedAt ?? '',
  };
}

/** Code-point order: the same on every machine, unlike localeCompare. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function parseJson<T>(text: string | undefined, fallback: T): T {
  if (text === undefined) return fallback;
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}

// Once keys

class RedisOnceKeys implements OnceKeys {
  constructor(
    private readonly redis: Redis,
    private readonly p: string,
  ) {}

  async claim(key: string, ttlSeconds: number): Promise<boolean> {
    if (!Number.isFinite(ttlSeconds) || ttlSeconds <= 0) throw new KilnError('invalid_input', `a once key needs a positive TTL, not ${ttlSeconds}`);
    const reply = await this.redis.set(`${this.p}:once:${key}`, '1', 'EX', Math.ceil(ttlSeconds), 'NX');
    return reply === 'OK';
  }

  async release(key: string): Promise<void> {
    await this.redis.del(`${this.p}:once:${key}`);
  }
}

// Decision log

/** Stream entry ids: milliseconds-sequence. */
const EVENT_ID = /^\d{1,20}-\d{1,20}$/;

class RedisDecisionLog implements DecisionLog {
  private readonly key: string;

  constructor(
    private readonly redis: Redis,
    p: string,
    private readonly cap: number,
    private readonly now: () => Date,
  ) {
    this.key = `${p}:trigger-events`;
  }

  async append(event: Omit<TriggerEvent, 'id' | 'at'>): Promise<TriggerEvent> {
    if (!(TRIGGER_EVENT_SOURCES as readonly string[]).includes(event.source)) throw new KilnError('invalid_input', `unknown trigger event source "${event.source}"`);
    if (!(TRIGGER_ACTIONS as readonly string[]).includes(event.action)) throw new KilnError('invalid_input', `unknown trigger action "${event.action}"`);
    const at = this.now().toISOString();
    // Only the fields of TriggerEvent are stored, whatever else the object carries.
    const fields = ['at', at, 'source', event.source, 'action', event.action, 'reason', event.reason, 'details', JSON.stringify(event.details ?? {})];
    if (event.task !== undefined) fields.push('task', event.task);
    if (event.runId !== undefined) fields.push('runId', event.runId);
    const id = await this.redis.xadd(this.key, 'MAXLEN', '~', this.cap, '*', ...fields);
    if (id === null) throw new Error('XADD returned no id');
    const stored: TriggerEvent = { id, at, source: event.source, action: event.action, reason: event.reason, details: { ...event.details } };
    if (event.task !== undefined) stored.task = event.task;
    if (event.runId !== undefined) stored.runId = event.runId;
    return stored;
  }

  /**
   * Newest first, `limit` events that pass the filter. One call reads at most 10 x limit + 1,000
   * entries: when a rare filter reaches that bound, the page may hold fewer events than `limit`
   * (even none) and `next` says where to go on. No `next`: the log has nothing older.
   */
  async list(filter: TriggerEventFilter): Promise<{ items: TriggerEvent[]; next?: string }> {
    const limit = Math.min(Math.max(1, Math.floor(filter.limit ?? PAGE_DEFAULT)), PAGE_MAX);
    if (filter.cursor !== undefined && filter.cursor !== '' && !EVENT_ID.test(filter.cursor)) {
      throw new KilnError('invalid_input', `"${filter.cursor}" is not a trigger event cursor`);
    }
    const filtered = filter.task !== undefined || filter.source !== undefined || filter.action !== undefined;
    const budget = 10 * limit + 1000;
    // Unfiltered, one entry past the page tells whether there is a next one; filtered, larger
    // reads save round trips.
    const batch = filtered ? Math.min(1000, Math.max(100, 4 * limit)) : limit + 1;
    let end = filter.cursor ? `(${filter.cursor}` : '+';
    let scanned = 0;
    const items: TriggerEvent[] = [];
    while (scanned < budget) {
      const count = Math.min(batch, budget - scanned);
      const rows = await this.redis.xrevrange(this.key, end, '-', 'COUNT', count);
      for (let i = 0; i < rows.length; i++) {
        const [id, values] = rows[i] as [string, string[]];
        scanned++;
        end = `(${id}`;
        const event = toEvent(id, values);
        if (filter.task !== undefined && event.task !== filter.task) continue;
        if (filter.source !== undefined && event.source !== filter.source) continue;
        if (filter.action !== undefined && event.action !== filter.action) continue;
        items.push(event);
        if (items.length === limit) {
          const more = i + 1 < rows.length || (rows.length === count && (await this.redis.xrevrange(this.key, `(${id}`, '-', 'COUNT', 1)).length > 0);
          return more ? { items, next: id } : { items };
        }
      }
      if (rows.length < count) return { items };
    }
    // The bound was reached with the log not exhausted: the caller goes on from the last entry read.
    return { items, next: end.slice(1) };
  }
}

function toEvent(id: string, values: string[]): TriggerEvent {
  const f: Record<string, string> = {};
  for (let i = 0; i < values.length; i += 2) f[values[i] as string] = values[i + 1] as string;
  const event: TriggerEvent = {
    id,
    at: f.at ?? '',
    source: (f.source ?? 'webhook') as TriggerEventSource,
    action: (f.action ?? 'ignored') as TriggerAction,
    reason: f.reason ?? '',
    details: parseJson<TriggerEvent['details']>(f.details, {}),
  };
  if (f.task !== undefined) event.task = f.task;
  if (f.runId !== undefined) event.runId = f.runId;
  return event;
}
