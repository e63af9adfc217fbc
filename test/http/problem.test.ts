import type { AddressInfo } from 'node:net';
import express from 'express';
import pino from 'pino';
import { KilnError } from '../../src/errors';
import { isStoreRefusal, problemHandler, toHttpError } from '../../src/http/problem';

/**
 * Redis's refusals and an absent Redis become 503 + Retry-After wherever they reach the error
 * handler (RELIABILITY.md R7, R12: "Redis write refusal surfaces as 503"), while any other error
 * stays a 500. The messages are Redis 7's own replies (and ioredis's), as ioredis surfaces them.
 */

/** An error as ioredis raises a Redis error reply. */
const reply = (message: string): Error => Object.assign(new Error(message), { name: 'ReplyError' });

const REFUSALS: [string, Error][] = [
  ['out of memory under noeviction', reply("OOM command not allowed when used memory > 'maxmemory'.")],
  ['AOF on a full disk (appendfsync everysec)', reply('MISCONF Errors writing to the AOF file: No space left on device')],
  ['RDB snapshots failing', reply("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.")],
  ['a refusal inside a Lua script (BullMQ), Redis 7', reply('MISCONF Errors writing to the AOF file: No space left on device script: 8d3e32b04b6d82ab5c7826c1fe224244ae331d5c, on @user_script:1.')],
  ['a refusal inside a Lua script, Redis 6 form', reply('ERR Error running script (call to f_8d3e32b0): @user_script:1: @user_script: 1: -MISCONF Errors writing to the AOF file: No space left on device')],
  ['a replica', reply("READONLY You can't write against a read only replica.")],
  ['a dataset still loading', reply('LOADING Redis is loading the dataset in memory')],
  ['a busy script', reply('BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.')],
  ['no connection (Redis exited)', new Error('Connection is closed.')],
  ['retries per request used up', Object.assign(new Error('Reached the max retries per request limit (which is 1). Refer to "maxRetriesPerRequest" option for details.'), { name: 'MaxRetriesPerRequestError' })],
  ['no connection and no offline queue', new Error("Stream isn't writeable and enableOfflineQueue options is false")],
  ['connection refused', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' })],
  ['a refusal as the cause of a typed error', new KilnError('internal', 'could not record the decision', { cause: reply('MISCONF Errors writing to the AOF file: No space left on device') })],
];

const NOT_REFUSALS: [string, Error][] = [
  ['a malformed command (a bug)', reply("ERR wrong number of arguments for 'hset' command")],
  ['a wrong type (a bug)', reply('WRONGTYPE Operation against a key holding the wrong kind of value')],
  ['a script error that names OOM only in passing', reply('ERR user_script:1: the value BOOM is not a number')],
  ['a plain bug', new TypeError("Cannot read properties of undefined (reading 'status')")],
];

describe('isStoreRefusal / toHttpError', () => {
  it.each(REFUSALS)('%s: 503 with Retry-After, the store-unavailable problem', (_name, err) => {
    expect(isStoreRefusal(err)).toBe(true);
    const problem = toHttpError(err);
    expect([problem.status, problem.type, problem.headers['Retry-After']]).toEqual([503, 'urn:kiln:problem:store-unavailable', expect.stringMatching(/^\d+$/)]);
    // The reply's text stays in the log (the cause), out of the answer.
    expect(problem.message).toBe('the run store is unavailable; try again later');
  });

  it.each(NOT_REFUSALS)('%s: 500', (_name, err) => {
    expect(isStoreRefusal(err)).toBe(false);
    expect(toHttpError(err).status).toBe(500);
  });
});

describe('problemHandler', () => {
  it('answers a MISCONF that reached it from a route as 503 application/problem+json with Retry-After', async () => {
    const app = express();
    app.post('/hook', () => {
      throw reply('MISCONF Errors writing to the AOF file: No space left on device');
    });
    app.use(problemHandler(pino({ level: 'silent' })));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, { method: 'POST' });
      expect(res.status).toBe(503);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
      const text = await res.text();
      expect(JSON.parse(text)).toMatchObject({ status: 503, title: 'Service Unavailable', type: 'urn:kiln:problem:store-unavailable' });
      expect(text).not.toContain('MISCONF');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
