import type { Express, Response } from 'express';
import type { Logger } from 'pino';
import type { RunChange, RunStore } from '../runs/store';
import type { RouteContext } from './context';
import { DEFAULT_HEARTBEAT_MS } from './logs-routes';
import { HttpError } from './problem';
import { onlyQueryParams, queryParam } from './request';

/**
 * `GET /v1/runs/events`: run changes as Server-Sent Events, for pages that show runs live.
 *
 * One store subscription per app (RunEventHub), held while at least one client follows and
 * released with the last; the store's one subscriber connection carries it. Each client gets
 * what its socket takes, and a client that does not keep up never holds up the others: while its
 * socket is full, the changes meant for it are coalesced, the latest per run; past
 * MAX_PENDING_RUNS runs they are dropped and, once its socket drains, it gets `ready` again.
 *
 * Delivery is at most once (nothing is replayed after a reconnect, of this client or of the
 * subscription): `ready` is when a client (re-)reads the lists it shows, on connect and after
 * changes were dropped for it.
 */

/** Runs whose latest change a client whose socket is full may be owed; past it, it is told to re-read. */
export const MAX_PENDING_RUNS = 1000;

const READY = 'event: ready\ndata: {}\n\n';

/** One store subscription shared by every client of an app, opened for the first and closed after the last. */
export class RunEventHub {
  private readonly clients = new Set<(change: RunChange) => void>();
  private subscription: Promise<() => Promise<void>> | undefined;

  constructor(
    private readonly runs: Pick<RunStore, 'onRunChange'>,
    private readonly logger: Logger,
  ) {}

  /** Clients following now. */
  get size(): number {
    return this.clients.size;
  }

  /**
   * Adds a client; resolves once the subscription is live, with the function that removes the
   * client. Rejects (and the client is not added) when the store cannot subscribe.
   */
  async join(client: (change: RunChange) => void): Promise<() => void> {
    this.clients.add(client);
    const subscription = (this.subscription ??= this.runs.onRunChange((change) => this.fanOut(change)));
    try {
      await subscription;
    } catch (err) {
      // The next client tries again.
      if (this.subscription === subscription) this.subscription = undefined;
      this.leave(client);
      throw err;
    }
    return () => this.leave(client);
  }

  private leave(client: (change: RunChange) => void): void {
    if (!this.clients.delete(client) || this.clients.size > 0) return;
    const subscription = this.subscription;
    this.subscription = undefined;
    subscription
      ?.then((stop) => stop())
      .catch((err: unknown) => this.logger.warn({ err }, 'could not stop following run changes'));
  }

  private fanOut(change: RunChange): void {
    for (const client of this.clients) client(change);
  }
}

/**
 * Writes events to one client at the pace its socket drains: while a write waits for `drain`,
 * changes are held, the latest per run (an older change never goes out after a newer one), for
 * at most MAX_PENDING_RUNS runs. Past that, what is held is dropped and the client is owed a
 * `ready` instead; holding memory without bound for a client that does not read is not an option.
 */
class EventWriter {
  /** Held until `start`, then whenever a write waits for `drain`. */
  private waiting = true;
  private readonly pending = new Map<string, RunChange>();
  /** Changes were dropped: `ready` goes out before what is held. */
  private resync = false;
  /** Changes dropped so far, for the log. */
  dropped = 0;

  constructor(private readonly res: Response) {}

  /** Sends the headers and `ready`, then what came meanwhile. */
  start(): void {
    this.res.status(200).set({
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store, no-transform',
      Connection: 'keep-alive',
      // Proxies that buffer responses (nginx) would hold the events back.
      'X-Accel-Buffering': 'no',
    });
    this.res.flushHeaders();
    this.waiting = false;
    // This `ready` is the one owed, if any.
    this.resync = false;
    this.write(READY);
    if (!this.waiting) this.flush();
  }

  change(change: RunChange): void {
    if (!this.waiting) {
      this.write(runEvent(change));
      return;
    }
    // Delete first so the run moves to the end: changes go out in the order of their latest.
    this.pending.delete(change.runId);
    if (this.pending.size >= MAX_PENDING_RUNS) {
      this.dropped += this.pending.size;
      this.pending.clear();
      this.resync = true;
    }
    this.pending.set(change.runId, change);
  }

  /** A comment that keeps proxies from closing an idle stream; skipped while the socket is full. */
  heartbeat(): void {
    if (!this.waiting) this.write(': hb\n\n');
  }

  private write(text: string): void {
    if (this.res.writableEnded || this.res.destroyed) return;
    if (this.res.write(text)) return;
    this.waiting = true;
    this.res.once('drain', () => this.flush());
  }

  private flush(): void {
    this.waiting = false;
    if (this.resync) {
      this.resync = false;
      this.write(READY);
      if (this.waiting) return;
    }
    for (const [runId, change] of this.pending) {
      this.pending.delete(runId);
      this.write(runEvent(change));
      if (this.waiting) return;
    }
  }
}

function runEvent(change: RunChange): string {
  return `event: run\ndata: ${JSON.stringify({ runId: change.runId, status: change.status, task: change.task })}\n\n`;
}

export function registerRunEventRoutes(app: Express, ctx: RouteContext, hub: RunEventHub): void {
  const { deps, requireRole } = ctx;

  // Before `/v1/runs/:id`, which would take `events` for a run id.
  app.get('/v1/runs/events', requireRole('reader'), async (req, res) => {
    onlyQueryParams(req, ['run']);
    const only = queryParam(req, 'run');
    if (only !== undefined && !(await deps.runs.get(only))) throw new HttpError(404, `no run ${only}`);

    const writer = new EventWriter(res);
    const gone = new AbortController();
    res.once('close', () => gone.abort());
    // Subscribed before the headers go out: a store that cannot subscribe is still a 503. What
    // comes meanwhile waits in the writer until `ready` is out.
    const leave = await hub.join((change) => {
      if (only === undefined || change.runId === only) writer.change(change);
    });
    if (gone.signal.aborted) {
      leave();
      return;
    }
    writer.start();
    const heartbeat = setInterval(() => writer.heartbeat(), deps.heartbeatMs ?? DEFAULT_HEARTBEAT_MS);
    gone.signal.addEventListener(
      'abort',
      () => {
        clearInterval(heartbeat);
        leave();
        if (writer.dropped > 0) ctx.logger.info({ dropped: writer.dropped }, 'run events dropped for a slow client (it was sent ready again)');
      },
      { once: true },
    );
  });
}
