import type { RequestHandler } from 'express';
import { Gauge, Histogram, Registry } from 'prom-client';
import { RUN_STATUSES } from '../domain/status';
import type { RunQueue, RunStore } from '../runs/store';

/**
 * The service's Prometheus metrics, on a registry of their own (never prom-client's global one,
 * so that two apps in one process, or a test, do not share series). The duration histograms are
 * plain prom-client histograms: the worker side observes `runDuration` and `stepDuration` with
 * the final status as the label.
 */

export interface KilnMetrics {
  registry: Registry;
  /** Seconds per HTTP request, by method, route pattern and status code. */
  httpRequestDuration: Histogram<'method' | 'route' | 'status'>;
  /** Seconds from a run's start to its end, by final status. */
  runDuration: Histogram<'status'>;
  /** Seconds per step, by step status. */
  stepDuration: Histogram<'status'>;
  /**
   * Adds the gauges read from the service's state at each scrape: queue depth, runs by status,
   * workers. Once per registry (a second call throws).
   */
  watchService(sources: { runs: Pick<RunStore, 'countByStatus'>; queue: Pick<RunQueue, 'depth' | 'workers'> }): void;
}

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
