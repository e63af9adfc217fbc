import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startApi, VALID_TASK, type Harness } from './helpers';

/** The multipart form of a quick run or build: text fields, then an optional `context` file. */
function form(fields: Record<string, string>, context?: Uint8Array): FormData {
  const data = new FormData();
  for (const [name, value] of Object.entries(fields)) data.append(name, value);
  if (context) data.append('context', new Blob([context]), 'context.tar.gz');
  return data;
}

describe('multipart uploads', () => {
  const CAP = 64 * 1024;
  let api: Harness;
  beforeAll(async () => {
    api = await startApi('uploads', { uploadCapBytes: CAP });
  });
  afterAll(async () => {
    await api.close();
  });

  it('stores the context part under the uploads dir and queues the run with it', async () => {
    const bytes = Buffer.alloc(20_000, 0x61);
    const res = await api.request('POST', '/v1/runs', {
      role: 'runner',
      body: form({ task: VALID_TASK, values: JSON.stringify({ a: 1 }), set: JSON.stringify({ b: 'c' }), timeout: '600' }, bytes),
    });
    expect(res.status).toBe(202);
    const { runId } = (await res.json()) as { runId: string };
    const claim = await api.store.claim(runId, 'w');
    if (!('request' in claim)) throw new Error('claim refused');
    expect(claim.request).toMatchObject({ values: { a: 1 }, set: { b: 'c' }, timeout: 600 });
    const source = claim.request.source;
    if (source.kind !== 'upload') throw new Error(`expected an upload, got ${source.kind}`);
    expect(source.bytes).toBe(bytes.length);
    expect(readFileSync(join(api.uploadsDir, `${source.uploadId}.tar`))).toEqual(bytes);
  });

  it('answers 413 past the cap and removes the partial file', async () => {
    const before = readdirSync(api.uploadsDir).length;
    const res = await api.request('POST', '/v1/runs', { role: 'runner', body: form({ task: VALID_TASK }, Buffer.alloc(8 * 1024 * 1024, 1)) });
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ status: 413, detail: expect.stringMatching(/larger than the 65536 bytes/) });
    expect(readdirSync(api.uploadsDir).length).toBe(before);
  });

  it('removes the upload when the task is invalid, or the body is', async () => {
    const before = readdirSync(api.uploadsDir).length;
    const invalid = await api.request('POST', '/v1/runs', { role: 'runner', body: form({ task: 'steps: 3\n' }, Buffer.alloc(100, 1)) });
    expect(invalid.status).toBe(400);
    expect(((await invalid.json()) as { diagnostics: unknown[] }).diagnostics.length).toBeGreaterThan(0);
    const badJson = await api.request('POST', '/v1/runs', { role: 'runner', body: form({ task: VALID_TASK, values: '{nope' }, Buffer.alloc(100, 1)) });
    expect(badJson.status).toBe(400);
    expect(((await badJson.json()) as { detail: string }).detail).toMatch(/"values" must be JSON/);
    const both = await api.request('POST', '/v1/runs', { role: 'runner', body: form({ task: VALID_TASK, context: 'https://h.example/c.tar' }, Buffer.alloc(100, 1)) });
    expect(both.status).toBe(400);
    const otherFile = new FormData();
    otherFile.append('task', VALID_TASK);
    otherFile.append('secrets', new Blob(['{}']), 'secrets.json');
    expect((await api.request('POST', '/v1/runs', { role: 'runner', body: otherFile })).status).toBe(400);
    const proto = await api.request('POST', '/v1/runs', { role: 'runner', body: form(Object.fromEntries([['__proto__', VALID_TASK], ['task', VALID_TASK]]) as Record<string, string>, Buffer.alloc(100, 1)) });
    expect(proto.status).toBe(400);
    expect(((await proto.json()) as { detail: string }).detail).toMatch(/__proto__/);
    expect(readdirSync(api.uploadsDir).length).toBe(before);
  });

  it('removes the upload when the run cannot be stored', async () => {
    const before = readdirSync(api.uploadsDir).length;
    api.queue.failWith = new Error('connection lost');
    try {
      const res = await api.request('POST', '/v1/runs', { role: 'runner', body: form({ task: VALID_TASK }, Buffer.alloc(100, 1)) });
      expect(res.status).toBe(503);
    } finally {
      api.queue.failWith = undefined;
    }
    expect(readdirSync(api.uploadsDir).length).toBe(before);
  });

  it('takes a quick build with an uploaded context', async () => {
    const res = await api.request('POST', '/v1/builds', {
      role: 'runner',
      body: form({ tags: JSON.stringify(['app:1']), buildArgs: JSON.stringify({ V: '2' }), noPush: 'true' }, Buffer.alloc(10, 1)),
    });
    expect(res.status).toBe(202);
    const { runId } = (await res.json()) as { runId: string };
    const claim = await api.store.claim(runId, 'w');
    if (!('request' in claim)) throw new Error('claim refused');
    expect(claim.request.source.kind).toBe('upload');
    expect(claim.request.taskText).toContain('-t 127.0.0.1:5000/app:1 --build-arg V=2 .');
    expect(claim.request.taskText).not.toContain('push:');
  });

  it('runs a saved task with an uploaded context in place of its own', async () => {
    expect((await api.request('POST', '/v1/tasks', { json: { name: 'up', file: 'ci/acb.yaml', context: 'https://git.example/r.git' } })).status).toBe(201);
    const res = await api.request('POST', '/v1/tasks/up/runs', { role: 'runner', body: form({ set: JSON.stringify({ a: 'b' }) }, Buffer.alloc(300, 2)) });
    expect(res.status).toBe(202);
    const claim = await api.store.claim(((await res.json()) as { runId: string }).runId, 'w');
    if (!('request' in claim)) throw new Error('claim refused');
    expect(claim.request).toMatchObject({ fileName: 'ci/acb.yaml', taskText: '', set: { a: 'b' }, source: { kind: 'upload', bytes: 300 } });
  });

  it('does not take multipart where there is nothing to upload', async () => {
    const res = await api.request('POST', '/v1/tasks', { role: 'admin', body: form({ name: 'x', task: VALID_TASK }) });
    expect(res.status).toBe(415);
  });
});
