import express, { type Express, type RequestHandler } from 'express';
import helmet from 'helmet';
import { KilnError } from '../errors';
import { StoreUnavailableError } from '../runs/submit';
import { DEFAULT_AUTH_FAILURE_LIMIT, FailureLimiter, makeRoleGuard, principal } from './auth';
import type { AppDeps, RouteContext } from './context';
import { registerLogRoutes } from './logs-routes';
import { timeRequests } from './metrics';
import { CachedTokens } from './token-cache';
import { HttpError, notFoundHandler, problemHandler } from './problem';
import { registerRunEventRoutes, RunEventHub } from './run-events';
import { registerRunRoutes } from './runs-routes';
import { registerTaskRoutes } from './tasks-routes';
import { registerTokenRoutes } from './tokens-routes';
import { registerTriggerRoutes } from './triggers-routes';
import { registerUploadRoutes } from './uploads-routes';
import { serveConsole } from './web-console';

export type { AppDefaults, AppDeps, RouteContext } from './context';

/**
 * The HTTP API as an Express app built from injected dependencies; it binds nothing (bin/ does).
 * Every route but /healthz, /readyz, /metrics, /v1/uploads/{uploadId} and the source webhooks
 * (which carry their own signatures) needs a bearer token. Store and queue failures answer 503 with Retry-After, never 500.
 * The web console, when there is one (`consoleDir`), is static files outside /v1, open to all:
 * the page asks for a token and sends it with its own requests to /v1.
 */

/** Paths open without a token. */
export const OPEN_PATHS: readonly string[] = ['/healthz', '/readyz', '/metrics', '/v1/uploads/{uploadId}', '/v1/tasks/{name}/hooks/{provider}'];

export function createApp(input: AppDeps): Express {
  const deps: AppDeps = {
    ...input,
    runs: unavailableOnFailure(input.runs),
    logs: unavailableOnFailure(input.logs),
    tasks: unavailableOnFailure(input.tasks),
    tokens: unavailableOnFailure(new CachedTokens(input.tokens)),
    queue: unavailableOnFailure(input.queue),
  };
  const logger = input.logger.child(
    { component: 'http' },
    { redact: { paths: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'authorization'], censor: '[redacted]' } },
  );
  const ctx: RouteContext = {
    deps,
    logger,
    requireRole: makeRoleGuard(deps.tokens, new FailureLimiter(input.authFailures ?? DEFAULT_AUTH_FAILURE_LIMIT)),
    submitDeps: { runs: deps.runs, queue: deps.queue, now: deps.now, imageAliases: deps.imageAliases, loadAliasSource: deps.loadAliasSource },
  };
  deps.metrics.watchService({ runs: deps.runs, queue: deps.queue });

  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  app.use(timeRequests(deps.metrics));
  app.use(securityHeaders());
  // Answers under /v1 can carry run data (status, logs, task settings): no cache may keep them.
  // A route may still say more (a log follower adds `no-transform`).
  app.use('/v1', (_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    next();
  });
  app.use((req, res, next) => {
    const start = process.hrtime.bigint();
    // The path asked for (the console answers client-side routes with index.html by rewriting it).
    const path = req.path;
    res.once('close', () => {
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      // The path only: query strings and headers are never logged.
      logger.info({ method: req.method, path, status: res.statusCode, ms: Math.round(ms), token: principal(res)?.id }, 'request');
    });
    next();
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const ready = await deps.ready().catch(() => false);
    if (!ready) throw new HttpError(503, 'the store is not reachable', { headers: { 'Retry-After': '5' } });
    res.json({ status: 'ready' });
  });
  app.get('/metrics', async (_req, res) => {
    const text = await deps.metrics.registry.metrics();
    res.type(deps.metrics.registry.contentType).send(text);
  });

  // Before the run routes: `/v1/runs/:id` would take `events` for a run id.
  registerRunEventRoutes(app, ctx, new RunEventHub(deps.runs, logger));
  registerRunRoutes(app, ctx);
  registerLogRoutes(app, ctx);
  registerTaskRoutes(app, ctx);
  registerTokenRoutes(app, ctx);
  registerTriggerRoutes(app, ctx);
  registerUploadRoutes(app, ctx);
  if (input.consoleDir !== undefined) serveConsole(app, input.consoleDir);

  app.use(notFoundHandler);
  app.use(problemHandler(logger));
  return app;
}

/**
 * The standard security headers, strict for an API that answers only JSON, problems, text logs
 * and event streams: nothing may load, frame or embed an answer (CSP `default-src 'none';
 * frame-ancestors 'none'`, X-Frame-Options DENY, Cross-Origin-Resource-Policy same-origin), no
 * Referer leaves, no MIME sniffing, no X-Powered-By. The web console gets its own, looser
 * policy on its own pages (web-console.ts: CONSOLE_CSP).
 *
 * HSTS is off: the API binds to 127.0.0.1 over plain http by default, where the header means
 * nothing, and a TLS proxy in front of it (the only place it would mean something) is where it
 * belongs, since only that proxy knows whether every name it serves speaks https.
 */
function securityHeaders(): RequestHandler {
  return helmet({
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    xFrameOptions: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
    crossOriginResourcePolicy: { policy: 'same-origin' },
    strictTransportSecurity: false,
  });
}

/**
 * Wraps a store so that whatever its methods throw that is not one of our typed errors (an ioredis
 * error: connection closed, OOM, a refused write) becomes a StoreUnavailableError: a 503.
 */
function unavailableOnFailure<T extends object>(target: T): T {
  const wrap = (err: unknown): unknown => (err instanceof KilnError ? err : new StoreUnavailableError('the store failed', { cause: err }));
  return new Proxy(target, {
    get(obj, key) {
      const value: unknown = Reflect.get(obj, key, obj);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]): unknown => {
        try {
          const result: unknown = value.apply(obj, args);
          return result instanceof Promise ? result.catch((err: unknown) => Promise.reject(wrap(err))) : result;
        } catch (err) {
          throw wrap(err);
        }
      };
    },
  });
}

/** The routes an app registered, as `METHOD /path/{param}` (for the OpenAPI check). */
export function registeredRoutes(app: Express): { method: string; path: string }[] {
  interface Layer {
    route?: { path: string; methods: Record<string, boolean> };
  }
  const stack = (app.router as unknown as { stack: Layer[] }).stack;
  return stack.flatMap((layer) => {
    if (!layer.route) return [];
    const path = layer.route.path.replace(/:(\w+)/g, '{$1}');
    return Object.keys(layer.route.methods)
      .filter((m) => m !== '_all')
      .map((method) => ({ method: method.toUpperCase(), path }));
  });
}
