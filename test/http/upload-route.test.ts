import { randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { signUploadPath, uploadKeyFrom } from '../../src/runs/upload-url';
import { SECRET_KEY, startApi, type Harness } from './helpers';

/** GET /v1/uploads/{uploadId}: the stored bytes for a signed URL, without a bearer token. */

const KEY = uploadKeyFrom(SECRET_KEY);

describe('GET /v1/uploads/{uploadId}', () => {
  let api: Harness;
  let keyless: Harness;
  beforeAll(async () => {
    api = await startApi('upload-route', { overrides: { uploadKey: KEY } });
    keyless = await startApi('upload-route-keyless');
  });
  afterAll(async () => {
    await api.close();
    await keyless.close();
  });

  function stored(dir: string, bytes: Buffer): string {
    const id = randomUUID();
    writeFileSync(join(dir, `${id}.tar`), bytes);
    return id;
  }

  it('streams the stored bytes for a valid signature, with no bearer token', async () => {
    const bytes = randomBytes(300_000);
    const id = stored(api.uploadsDir, bytes);
    const res = await api.request('GET', signUploadPath(KEY, id, 60), { token: null });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(res.headers.get('content-length')).toBe(String(bytes.length));
    expect(Buffer.from(await res.arrayBuffer()).equals(bytes)).toBe(true);
    // The signature is a credential: the request log names the path only.
    expect(api.logText()).not.toMatch(/sig=/);
  });

  it('answers 403 for a tampered, foreign or expired signature, and for none', async () => {
    const id = stored(api.uploadsDir, Buffer.from('x'));
    const good = new URL(signUploadPath(KEY, id, 60), api.url);
    const tamperedSig = new URL(good);
    tamperedSig.searchParams.set('sig', (good.searchParams.get('sig') ?? '').replace(/^./, (c) => (c === '0' ? '1' : '0')));
    const tamperedExpiry = new URL(good);
    tamperedExpiry.searchParams.set('expires', String(Number(good.searchParams.get('expires')) + 3600));
    const foreign = signUploadPath(uploadKeyFrom(randomBytes(32)), id, 60);
    const expired = signUploadPath(KEY, id, 60, new Date(Date.now() - 120_000));
    for (const path of [tamperedSig.pathname + tamperedSig.search, tamperedExpiry.pathname + tamperedExpiry.search, foreign, expired, `/v1/uploads/${id}`]) {
      const res = await api.request('GET', path, { token: null });
      expect([path, res.status]).toEqual([path, 403]);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    }
    const late = await api.request('GET', expired, { token: null });
    expect(((await late.json()) as { detail: string }).detail).toMatch(/expired/);
  });

  it('answers 404 for a missing upload, an id the API never gives, and on an API without a key', async () => {
    expect((await api.request('GET', signUploadPath(KEY, randomUUID(), 60), { token: null })).status).toBe(404);
    expect((await api.request('GET', signUploadPath(KEY, 'not-a-uuid', 60), { token: null })).status).toBe(404);
    expect((await api.request('GET', signUploadPath(KEY, '..%2Fsecret', 60), { token: null })).status).toBe(404);
    const id = stored(keyless.uploadsDir, Buffer.from('x'));
    expect((await keyless.request('GET', signUploadPath(KEY, id, 60), { token: null })).status).toBe(404);
  });
});
