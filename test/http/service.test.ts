import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { Express } from 'express';
import pino from 'pino';
import { createApp, registeredRoutes } from '../../src/http/app';
import { createMetrics } from '../../src/http/metrics';
import { BODY_SCHEMAS } from '../../src/http/schemas';
import type { Role } from '../../src/runs/store';
import { makeTriggers, RecordingQueue, startApi, VALID_TASK, type Harness, type TriggerParts } from './helpers';

const OPENAPI = parse(readFileSync(join(__dirname, '..', '..', 'schemas', 'openapi.yaml'), 'utf8')) as {
  openapi: string;
  paths: Record<string, Record<string, { 'x-kiln-role'?: Role; security?: unknown[] }>>;
  components: { schemas: Record<string, unknown> };
};
const METHODS = ['get', 'put', 'post', 'delete', 'patch'];

function documented(): { method: string; path: string; role?: Role; open: boolean }[] {
  return Object.entries(OPENAPI.paths).flatMap(([path, item]) =>
    Object.entries(item)
      .filter(([method]) => METHODS.includes(method))
      .map(([method, op]) => ({ method: method.toUpperCase(), path, role: op['x-kiln-role'], open: Array.isArray(op.security) && op.security.length === 0 })),
  );
}

describe('schemas/openapi.yaml', () => {
  let api: Harness;
  let app: Express;
  let triggers: TriggerParts;
  beforeAll(async () => {
    api = await startApi('service', {
      deps: (store, queue, redis) => {
        triggers = makeTriggers(store, queue, redis);
        return triggers.deps;
      },
    });
    app = createApp({
      ...triggers.deps,
      runs: api.store,
      logs: api.store.logs,
      tasks: api.store.tasks,
      tokens: api.store.tokens,
      queue: new RecordingQueue(),
      uploadsDir: api.uploadsDir,
      defaults: { platform: 'linux/amd64', pool: 'default', timeout: 3600, queueTtl: 600, uploadCapBytes: 1 },
      ready: async () => true,
      logger: pino({ level: 'silent' }),
      metrics: createMetrics(),
    });
  });
  afterAll(async () => {
    await triggers.scheduler.close();
    await api.close();
  });

  it('is OpenAPI 3.1 and documents exactly the routes the app registers', () => {
    expect(OPENAPI.openapi).toBe('3.1.0');
    const key = (r: { method: string; path: string }): string => `${r.method} ${r.path}`;
    const registered = registeredRoutes(app).map(key).sort();
    expect(registered.length).toBeGreaterThan(15);
    expect(documented().map(key).sort()).toEqual(registered);
  });

  it('has the request body schemas the server validates with (descriptions aside)', () => {
    const withoutDescriptions = (node: unknown): unknown =>
      Array.isArray(node) ? node.map(withoutDescriptions)
      : node !== null && typeof node === 'object' ? Object.fromEntries(Object.entries(node).filter(([k]) => k !== 'description').map(([k, v]) => [k, withoutDescriptions(v)]))
      : node;
    for (const [name, schema] of Object.entries(BODY_SCHEMAS)) {
      expect([name, withoutDescriptions(OPENAPI.components.schemas[name])]).toEqual([name, JSON.parse(JSON.stringify(schema))]);
    }
  });

  it('resolves every $ref', () => {
    const refs = JSON.stringify(OPENAPI).match(/"\$ref":"[^"]+"/g) ?? [];
    expect(refs.length).toBeGreaterThan(20);
    for (const ref of refs) {
      const path = ref.slice('"$ref":"#/'.length, -1).split('/');
      let node: unknown = OPENAPI;
      for (const part of path) node = (node as Record<string, unknown> | undefined)?.[part];
      expect([ref, node === undefined]).toEqual([ref, false]);
    }
  });

  it('names for each operation the least role that may call it', async () => {
    const below: Record<Role, Role | undefined> = { reader: undefined, runner: 'reader', admin: 'runner' };
    for (const op of documented()) {
      const path = op.path.replace(/\{\w+\}/g, 'k999999');
      if (op.open) {
        expect([op.path, op.role]).toEqual([op.path, undefined]);
        continue;
      }
      if (!op.role) throw new Error(`${op.method} ${op.path} has no x-kiln-role`);
      const lower = below[op.role];
      if (lower) expect([op.method, op.path, (await api.request(op.method, path, { role: lower })).status]).toEqual([op.method, op.path, 403]);
      const allowed = (await api.request(op.method, path, { role: op.role })).status;
      expect([op.method, op.path, [401, 403].includes(allowed)]).toEqual([op.method, op.path, false]);
    }
  });
});

describe('health, readiness and metrics', () => {
  it('answers /healthz and /readyz, and 503 when the store is not ready', async () => {
    let ready: () => Promise<boolean> = async () => true;
    const api = await startApi('ready', { overrides: { ready: () => ready() } });
    try {
      expect(await (await api.request('GET', '/healthz', { token: null })).json()).toEqual({ status: 'ok' });
      expect((await api.request('GET', '/readyz', { token: null })).status).toBe(200);
      ready = async () => false;
      const down = await api.request('GET', '/readyz', { token: null });
      expect(down.status).toBe(503);
      expect(down.headers.get('retry-after')).toMatch(/^\d+$/);
      ready = () => Promise.reject(new Error('ECONNREFUSED'));
      expect((await api.request('GET', '/readyz', { token: null })).status).toBe(503);
    } finally {
      await api.close();
    }
  });

  it('exposes queue depth, runs by status, workers and request durations on its own registry', async () => {
    const api = await startApi('metrics');
    try {
      for (let i = 0; i < 2; i++) expect((await api.request('POST', '/v1/runs', { role: 'runner', json: { task: VALID_TASK } })).status).toBe(202);
      const { runId } = (await (await api.request('POST', '/v1/runs', { role: 'runner', json: { task: VALID_TASK } })).json()) as { runId: string };
      await api.request('POST', `/v1/runs/${runId}/cancel`, { role: 'runner' });
      const res = await api.request('GET', '/metrics', { token: null });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      const text = await res.text();
      expect(text).toContain('kiln_queue_jobs{state="waiting"} 2');
      expect(text).toContain('kiln_queue_jobs{state="active"} 0');
      expect(text).toContain('kiln_runs{status="Queued"} 2');
      expect(text).toContain('kiln_runs{status="Canceled"} 1');
      expect(text).toContain('kiln_runs{status="Succeeded"} 0');
      expect(text).toContain('kiln_workers 3');
      expect(text).toContain('kiln_http_request_duration_seconds_count{method="POST",route="/v1/runs",status="202"} 3');
      expect(text).toContain('kiln_http_request_duration_seconds_count{method="POST",route="/v1/runs/:id/cancel",status="202"} 1');
      expect(text).toContain('# TYPE kiln_run_duration_seconds histogram');
      expect(text).toContain('# TYPE kiln_step_duration_seconds histogram');
      // Not the global registry: nothing of prom-client's default metrics.
      expect(text).not.toContain('process_cpu');
    } finally {
      await api.close();
    }
  });

  it('lets the worker side observe run and step durations', async () => {
    const metrics = createMetrics();
    metrics.runDuration.observe({ status: 'Succeeded' }, 42);
    metrics.stepDuration.observe({ status: 'Failed' }, 1.5);
    const text = await metrics.registry.metrics();
    expect(text).toContain('kiln_run_duration_seconds_count{status="Succeeded"} 1');
    expect(text).toContain('kiln_step_duration_seconds_sum{status="Failed"} 1.5');
  });

  it('scrapes without the store gauges when the store is down', async () => {
    const metrics = createMetrics();
    const down = () => Promise.reject(new Error('Connection is closed.'));
    metrics.watchService({ runs: { countByStatus: down }, queue: { depth: down, workers: down } });
    const text = await metrics.registry.metrics();
    expect(text).toContain('# TYPE kiln_runs gauge');
    expect(text).not.toMatch(/^kiln_runs\{/m);
  });
});
