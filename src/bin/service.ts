import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import Redis from 'ioredis';
import type { Logger } from 'pino';
import { DockerBackend, SandboxPool } from '../backend/docker';
import type { RunningService, ServiceOptions } from '../cli/serve';
import { loadConfig } from '../config';
import { createApp, createMetrics } from '../http';
import { metricsListener } from '../http/metrics';
import { parseImageRef } from '../domain/image-ref';
import { BullRunQueue, startWorker, TriggerScheduler, type WorkerHandle } from '../queue';
import { defaultWorkerId, workerOwner } from '../queue/owner';
import { RegistryClient } from '../registry/client';
import { startReconciler } from '../runs/reconcile';
import { removeOldUploads } from '../runs/upload-retention';
import { RedisStore } from '../runs/redis-store';
import { loadSecretKey } from '../runs/secret-box';
import { uploadKeyFrom } from '../runs/upload-url';
import { listRemoteBranches, type NetworkPolicy } from '../source';
import { checkContextUrl, resolvePublicAddresses } from '../source/network';
import { RedisPollMemory } from '../triggers/poll-memory';
import { RedisTriggerStore } from '../triggers/redis-store';
import { recordBuild, TriggerService } from '../triggers/service';
import { errorMessage } from '../errors';
import { consoleDir } from './package-root';

/**
 * The service's composition root: the only place that builds Redis connections, the store, the
 * queue, the Docker backend, the API server and the worker, and stops them in order.
 */

/** How often the reconciler re-queues runs that lost their job (RELIABILITY.md rule 2). */
const RECONCILE_INTERVAL_MS = 30_000;
/** Longer than a run can wait in the queue (24 h) plus its longest timeout (8 h) and retries. */
const UPLOAD_MAX_AGE_MS = 48 * 3600 * 1000;
const UPLOAD_SWEEP_INTERVAL_MS = 3600 * 1000;
/** How often timer schedulers are repaired from the tasks' settings. */
const TIMER_RESYNC_MS = 60_000;

export async function startService(options: ServiceOptions, env: NodeJS.ProcessEnv, logger: Logger): Promise<RunningService> {
  const config = loadConfig(env);
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const uploadsDir = join(options.dataDir, 'uploads');
  mkdirSync(uploadsDir, { recursive: true, mode: 0o700 });
  const secretKey = loadSecretKey(env, join(options.dataDir, 'secret.key'));
  const uploadKey = uploadKeyFrom(secretKey);

  // One registry per process: the API's /metrics and the worker's --metrics-port show the same.
  // The metrics port is bound first, so that a port taken fails the start before anything else is.
  const metrics = createMetrics();
  let metricsServer: Server | undefined;
  let metricsUrl: string | undefined;
  if (options.metricsPort !== undefined) {
    const listening = createServer(metricsListener(metrics));
    await new Promise<void>((resolve, reject) => {
      listening.once('error', reject);
      listening.listen(options.metricsPort, options.metricsHost ?? '127.0.0.1', () => resolve());
    });
    metricsServer = listening;
    metricsUrl = urlOf(listening);
    logger.info({ url: metricsUrl }, 'metrics served');
  }
  const stopEventLoop = metrics.watchEventLoop();

  // Commands fail fast while Redis is away (the API answers 503), but reconnect for ever.
  const redis = new Redis(options.redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: true, lazyConnect: true });
  redis.on('error', (err: Error) => logger.warn({ err: err.message }, 'redis'));
  try {
    await redis.connect();
  } catch (err) {
    stopEventLoop();
    metricsServer?.close();
    throw err;
  }
  const store = new RedisStore({ redis, secretKey });
  const queue = new BullRunQueue({ connection: redis });
  const triggerStore = new RedisTriggerStore({ redis });
  const network: NetworkPolicy = options.allowPrivateSources ? { allowSchemes: ['https', 'http'], allowPrivateAddresses: true } : { allowSchemes: ['https'] };
  const defaults = {
    registry: options.registry || undefined,
    platform: options.platform,
    pool: options.pool,
    timeout: 3600,
    queueTtl: 24 * 3600,
    uploadCapBytes: 1024 ** 3,
    policy: options.policy,
    limits: options.limits,
  };

  const stops: (() => Promise<void>)[] = [];
  let url: string | undefined;
  let server: Server | undefined;
  stops.push(async () => stopEventLoop());
  if (options.api) {
    if (options.adminToken) await store.tokens.ensure(options.adminToken, 'admin (KILN_ADMIN_TOKEN)', 'admin');
    const scheduler = new TriggerScheduler({ connection: redis });
    const triggers = new TriggerService({
      tasks: store.tasks,
      submit: { runs: store, queue, tasks: store.tasks, defaults, imageAliases: config.imageAliases },
      dependencies: triggerStore.dependencies,
      once: triggerStore.once,
      decisions: triggerStore.decisions,
      manifestDigest: (image, login) => registryDigest(image, login, options.allowPrivateSources),
      listBranches: (url) => listRemoteBranches(url, { ...network, logger }),
      timers: scheduler,
      polled: new RedisPollMemory(redis),
      logger,
    });
    const app = createApp({
      runs: store,
      logs: store.logs,
      tasks: store.tasks,
      tokens: store.tokens,
      queue,
      uploadsDir,
      uploadKey,
      defaults,
      ready: async () => (await redis.ping()) === 'PONG',
      logger,
      metrics,
      imageAliases: config.imageAliases,
      triggers: { service: triggers, dependencies: triggerStore.dependencies, decisions: triggerStore.decisions },
      consoleDir: consoleDir(),
    });
    server = createServer(app);
    await new Promise<void>((resolve, reject) => {
      server?.once('error', reject);
      server?.listen(options.port, options.host, () => resolve());
    });
    url = urlOf(server);
    stops.push(startReconciler({ store, queue, logger }, RECONCILE_INTERVAL_MS));
    // Timers and poll ticks are BullMQ job schedulers: with several API processes, each tick runs once.
    await scheduler.setTick('poll', options.pollTick * 1000);
    await scheduler.setTick('resync', TIMER_RESYNC_MS);
    await scheduler.start({
      timer: (fire) => triggers.timerFired(fire),
      tick: (name) => (name === 'poll' ? triggers.poll() : triggers.syncAllTimers()),
    });
    stops.push(() => scheduler.close());
    await triggers.syncAllTimers().catch((err: unknown) => logger.warn({ err: errorMessage(err) }, 'could not sync the timers'));
    // Uploads of runs that never reached a worker (canceled or expired while queued), and the
    // API's copy of those a worker on another host downloaded: gone once no run can need them.
    const sweepUploads = (): void => {
      removeOldUploads(uploadsDir, UPLOAD_MAX_AGE_MS)
        .then((removed) => removed.length > 0 && logger.info({ removed: removed.length }, 'removed old uploads'))
        .catch((err: unknown) => logger.warn({ err: errorMessage(err) }, 'could not remove old uploads'));
    };
    sweepUploads();
    const uploadTimer = setInterval(sweepUploads, UPLOAD_SWEEP_INTERVAL_MS);
    stops.push(async () => clearInterval(uploadTimer));
  }

  let worker: WorkerHandle | undefined;
  if (options.worker) {
    const workerId = defaultWorkerId();
    const sandboxes = options.warmSandboxes > 0 ? new SandboxPool({ size: options.warmSandboxes, owner: workerOwner(workerId), logger }) : undefined;
    worker = await startWorker({
      connection: redis,
      store,
      workerId,
      backendFor: (owner) => new DockerBackend({ logger, owner, ...(sandboxes ? { sandboxes } : {}) }),
      concurrency: options.concurrency,
      platform: options.platform,
      pool: options.pool,
      logger,
      uploadsDir,
      apiUrl: options.apiUrl,
      uploadKey,
      network,
      dockerSocket: options.dockerSocket,
      imageAliases: config.imageAliases,
      onFinished: async (request, result) => {
        metrics.observeRun(result);
        await recordBuild(triggerStore.dependencies, request, result);
      },
    });
    if (sandboxes) {
      sandboxes.start();
      stops.push(() => sandboxes.close());
    }
  }

  return {
    url,
    metricsUrl,
    async stop(graceMs: number): Promise<void> {
      // New requests first, then the worker's runs, then the connections everything shared.
      const closing = server ? new Promise<void>((resolve) => server?.close(() => resolve())) : Promise.resolve();
      server?.closeIdleConnections();
      await worker?.close(graceMs);
      for (const stop of stops) await stop();
      // Open log followers would hold the server forever: cut them.
      server?.closeAllConnections();
      await closing;
      await queue.close();
      await store.close();
      await redis.quit().catch(() => redis.disconnect());
      metricsServer?.closeAllConnections();
      await new Promise<void>((resolve) => (metricsServer ? metricsServer.close(() => resolve()) : resolve()));
    },
  };
}

/** `http://address:port` of a listening server (IPv6 in brackets). */
function urlOf(server: Server): string | undefined {
  const address = server.address();
  return typeof address === 'object' && address ? `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}` : undefined;
}

/**
 * A base image's current digest, for the digest poller. The registry's host must resolve to
 * public addresses (SSRF) unless private sources are allowed.
 */
async function registryDigest(image: string, login: { username: string; password: string } | undefined, allowPrivate: boolean): Promise<string | undefined> {
  const ref = parseImageRef(image);
  if (!allowPrivate) await resolvePublicAddresses(checkContextUrl(`https://${ref.registry}/`, ['https'], 'registry'), false, 'registry');
  return new RegistryClient({ loginFor: () => login }).manifestDigest(ref);
}
