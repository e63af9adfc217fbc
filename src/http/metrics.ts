import type { IncomingMessage, ServerResponse } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { RequestHandler } from 'express';
import { Gauge, Histogram, Registry } from 'prom-client';
import { RUN_STATUSES } from '../domain/status';
import type { RunResult } from '../domain/run-result';
import { errorMessage } from '../errors';
import type { RunQueue, RunStore } from '../runs/store';

/**
 * The service's Prometheus metrics, on a registry of their own (never prom-client's global one,
 * so that two apps in one process, or a test, do not share series). The run and step duration
 * histograms are filled by the process that runs the worker (`observeRun`, when a run ends): the
 * API of `kiln serve`, or a worker's `--metrics-port`.
 */

export interface KilnMetrics {
  registry: Registry;
  /** Seconds per HTTP request, by method, route pattern and status code. */
  httpRequestDuration: Histogram<'method' | 'route' | 'status'>;
  /** Seconds from a run's start to its end, by final status. */
  runDuration: Histogram<'status'>;
  /** Seconds per step, by step status. */
  stepDuration: Histogram<'status'>;
  /** Records a finished run's duration and each of its steps that ran (both ends known). */
  observeRun(result: Pick<RunResult, 'status' | 'startedAt' | 'finishedAt' | 'steps'>): void;
  /**
   * Adds the gauges read from the service's state at each scrape: queue depth, runs by status,
   * workers. Once per registry (a second call throws).
   */
  watchService(sources: { runs: Pick<RunStore, 'countByStatus'>; queue: Pick<RunQueue, 'depth' | 'workers'> }): void;
  /**
   * Starts measuring the event loop's delay (`kiln_event_loop_delay_seconds`, see
   * EventLoopOptions); returns what stops it. Once per registry (a second call throws). The
   * process's own loop: a starved one is what makes BullMQ locks expire (RELIABILITY.md R16).
   */
  watchEventLoop(options?: EventLoopOptions): () => void;
}

export interface EventLoopOptions {
  /**
   * The gauge shows the last complete window of this length, so that what a scrape reads does
   * not depend on when (or by how many) it is scraped. Default 10 s.
   */
  windowMs?: number;
  /** How often the delay is sampled (perf_hooks.monitorEventLoopDelay's resolution). Default 10 ms. */
  resolutionMs?: number;
}

/** Seconds between two ISO times, when both are there and in order. */
function seconds(from: string | null, to: string | null): number | undefined {
  if (!from || !to) return undefined;
  const ms = Date.parse(to) - Date.parse(from);
  return Number.isFinite(ms) && ms >= 0 ? ms / 1000 : undefined;
}

/** The quantiles of kiln_event_loop_delay_seconds; `1` is the largest delay of the window. */
const EVENT_LOOP_QUANTILES = [0.5, 0.9, 0.99, 1] as const;

export function createMetrics(): KilnMetrics {
  const registry = new Registry();
  const httpRequestDuration = new Histogram({
    name: 'kiln_http_request_duration_seconds',
    help: 'HTTP request durations (log follows last as long as the client stays)',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const runDuration = new Histogram({
    name: 'kiln_run_duration_seconds',
    help: 'Run durations, from start to end, by final status',
    labelNames: ['status'] as const,
    buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800],
    registers: [registry],
  });
  const stepDuration = new Histogram({
    name: 'kiln_step_duration_seconds',
    help: 'Step durations, by step status',
    labelNames: ['status'] as const,
    buckets: [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
    registers: [registry],
  });
  return {
    registry,
    httpRequestDuration,
    runDuration,
    stepDuration,
    observeRun(result) {
      const run = seconds(result.startedAt, result.finishedAt);
      if (run !== undefined) runDuration.observe({ status: result.status }, run);
      for (const step of result.steps) {
        const took = seconds(step.startedAt, step.finishedAt);
        if (took !== undefined) stepDuration.observe({ status: step.status }, took);
      }
    },
    watchEventLoop: (options) => watchEventLoop(registry, options),
    watchService({ runs, queue }) {
      new Gauge({
        name: 'kiln_queue_jobs',
        help: 'Run jobs in the queue, by state (waiting includes delayed)',
        labelNames: ['state'] as const,
        registers: [registry],
        async collect() {
          // An unreachable store leaves the series out rather than failing the whole scrape.
          this.reset();
          const depth = await queue.depth().catch(() => undefined);
          if (!depth) return;
          this.set({ state: 'waiting' }, depth.waiting);
          this.set({ state: 'active' }, depth.active);
        },
      });
      new Gauge({
        name: 'kiln_runs',
        help: 'Runs in the store, by status',
        labelNames: ['status'] as const,
        registers: [registry],
        async collect() {
          this.reset();
          const counts = await runs.countByStatus().catch(() => undefined);
          if (!counts) return;
          for (const status of RUN_STATUSES) this.set({ status }, counts[status] ?? 0);
        },
      });
      new Gauge({
        name: 'kiln_workers',
        help: 'Workers connected to the queue',
        registers: [registry],
        async collect() {
          this.reset();
          const workers = await queue.workers().catch(() => undefined);
          if (workers !== undefined) this.set(workers);
        },
      });
    },
  };
}

function watchEventLoop(registry: Registry, options: EventLoopOptions = {}): () => void {
  const windowMs = options.windowMs ?? 10_000;
  const delays = new Gauge({
    name: 'kiln_event_loop_delay_seconds',
    help: `Event-loop delay of this process over the last complete ${windowMs / 1000} s window, by quantile (1: the largest), sampled every ${options.resolutionMs ?? 10} ms (the sampling interval is included); RELIABILITY.md R16 wants p99 < 1 s`,
    labelNames: ['quantile'] as const,
    registers: [registry],
  });
  const histogram = monitorEventLoopDelay({ resolution: options.resolutionMs ?? 10 });
  histogram.enable();
  const rotate = (): void => {
    // A window without a sample (a loop blocked for all of it) keeps the last values, and the
    // block shows in the next window, whose first sample is that long.
    if (histogram.count === 0) return;
    for (const q of EVENT_LOOP_QUANTILES) delays.set({ quantile: String(q) }, (q === 1 ? histogram.max : histogram.percentile(q * 100)) / 1e9);
    histogram.reset();
  };
  const timer = setInterval(rotate, windowMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    histogram.disable();
    registry.removeSingleMetric('kiln_event_loop_delay_seconds');
  };
}

/**
 * The metrics endpoint of a process without the API (`kiln worker --metrics-port`), for
 * `http.createServer`: `GET /metrics` (Prometheus text) and `GET /healthz` (`{"status":"ok"}`
 * while the process runs); anything else is a 404, another method a 405. No token: it says
 * nothing about runs, and binds to loopback unless told otherwise.
 */
export function metricsListener(metrics: Pick<KilnMetrics, 'registry'>): (req: IncomingMessage, res: ServerResponse) => void {
  const answer = (res: ServerResponse, status: number, type: string, body: string, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...headers });
    res.end(body);
  };
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' && path !== '/healthz') return answer(res, 404, 'text/plain; charset=utf-8', `no route for ${req.method} ${path}\n`);
    if (req.method !== 'GET' && req.method !== 'HEAD') return answer(res, 405, 'text/plain; charset=utf-8', 'only GET\n', { allow: 'GET, HEAD' });
    if (path === '/healthz') return answer(res, 200, 'application/json', JSON.stringify({ status: 'ok' }));
    metrics.registry.metrics().then(
      (text) => answer(res, 200, metrics.registry.contentType, text),
      (err: unknown) => answer(res, 500, 'text/plain; charset=utf-8', `metrics failed: ${errorMessage(err)}\n`),
    );
  };
}

/** Times every request; the route label is the matched pattern, so its values stay few. */
export function timeRequests(metrics: KilnMetrics): RequestHandler {
  return (req, res, next) => {
    const end = metrics.httpRequestDuration.startTimer();
    res.once('close', () => {
      const route = req.route ? String((req.route as { path: unknown }).path) : 'unmatched';
      end({ method: req.method, route, status: String(res.statusCode) });
    });
    next();
  };
}
