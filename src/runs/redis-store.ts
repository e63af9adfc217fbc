import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { LogEntry, RunDocument, RunRequest, RunSecrets } from '../domain/run-record';
import type { RunTrigger } from '../domain/trigger';
import type { RunResult } from '../domain/run-result';
import { KilnError } from '../errors';
import { RUN_STATUSES, isFinalRunStatus, type RunStatus } from '../domain/status';
import { SecretBox } from './secret-box';
import type {
  CancelOutcome,
  Claim,
  ClaimRefusal,
  LogPage,
  LogStore,
  Role,
  RunFilter,
  RunChange,
  RunPage,
  RunProgress,
  RunStore,
  RunSubmission,
  SavedTask,
  TaskInput,
  TaskSealed,
  TaskStore,
  TokenInfo,
  TokenStore,
} from './store';

/**
 * The store on Redis (with AOF and noeviction: scripts/services.sh sets both).
 *
 * Keys, under the prefix P:
 * - `P:run:<id>` hash: scalar fields (status, attempt, token, worker, times, error, cancel) that
 *   the Lua scripts below compare and set atomically, JSON fields (request, steps, images...),
 *   and `secrets`, sealed with the server key.
 * - `P:runs` zset of every run by sequence number (newest first = highest score); `P:runs:status:<s>`,
 *   `P:runs:task:<name>`, `P:runs:trigger:<type>` the same per filter; `P:runs:unfinished` set.
 * - `P:log:<id>` stream of log lines (`s` step, `o` 1 for stderr, `l` line; an entry with `end`
 *   closes it), `P:log:<id>:bytes` its size so far.
 * - `P:task:<name>` hash and `P:tasks` set; `P:token:<sha256>` hash and `P:tokens` hash id -> sha256.
 * - Channel `P:cancel`: run ids whose cancel was requested.
 * - Channel `P:run-events`: `{"runId", "status", "task"}` (task '' for none) each time a run is
 *   created, changes status, or has its step table written with a change; published by the same
 *   script (or transaction) that writes the change, so a message never announces a state that
 *   was not stored. The run hash's scalar `task` field (the saved task's name, '') feeds it.
 *
 * Every status change goes through one script, so the rules hold under any interleaving: a
 * status only moves forward (Queued < Started < Running < final), a final status is never
 * overwritten, and writes of an attempt carry its token.
 */

export interface RedisStoreOptions {
  redis: Redis;
  /** Key prefix (default `kiln`); tests use their own. */
  prefix?: string;
  /** 32 bytes: seals secrets at rest. */
  secretKey: Buffer;
  /** Stored log per run, bytes (default 64 MiB); past it one marker line, then nothing. */
  logCapBytes?: number;
  /** How long a finished run's log is kept, seconds (default 30 days). */
  logRetentionSeconds?: number;
  now?: () => Date;
}

const DEFAULT_LOG_CAP = 64 * 1024 * 1024;
const DEFAULT_LOG_RETENTION = 30 * 24 * 3600;
const PAGE_DEFAULT = 50;
const PAGE_MAX = 500;

/** The channel of run changes (see the key list above). */
const RUN_EVENTS = 'run-events';

/**
 * Status ranks, index updates and the change notice shared by the scripts. KEYS[1] is the run
 * hash; ARGV[1] the prefix.
 */
const LUA_COMMON = `
local function rank(s)
  if s == 'Queued' then return 0 elseif s == 'Started' then return 1 elseif s == 'Running' then return 2 else return 3 end
end
local function move(run, prefix, id, from, to)
  if from == to then return end
  local seq = redis.call('HGET', run, 'seq')
  redis.call('ZREM', prefix .. ':runs:status:' .. from, id)
  redis.call('ZADD', prefix .. ':runs:status:' .. to, seq, id)
  if rank(to) == 3 then redis.call('SREM', prefix .. ':runs:unfinished', id) end
end
local function notify(run, prefix, id)
  local task = redis.call('HGET', run, 'task')
  if not task then
    -- A run stored before the field existed: its task name is in the request; read once, kept.
    local ok, req = pcall(cjson.decode, redis.call('HGET', run, 'request') or '{}')
    task = ''
    if ok and type(req) == 'table' and type(req.taskName) == 'string' then task = req.taskName end
    redis.call('HSET', run, 'task', task)
  end
  local status = redis.call('HGET', run, 'status')
  redis.call('PUBLISH', prefix .. ':${RUN_EVENTS}', cjson.encode({runId = id, status = status, task = task}))
end
`;

/** claim: ARGV prefix, id, token, worker, now. Returns {'missing'} | {'final', status} | {'ok', attempt}. */
const CLAIM = `${LUA_COMMON}
local run = KEYS[1]
local status = redis.call('HGET', run, 'status')
if not status then return {'missing'} end
if rank(status) == 3 then return {'final', status} end
local attempt = redis.call('HINCRBY', run, 'attempt', 1)
local to = status
if status == 'Queued' then to = 'Started' end
redis.call('HSET', run, 'token', ARGV[3], 'worker', ARGV[4], 'status', to, 'steps', '[]')
if redis.call('HGET', run, 'startedAt') == '' then redis.call('HSET', run, 'startedAt', ARGV[5]) end
move(run, ARGV[1], ARGV[2], status, to)
notify(run, ARGV[1], ARGV[2])
return {'ok', tostring(attempt)}
`;

/**
 * progress: ARGV prefix, id, token, status ('' = unchanged), steps ('' = unchanged). Returns 1 or 0.
 * Announces the run only when its status or its step table changed.
 */
const PROGRESS = `${LUA_COMMON}
local run = KEYS[1]
local status = redis.call('HGET', run, 'status')
if not status or rank(status) == 3 or redis.call('HGET', run, 'token') ~= ARGV[3] then return 0 end
local changed = false
if ARGV[4] ~= '' and rank(ARGV[4]) > rank(status) then
  redis.call('HSET', run, 'status', ARGV[4])
  move(run, ARGV[1], ARGV[2], status, ARGV[4])
  changed = true
end
if ARGV[5] ~= '' and redis.call('HGET', run, 'steps') ~= ARGV[5] then
  redis.call('HSET', run, 'steps', ARGV[5])
  changed = true
end
if changed then notify(run, ARGV[1], ARGV[2]) end
return 1
`;

/**
 * finish: ARGV prefix, id, token ('' = no token check), expected attempt ('' = any), final status,
 * then field/value pairs to set. Returns 1 or 0.
 */
const FINISH = `${LUA_COMMON}
local run = KEYS[1]
local status = redis.call('HGET', run, 'status')
if not status or rank(status) == 3 then return 0 end
if ARGV[3] ~= '' and redis.call('HGET', run, 'token') ~= ARGV[3] then return 0 end
if ARGV[4] ~= '' and redis.call('HGET', run, 'attempt') ~= ARGV[4] then return 0 end
for i = 6, #ARGV, 2 do redis.call('HSET', run, ARGV[i], ARGV[i + 1]) end
redis.call('HSET', run, 'status', ARGV[5])
move(run, ARGV[1], ARGV[2], status, ARGV[5])
notify(run, ARGV[1], ARGV[2])
return 1
`;

/** cancel: ARGV prefix, id, now. Returns 'missing' | 'final' | 'canceled' | 'requested'. */
const CANCEL = `${LUA_COMMON}
local run = KEYS[1]
local status = redis.call('HGET', run, 'status')
if not status then return 'missing' end
if rank(status) == 3 then return 'final' end
if status == 'Queued' then
  redis.call('HSET', run, 'status', 'Canceled', 'finishedAt', ARGV[3], 'error', 'canceled before it started')
  move(run, ARGV[1], ARGV[2], status, 'Canceled')
  notify(run, ARGV[1], ARGV[2])
  return 'canceled'
end
redis.call('HSET', run, 'cancel', '1')
redis.call('PUBLISH', ARGV[1] .. ':cancel', ARGV[2])
return 'requested'
`;

/**
 * log append: KEYS[1] stream, KEYS[2] byte counter; ARGV cap, then triples step, stderr flag, line.
 * Lines past the cap are dropped; the first one dropped leaves a marker.
 */
const APPEND = `
local bytes = tonumber(redis.call('GET', KEYS[2]) or '0')
local cap = tonumber(ARGV[1])
if bytes > cap then return 0 end
for i = 2, #ARGV, 3 do
  local size = #ARGV[i + 2] + 1
  if bytes + size > cap then
    redis.call('XADD', KEYS[1], '*', 's', 'kiln', 'o', '1', 'l', 'log truncated: the run wrote more than ' .. cap .. ' bytes; later lines are not stored')
    redis.call('SET', KEYS[2], cap + 1)
    return 0
  end
  bytes = bytes + size
  redis.call('XADD', KEYS[1], '*', 's', ARGV[i], 'o', ARGV[i + 1], 'l', ARGV[i + 2])
end
redis.call('SET', KEYS[2], bytes)
return 1
`;

/** A new saved task: KEYS[1] its hash, KEYS[2] the set of names; ARGV name, then field/value pairs. */
const CREATE_TASK = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 2, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('SADD', KEYS[2], ARGV[1])
return 1
`;

const RUN_FIELDS = [
  'status',
  'attempt',
  'worker',
  'createdAt',
  'startedAt',
  'finishedAt',
  'error',
  'request',
  'steps',
  'outputImages',
  'dependencies',
] as const;

type RunFields = Record<(typeof RUN_FIELDS)[number], string | null>;

export class RedisStore implements RunStore {
  readonly logs: LogStore;
  readonly tasks: TaskStore;
  readonly tokens: TokenStore;
  private readonly redis: Redis;
  private readonly p: string;
  private readonly box: SecretBox;
  private readonly now: () => Date;
  /** One connection for every channel this store listens to, opened at the first listener. */
  private subscriber: Redis | undefined;
  /** SUBSCRIBE of each channel listened to, done or in flight. */
  private readonly subscribed = new Map<string, Promise<unknown>>();
  private readonly cancelListeners = new Set<(runId: string) => void>();
  private readonly changeListeners = new Set<(change: RunChange) => void>();

  constructor(options: RedisStoreOptions) {
    this.redis = options.redis;
    this.p = options.prefix ?? 'kiln';
    this.box = new SecretBox(options.secretKey);
    this.now = options.now ?? (() => new Date());
    this.logs = new RedisLogStore(this.redis, this.p, options.logCapBytes ?? DEFAULT_LOG_CAP, options.logRetentionSeconds ?? DEFAULT_LOG_RETENTION);
    this.tasks = new RedisTaskStore(this.redis, this.p, this.box, this.now);
    this.tokens = new RedisTokenStore(this.redis, this.p, this.now);
  }

  /** Ends the connections this store opened itself (not the one it was given). */
  async close(): Promise<void> {
    const subscriber = this.subscriber;
    this.subscriber = undefined;
    this.subscribed.clear();
    this.cancelListeners.clear();
    this.changeListeners.clear();
    if (subscriber) await subscriber.quit().catch(() => subscriber.disconnect());
    await (this.logs as RedisLogStore).close();
  }

  private key(runId: string): string {
    return `${this.p}:run:${runId}`;
  }

  private tag: string | undefined;

  /**
   * Run ids are `k`, two letters chosen once per installation, and a sequence number: short and
   * sortable like ACR's, and two installations (or a test's prefix) on one Docker engine do not
   * share names of containers, networks and volumes, which come from the run id.
   */
  private async idTag(): Promise<string> {
    if (this.tag === undefined) {
      const letters = 'abcdefghijklmnopqrstuvwxyz';
      const pick = (): string => letters[randomBytes(1)[0] % letters.length] as string;
      await this.redis.set(`${this.p}:run:tag`, `k${pick()}${pick()}`, 'NX');
      this.tag = (await this.redis.get(`${this.p}:run:tag`)) ?? 'k';
    }
    return this.tag;
  }

  async create(request: RunRequest, secrets: RunSecrets): Promise<RunDocument> {
    const seq = await this.redis.incr(`${this.p}:run:seq`);
    const runId = `${await this.idTag()}${seq}`;
    const createdAt = this.now().toISOString();
    const fields: RunFields & { seq: string; secrets: string; token: string; cancel: string; task: string } = {
      status: 'Queued',
      attempt: '0',
      worker: '',
      createdAt,
      startedAt: '',
      finishedAt: '',
      error: '',
      request: JSON.stringify(request),
      steps: '[]',
      outputImages: '[]',
      dependencies: '[]',
      seq: String(seq),
      secrets: this.box.seal(JSON.stringify(secrets)),
      token: '',
      cancel: '0',
      task: request.taskName ?? '',
    };
    const multi = this.redis.multi().hset(this.key(runId), fields);
    multi.publish(`${this.p}:${RUN_EVENTS}`, JSON.stringify({ runId, status: fields.status, task: fields.task }));
    multi.zadd(`${this.p}:runs`, seq, runId).zadd(`${this.p}:runs:status:Queued`, seq, runId);
    multi.zadd(`${this.p}:runs:trigger:${request.trigger.type}`, seq, runId).sadd(`${this.p}:runs:unfinished`, runId);
    if (request.taskName !== undefined) multi.zadd(`${this.p}:runs:task:${request.taskName}`, seq, runId);
    await execOrThrow(multi);
    return toDocument(runId, fields);
  }

  async get(runId: string): Promise<RunDocument | undefined> {
    if (!isRunId(runId)) return undefined;
    const values = await this.redis.hmget(this.key(runId), ...RUN_FIELDS);
    return values[0] === null ? undefined : toDocument(runId, fieldsOf(values));
  }

  async list(filter: RunFilter): Promise<RunPage> {
    const limit = Math.min(Math.max(1, filter.limit ?? PAGE_DEFAULT), PAGE_MAX);
    // The narrowest index drives the scan; the other filters are checked per run.
    const index = filter.task !== undefined
      ? `${this.p}:runs:task:${filter.task}`
      : filter.status !== undefined
        ? `${this.p}:runs:status:${filter.status}`
        : filter.trigger !== undefined
          ? `${this.p}:runs:trigger:${filter.trigger}`
          : `${this.p}:runs`;
    let max = filter.cursor !== undefined && /^\d+$/.test(filter.cursor) ? `(${filter.cursor}` : '+inf';
    const items: RunDocument[] = [];
    const batch = Math.min(limit * 2, PAGE_MAX);
    for (;;) {
      const ids = await this.redis.zrevrangebyscore(index, max, '-inf', 'WITHSCORES', 'LIMIT', 0, batch);
      if (ids.length === 0) return { items };
      const pipeline = this.redis.pipeline();
      for (let i = 0; i < ids.length; i += 2) pipeline.hmget(this.key(ids[i] as string), ...RUN_FIELDS);
      const rows = (await pipeline.exec()) ?? [];
      for (let i = 0; i < ids.length; i += 2) {
        const [err, values] = rows[i / 2] ?? [];
        const id = ids[i] as string;
        const seq = ids[i + 1] as string;
        max = `(${seq}`;
        if (err || !Array.isArray(values) || values[0] === null) continue;
        const doc = toDocument(id, fieldsOf(values as (string | null)[]));
        if (filter.until !== undefined && doc.createdAt >= filter.until) continue;
        // Newest first: once past `since`, everything further is older still.
        if (filter.since !== undefined && doc.createdAt < filter.since) return { items };
        if (filter.status !== undefined && doc.status !== filter.status) continue;
        if (filter.trigger !== undefined && doc.trigger.type !== filter.trigger) continue;
        items.push(doc);
        if (items.length === limit) {
          const more = i + 2 < ids.length || (await this.redis.zrevrangebyscore(index, `(${seq}`, '-inf', 'LIMIT', 0, 1)).length > 0;
          return more ? { items, next: seq } : { items };
        }
      }
      if (ids.length < batch * 2) return { items };
    }
  }

  async claim(runId: string, worker: string): Promise<Claim | ClaimRefusal> {
    const token = randomBytes(16).toString('hex');
    const reply = (await this.redis.eval(CLAIM, 1, this.key(runId), this.p, runId, token, worker, this.now().toISOString())) as string[];
    if (reply[0] === 'missing') return { refused: 'missing' };
    if (reply[0] === 'final') return { refused: 'final', status: reply[1] as RunStatus };
    const [request, secrets] = await this.redis.hmget(this.key(runId), 'request', 'secrets');
    return {
      runId,
      attempt: Number(reply[1]),
      token,
      request: JSON.parse(request ?? '{}') as RunRequest,
      secrets: JSON.parse(this.box.open(secrets ?? '')) as RunSecrets,
    };
  }

  async progress(claim: Pick<Claim, 'runId' | 'token'>, progress: RunProgress): Promise<boolean> {
    const steps = progress.steps === undefined ? '' : JSON.stringify(progress.steps);
    const reply = await this.redis.eval(PROGRESS, 1, this.key(claim.runId), this.p, claim.runId, claim.token, progress.status ?? '', steps);
    return reply === 1;
  }

  async finish(claim: Pick<Claim, 'runId' | 'token'>, result: RunResult): Promise<boolean> {
    if (!isFinalRunStatus(result.status)) throw new Error(`finish needs a final status, not ${result.status}`);
    const fields = [
      'finishedAt', result.finishedAt,
      'steps', JSON.stringify(result.steps),
      'outputImages', JSON.stringify(result.outputImages),
      'dependencies', JSON.stringify(result.dependencies),
      'error', result.error ?? '',
    ];
    const reply = await this.redis.eval(FINISH, 1, this.key(claim.runId), this.p, claim.runId, claim.token, '', result.status, ...fields);
    return reply === 1;
  }

  async end(runId: string, status: RunStatus, error: string, expectAttempt?: number): Promise<boolean> {
    if (!isFinalRunStatus(status)) throw new Error(`end needs a final status, not ${status}`);
    const attempt = expectAttempt === undefined ? '' : String(expectAttempt);
    const reply = await this.redis.eval(FINISH, 1, this.key(runId), this.p, runId, '', attempt, status, 'finishedAt', this.now().toISOString(), 'error', error);
    return reply === 1;
  }

  async cancel(runId: string): Promise<CancelOutcome> {
    if (!isRunId(runId)) return { outcome: 'missing' };
    const outcome = (await this.redis.eval(CANCEL, 1, this.key(runId), this.p, runId, this.now().toISOString())) as string;
    if (outcome === 'missing') return { outcome };
    const run = await this.get(runId);
    if (!run) return { outcome: 'missing' };
    return { outcome: outcome as 'canceled' | 'requested' | 'final', run };
  }

  async submission(runId: string): Promise<RunSubmission | undefined> {
    if (!isRunId(runId)) return undefined;
    const [request, secrets] = await this.redis.hmget(this.key(runId), 'request', 'secrets');
    if (request === null) return undefined;
    let opened: RunSecrets | undefined;
    try {
      opened = JSON.parse(this.box.open(secrets ?? '')) as RunSecrets;
    } catch {
      opened = undefined;
    }
    return { request: JSON.parse(request) as RunRequest, ...(opened ? { secrets: opened } : {}) };
  }

  async cancelRequested(runId: string): Promise<boolean> {
    return (await this.redis.hget(this.key(runId), 'cancel')) === '1';
  }

  async onCancelRequest(listener: (runId: string) => void): Promise<() => Promise<void>> {
    this.cancelListeners.add(listener);
    try {
      await this.listen(`${this.p}:cancel`);
    } catch (err) {
      this.cancelListeners.delete(listener);
      throw err;
    }
    return async () => {
      this.cancelListeners.delete(listener);
    };
  }

  async onRunChange(listener: (change: RunChange) => void): Promise<() => Promise<void>> {
    const channel = `${this.p}:${RUN_EVENTS}`;
    this.changeListeners.add(listener);
    try {
      await this.listen(channel);
    } catch (err) {
      this.changeListeners.delete(listener);
      throw err;
    }
    return async () => {
      if (!this.changeListeners.delete(listener) || this.changeListeners.size > 0) return;
      // Nobody listens any more: Redis stops sending (the connection stays for the next listener).
      const subscriber = this.subscriber;
      if (this.subscribed.delete(channel) && subscriber) await subscriber.unsubscribe(channel).catch(() => undefined);
    };
  }

  /** Subscribes the shared subscriber connection to `channel` (once); resolves when Redis has confirmed. */
  private async listen(channel: string): Promise<void> {
    let subscriber = this.subscriber;
    if (!subscriber) {
      subscriber = this.redis.duplicate();
      this.subscriber = subscriber;
      subscriber.on('message', (from: string, message: string) => this.dispatch(from, message));
      subscriber.on('error', () => undefined); // ioredis reconnects and resubscribes by itself
    }
    let done = this.subscribed.get(channel);
    if (!done) {
      done = subscriber.subscribe(channel);
      this.subscribed.set(channel, done);
      // A failed SUBSCRIBE is tried again by the next listener.
      done.catch(() => {
        if (this.subscribed.get(channel) === done) this.subscribed.delete(channel);
      });
    }
    await done;
  }

  private dispatch(channel: string, message: string): void {
    if (channel === `${this.p}:cancel`) {
      for (const l of this.cancelListeners) l(message);
    } else if (channel === `${this.p}:${RUN_EVENTS}`) {
      const change = parseRunChange(message);
      if (change) for (const l of this.changeListeners) l(change);
    }
  }

  async unfinished(): Promise<string[]> {
    const ids = await this.redis.smembers(`${this.p}:runs:unfinished`);
    return ids.sort((a, b) => sequenceOf(a) - sequenceOf(b));
  }

  async countByStatus(): Promise<Partial<Record<RunStatus, number>>> {
    const pipeline = this.redis.pipeline();
    for (const status of RUN_STATUSES) pipeline.zcard(`${this.p}:runs:status:${status}`);
    const rows = (await pipeline.exec()) ?? [];
    const counts: Partial<Record<RunStatus, number>> = {};
    RUN_STATUSES.forEach((status, i) => {
      const [err, n] = rows[i] ?? [];
      if (!err && typeof n === 'number' && n > 0) counts[status] = n;
    });
    return counts;
  }
}

/** Run ids are `k`, two letters and a sequence number: anything else is not one (and never reaches a key name). */
function isRunId(runId: string): boolean {
  return /^k[a-z]{0,2}\d{1,15}$/.test(runId);
}

/** A message of the run-events channel, or undefined for anything else. */
function parseRunChange(message: string): RunChange | undefined {
  let value: unknown;
  try {
    value = JSON.parse(message);
  } catch {
    return undefined;
  }
  const m = value as Partial<Record<keyof RunChange, unknown>> | null;
  if (typeof m !== 'object' || m === null || typeof m.runId !== 'string' || typeof m.status !== 'string') return undefined;
  if (!(RUN_STATUSES as readonly string[]).includes(m.status)) return undefined;
  return { runId: m.runId, status: m.status as RunStatus, task: typeof m.task === 'string' && m.task !== '' ? m.task : null };
}

function sequenceOf(runId: string): number {
  return Number(/\d+$/.exec(runId)?.[0] ?? 0);
}

function fieldsOf(values: (string | null)[]): RunFields {
  return Object.fromEntries(RUN_FIELDS.map((f, i) => [f, values[i] ?? null])) as RunFields;
}

function toDocument(runId: string, f: RunFields): RunDocument {
  const request = JSON.parse(f.request ?? '{}') as RunRequest;
  const doc: RunDocument = {
    runId,
    status: (f.status ?? 'Queued') as RunStatus,
    createdAt: f.createdAt ?? '',
    startedAt: f.startedAt || null,
    finishedAt: f.finishedAt || null,
    steps: JSON.parse(f.steps || '[]') as RunDocument['steps'],
    outputImages: JSON.parse(f.outputImages || '[]') as RunDocument['outputImages'],
    dependencies: JSON.parse(f.dependencies || '[]') as RunDocument['dependencies'],
    task: request.taskName ?? null,
    trigger: request.trigger ?? ({ type: 'Manual' } satisfies RunTrigger),
    platform: request.platform,
    pool: request.pool,
    queueTtl: request.queueTtl,
    attempt: Number(f.attempt ?? 0),
    worker: f.worker || null,
  };
  if (f.error) doc.error = f.error;
  return doc;
}

async function execOrThrow(multi: ReturnType<Redis['multi']>): Promise<void> {
  const rows = await multi.exec();
  if (!rows) throw new Error('Redis transaction aborted');
  for (const [err] of rows) if (err) throw err;
}

// Logs

class RedisLogStore implements LogStore {
  /** Connections for blocking reads (XREAD BLOCK holds its connection); reused. */
  private readonly idle: Redis[] = [];
  private readonly all = new Set<Redis>();
  private closed = false;

  constructor(
    private readonly redis: Redis,
    private readonly p: string,
    private readonly cap: number,
    private readonly retention: number,
  ) {}

  private key(runId: string): string {
    return `${this.p}:log:${runId}`;
  }

  async append(runId: string, lines: readonly Omit<LogEntry, 'offset'>[]): Promise<void> {
    if (lines.length === 0) return;
    const args: string[] = [String(this.cap)];
    for (const l of lines) args.push(l.step, l.stream === 'stderr' ? '1' : '0', l.line);
    await this.redis.eval(APPEND, 2, this.key(runId), `${this.key(runId)}:bytes`, ...args);
  }

  async end(runId: string): Promise<void> {
    const key = this.key(runId);
    await execOrThrow(
      this.redis
        .multi()
        .xadd(key, '*', 'end', '1')
        .expire(key, this.retention)
        .expire(`${key}:bytes`, this.retention),
    );
  }

  async read(runId: string, after?: string, limit = 10_000): Promise<LogPage> {
    if (after !== undefined && after !== '' && !LOG_OFFSET.test(after)) throw new KilnError('invalid_input', `"${after}" is not a log offset`);
    const rows = await this.redis.xrange(this.key(runId), after === undefined || after === '' ? '-' : `(${after}`, '+', 'COUNT', limit);
    return toPage(rows, after ?? '');
  }

  async wait(runId: string, after: string | undefined, waitMs: number, signal?: AbortSignal): Promise<LogPage> {
    const page = await this.read(runId, after);
    if (page.entries.length > 0 || page.ended || signal?.aborted) return page;
    if (this.closed) return page;
    const connection = this.idle.pop() ?? this.open();
    // A blocked XREAD cannot be called off; dropping its connection can.
    const onAbort = (): void => connection.disconnect();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const reply = await connection.xread('COUNT', 10_000, 'BLOCK', Math.max(1, Math.min(waitMs, 30_000)), 'STREAMS', this.key(runId), after || '0-0');
      const rows = reply?.[0]?.[1] ?? [];
      return toPage(rows, page.next);
    } catch (err) {
      if (signal?.aborted) return page;
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (connection.status === 'ready' && !this.closed) this.idle.push(connection);
      else this.forget(connection);
    }
  }

  private open(): Redis {
    const connection = this.redis.duplicate();
    connection.on('error', () => undefined);
    this.all.add(connection);
    return connection;
  }

  private forget(connection: Redis): void {
    this.all.delete(connection);
    if (connection.status !== 'end') connection.disconnect();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.idle.length = 0;
    for (const c of this.all) c.disconnect();
    this.all.clear();
  }
}

/** Stream entry ids: milliseconds-sequence. */
const LOG_OFFSET = /^\d{1,20}-\d{1,20}$/;

function toPage(rows: [string, string[]][], after: string): LogPage {
  const entries: LogEntry[] = [];
  let next = after;
  let ended = false;
  for (const [offset, fields] of rows) {
    next = offset;
    const f: Record<string, string> = {};
    for (let i = 0; i < fields.length; i += 2) f[fields[i] as string] = fields[i + 1] as string;
    if (f.end !== undefined) {
      ended = true;
      break;
    }
    entries.push({ offset, step: f.s ?? '', stream: f.o === '1' ? 'stderr' : 'stdout', line: f.l ?? '' });
  }
  return { entries, next, ended };
}

// Saved tasks

class RedisTaskStore implements TaskStore {
  constructor(
    private readonly redis: Redis,
    private readonly p: string,
    private readonly box: SecretBox,
    private readonly now: () => Date,
  ) {}

  private key(name: string): string {
    return `${this.p}:task:${name}`;
  }

  async put(task: TaskInput, sealed: TaskSealed = {}): Promise<SavedTask> {
    return (await this.write(task, sealed, false)) as SavedTask;
  }

  async create(task: TaskInput, sealed: TaskSealed = {}): Promise<SavedTask | undefined> {
    return this.write(task, sealed, true);
  }

  /** Stores the task; with `onlyIfNew`, atomically, and nothing when it already exists. */
  private async write(task: TaskInput, sealed: TaskSealed, onlyIfNew: boolean): Promise<SavedTask | undefined> {
    const key = this.key(task.name);
    const [createdAt, sealedSecrets, sealedCredentials, sealedHook] = onlyIfNew
      ? [null, null, null, null]
      : await this.redis.hmget(key, 'createdAt', 'secrets', 'credentials', 'webhookSecret');
    const keptSecrets = sealed.secrets ?? this.openJson<RunSecrets['secrets']>(sealedSecrets, {});
    const keptCredentials = sealed.credentials ?? this.openJson<RunSecrets['credentials']>(sealedCredentials, []);
    const keptHook = sealed.webhookSecret ?? this.openJson<string | null>(sealedHook, null);
    const now = this.now().toISOString();
    const saved: SavedTask = {
      ...task,
      createdAt: createdAt ?? now,
      updatedAt: now,
      secretIds: Object.keys(keptSecrets).sort(),
      credentialRegistries: keptCredentials.map((c) => c.registry),
      webhookSecretSet: keptHook !== null,
    };
    const fields = {
      task: JSON.stringify(saved),
      createdAt: saved.createdAt,
      secrets: this.box.seal(JSON.stringify(keptSecrets)),
      credentials: this.box.seal(JSON.stringify(keptCredentials)),
      webhookSecret: this.box.seal(JSON.stringify(keptHook)),
    };
    if (onlyIfNew) {
      const created = await this.redis.eval(CREATE_TASK, 2, key, `${this.p}:tasks`, task.name, ...Object.entries(fields).flat());
      return created === 1 ? saved : undefined;
    }
    await execOrThrow(this.redis.multi().hset(key, fields).sadd(`${this.p}:tasks`, task.name));
    return saved;
  }

  async get(name: string): Promise<SavedTask | undefined> {
    const text = await this.redis.hget(this.key(name), 'task');
    return text === null ? undefined : (JSON.parse(text) as SavedTask);
  }

  async secretsOf(name: string): Promise<RunSecrets> {
    const [secrets, credentials] = await this.redis.hmget(this.key(name), 'secrets', 'credentials');
    return { secrets: this.openJson(secrets, {}), credentials: this.openJson(credentials, []) };
  }

  async webhookSecretOf(name: string): Promise<string | undefined> {
    return this.openJson<string | null>(await this.redis.hget(this.key(name), 'webhookSecret'), null) ?? undefined;
  }

  async list(): Promise<SavedTask[]> {
    const names = (await this.redis.smembers(`${this.p}:tasks`)).sort();
    if (names.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const name of names) pipeline.hget(this.key(name), 'task');
    const rows = (await pipeline.exec()) ?? [];
    return rows.flatMap(([err, text]) => (err || typeof text !== 'string' ? [] : [JSON.parse(text) as SavedTask]));
  }

  async delete(name: string): Promise<boolean> {
    const rows = await this.redis.multi().del(this.key(name)).srem(`${this.p}:tasks`, name).exec();
    return rows?.[0]?.[1] === 1;
  }

  private openJson<T>(sealed: string | null, empty: T): T {
    return sealed ? (JSON.parse(this.box.open(sealed)) as T) : empty;
  }
}

// Tokens

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

class RedisTokenStore implements TokenStore {
  constructor(
    private readonly redis: Redis,
    private readonly p: string,
    private readonly now: () => Date,
  ) {}

  async create(name: string, role: Role): Promise<{ token: string; info: TokenInfo }> {
    const token = `kiln_${randomBytes(32).toString('base64url')}`;
    return { token, info: await this.ensure(token, name, role) };
  }

  async ensure(token: string, name: string, role: Role): Promise<TokenInfo> {
    const hash = hashToken(token);
    const key = `${this.p}:token:${hash}`;
    const existing = await this.redis.hgetall(key);
    if (existing.id !== undefined && existing.role === role && existing.name === name) return toTokenInfo(existing);
    const info: TokenInfo = { id: existing.id ?? `t${randomBytes(6).toString('hex')}`, name, role, createdAt: this.now().toISOString() };
    await execOrThrow(this.redis.multi().hset(key, { ...info, hash }).hset(`${this.p}:tokens`, info.id, hash));
    return info;
  }

  async verify(token: string): Promise<TokenInfo | undefined> {
    if (token.length === 0 || token.length > 512) return undefined;
    const hash = hashToken(token);
    const record = await this.redis.hgetall(`${this.p}:token:${hash}`);
    if (record.hash === undefined || record.id === undefined) return undefined;
    // The lookup found it by hash already; the comparison in constant time keeps it that way
    // should the key scheme ever change.
    return timingSafeEqual(Buffer.from(record.hash, 'hex'), Buffer.from(hash, 'hex')) ? toTokenInfo(record) : undefined;
  }

  async list(): Promise<TokenInfo[]> {
    const hashes = Object.values(await this.redis.hgetall(`${this.p}:tokens`));
    if (hashes.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const hash of hashes) pipeline.hgetall(`${this.p}:token:${hash}`);
    const rows = (await pipeline.exec()) ?? [];
    return rows
      .flatMap(([err, record]) => (err || !record || (record as Record<string, string>).id === undefined ? [] : [toTokenInfo(record as Record<string, string>)]))
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async revoke(id: string): Promise<boolean> {
    const hash = await this.redis.hget(`${this.p}:tokens`, id);
    if (hash === null) return false;
    await execOrThrow(this.redis.multi().del(`${this.p}:token:${hash}`).hdel(`${this.p}:tokens`, id));
    return true;
  }
}

function toTokenInfo(record: Record<string, string>): TokenInfo {
  return { id: record.id ?? '', name: record.name ?? '', role: (record.role ?? 'reader') as Role, createdAt: record.createdAt ?? '' };
}
