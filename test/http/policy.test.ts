import { startApi, type Harness } from './helpers';

/**
 * The server's policy at the API: what a restricted server refuses (403 naming the key, nothing
 * stored), what an admin may allow per task, and the limits each run carries to its worker.
 */

const PRIVILEGED = 'version: v1.1.0\nsteps:\n  - cmd: busybox id\n  - cmd: busybox true\n    privileged: true\n';
const HOST_NETWORK = 'version: v1.1.0\nsteps:\n  - cmd: busybox true\n    network: host\n';
const PLAIN = 'version: v1.1.0\nsteps:\n  - cmd: busybox echo hi\n';

describe('the restricted policy at the API', () => {
  let api: Harness;
  beforeAll(async () => {
    api = await startApi('policy');
  });
  afterAll(async () => {
    await api.close();
  });

  it('refuses a quick run that asks for a privileged step or the host network with 403 naming the key, and stores nothing', async () => {
    const before = (await api.store.list({ limit: 500 })).items.length;
    for (const [task, key] of [
      [PRIVILEGED, 'steps[1].privileged'],
      [HOST_NETWORK, 'steps[0].network'],
    ]) {
      const res = await api.request('POST', '/v1/runs', { role: 'runner', json: { task } });
      const body = (await res.json()) as { detail: string; type: string };
      expect([res.status, body.type]).toEqual([403, 'urn:kiln:problem:policy-denied']);
      expect(body.detail).toContain(`${key}: `);
      expect(body.detail).toContain("denied by the server's restricted policy");
    }
    expect((await api.store.list({ limit: 500 })).items.length).toBe(before);
  });

  it('gives an accepted run the server policy and limits, for its worker', async () => {
    const res = await api.request('POST', '/v1/runs', { role: 'runner', json: { task: PLAIN } });
    expect(res.status).toBe(202);
    const { runId } = (await res.json()) as { runId: string };
    const claim = await api.store.claim(runId, 'test');
    if (!('request' in claim)) throw new Error('not claimed');
    expect(claim.request).toMatchObject({ policy: 'restricted', limits: {} });
  });

  it('refuses to save a task that asks for what the policy denies, unless an admin marks it trusted', async () => {
    const denied = await api.request('POST', '/v1/tasks', { json: { name: 'priv', task: PRIVILEGED } });
    expect(denied.status).toBe(403);
    expect(((await denied.json()) as { detail: string }).detail).toContain('steps[1].privileged');
    const trusted = await api.request('POST', '/v1/tasks', { json: { name: 'priv', task: PRIVILEGED, policy: 'trusted', limits: { memory: '512m', cpus: 0.5, pids: 128 } } });
    expect(trusted.status).toBe(201);
    expect(await trusted.json()).toMatchObject({ policy: 'trusted', limits: { memory: '512m', cpus: 0.5, pids: 128 } });
    const run = await api.request('POST', '/v1/tasks/priv/runs', { role: 'runner', json: {} });
    expect(run.status).toBe(202);
    const claim = await api.store.claim(((await run.json()) as { runId: string }).runId, 'test');
    if (!('request' in claim)) throw new Error('not claimed');
    expect(claim.request).toMatchObject({ policy: 'trusted', limits: { memoryBytes: 512 * 1024 ** 2, cpus: 0.5, pids: 128 } });
    // Only admins write tasks, so only admins can make one trusted.
    expect((await api.request('PUT', '/v1/tasks/priv', { role: 'runner', json: { task: PRIVILEGED, policy: 'trusted' } })).status).toBe(403);
  });

  it('checks task limits', async () => {
    for (const limits of [{ memory: '1x' }, { memory: '1m' }, { cpus: 0 }, { pids: 1 }, { colour: 'red' }]) {
      const res = await api.request('POST', '/v1/tasks', { json: { name: 'limited', task: PLAIN, limits } });
      expect([JSON.stringify(limits), res.status]).toEqual([JSON.stringify(limits), 400]);
    }
  });
});

describe('a trusted server', () => {
  let api: Harness;
  beforeAll(async () => {
    api = await startApi('policy-trusted', { defaults: { policy: 'trusted', limits: { memoryBytes: 1024 ** 3, pids: 512 } } });
  });
  afterAll(async () => {
    await api.close();
  });

  it('accepts what ACR task files may ask for, with its limits', async () => {
    const res = await api.request('POST', '/v1/runs', { role: 'runner', json: { task: PRIVILEGED } });
    expect(res.status).toBe(202);
    const claim = await api.store.claim(((await res.json()) as { runId: string }).runId, 'test');
    if (!('request' in claim)) throw new Error('not claimed');
    expect(claim.request).toMatchObject({ policy: 'trusted', limits: { memoryBytes: 1024 ** 3, pids: 512 } });
  });
});
