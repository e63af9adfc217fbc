import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Express, Response } from 'express';
import type { LogEntry, RunDocument } from '../domain/run-record';
import { isFinalRunStatus } from '../domain/status';
import type { RouteContext } from './context';
import { HttpError } from './problem';
import { pathParam, queryParam } from './request';

/**
 * A run's log: everything so far (text `STEP | line`, or JSON), or followed as Server-Sent Events.
 * Followers read from the store (LogStore.wait), never from the worker, so a slow reader costs
 * only its own connection; it is written to at the pace its socket drains.
 */

export const DEFAULT_HEARTBEAT_MS = 15_000;
const READ_PAGE = 5000;
/** After the log's end, how long to wait for the run's final status to be written. */
const FINAL_STATUS_WAIT_MS = 5000;
const OFFSET = /^[0-9A-Za-z:._-]{1,64}$/;

export function registerLogRoutes(app: Express, ctx: RouteContext): void {
  const { deps, requireRole } = ctx;

  app.get('/v1/runs/:id/logs', requireRole('reader'), async (req, res) => {
    const id = pathParam(req, 'id');
    const follow = flag(queryParam(req, 'follow'), 'follow');
    const format = queryParam(req, 'format') ?? 'text';
    if (format !== 'text' && format !== 'json') throw new HttpError(400, 'format must be text or json');
    const after = offsetParam(follow ? (req.get('last-event-id') ?? queryParam(req, 'after')) : queryParam(req, 'after'));
    const run = await deps.runs.get(id);
    if (!run) throw new HttpError(404, `no run ${id}`);
    if (follow) {
      await followLog(res, ctx, run, after);
      return;
    }

    const entries: LogEntry[] = [];
    let next = after ?? '';
    let ended = false;
    for (;;) {
      const page = await deps.logs.read(id, next || undefined, READ_PAGE);
      entries.push(...page.entries);
      next = page.next;
      ended = page.ended;
      if (page.ended || page.entries.length < READ_PAGE) break;
    }
    if (next) res.set('X-Kiln-Log-Offset', next);
    res.set('X-Kiln-Log-Ended', String(ended));
    if (format === 'json') {
      res.json({ entries, next, ended });
      return;
    }
    res.type('text/plain; charset=utf-8').send(entries.map((e) => `${e.step} | ${e.line}\n`).join(''));
  });
}

function flag(value: string | undefined, name: string): boolean {
  if (value === undefined || value === '0' || value === 'false') return false;
  if (value === '1' || value === 'true' || value === '') return true;
  throw new HttpError(400, `${name} must be 1 or 0`);
}

function offsetParam(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (!OFFSET.test(value)) throw new HttpError(400, 'the log offset is not one this API gave');
  return value;
}

async function followLog(res: Response, ctx: RouteContext, run: RunDocument, after: string | undefined): Promise<void> {
  const { logs, runs } = ctx.deps;
  const heartbeatMs = ctx.deps.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  const gone = new AbortController();
  const signal = gone.signal;
  res.once('close', () => gone.abort());

  res.status(200).set({
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-store, no-transform',
    Connection: 'keep-alive',
    // Proxies that buffer responses (nginx) would hold the events back.
    'X-Accel-Buffering': 'no',
  });
  res.flushHeaders();

  const send = async (text: string): Promise<void> => {
    if (!res.write(text)) await once(res, 'drain', { signal });
  };
  const finalStatus = async (): Promise<string> => {
    const deadline = Date.now() + FINAL_STATUS_WAIT_MS;
    for (;;) {
      const current = await runs.get(run.runId);
      if (!current || isFinalRunStatus(current.status) || Date.now() >= deadline) return current?.status ?? run.status;
      await sleep(100, undefined, { signal });
    }
  };

  let cursor = after;
  try {
    for (;;) {
      const page = await logs.wait(run.runId, cursor, heartbeatMs, signal);
      if (signal.aborted) break;
      for (const e of page.entries) {
        await send(`id: ${e.offset}\nevent: line\ndata: ${JSON.stringify({ step: e.step, stream: e.stream, line: e.line })}\n\n`);
      }
      if (page.next) cursor = page.next;
      if (page.ended) {
        await send(`event: end\ndata: ${JSON.stringify({ status: await finalStatus() })}\n\n`);
        break;
      }
      if (page.entries.length === 0) {
        await send(': heartbeat\n\n');
        // A run that ended without its log being closed (canceled or expired in the queue, or its
        // worker lost) would otherwise be followed forever: a quiet, final run is over.
        const current = await runs.get(run.runId);
        if (!current || isFinalRunStatus(current.status)) {
          await send(`event: end\ndata: ${JSON.stringify({ status: current?.status ?? run.status })}\n\n`);
          break;
        }
      }
    }
  } catch (err) {
    if (signal.aborted) return;
    ctx.logger.warn({ err, runId: run.runId }, 'log follow failed');
    res.write(`event: error\ndata: ${JSON.stringify({ detail: 'the log could not be read; reconnect to resume' })}\n\n`);
  }
  if (!signal.aborted) res.end();
}
