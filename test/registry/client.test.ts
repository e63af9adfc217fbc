import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseImageRef } from '../../src/domain/image-ref';
import { RegistryClient, RegistryError, parseChallenge } from '../../src/registry';
import { docker } from '../helpers/docker';

const REGISTRY = '127.0.0.1:5000';

describe('RegistryClient against the local registry', () => {
  it('gives the digest a tag points to, the one the engine recorded when it pushed it', async () => {
    const client = new RegistryClient();
    const digest = await client.manifestDigest(parseImageRef(`${REGISTRY}/busybox:latest`));
    const inspected = await docker.getImage(`${REGISTRY}/busybox:latest`).inspect();
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(inspected.RepoDigests).toContain(`${REGISTRY}/busybox@${digest}`);
    expect(await client.manifestDigest(parseImageRef(`${REGISTRY}/busybox@${digest}`))).toBe(digest);
  });

  it('a missing tag or repository is undefined; an unreachable registry a clear error', async () => {
    const client = new RegistryClient({ timeoutMs: 2000 });
    expect(await client.manifestDigest(parseImageRef(`${REGISTRY}/busybox:no-such-tag`))).toBeUndefined();
    expect(await client.manifestDigest(parseImageRef(`${REGISTRY}/no/such-repo:1`))).toBeUndefined();
    await expect(client.manifestDigest(parseImageRef('127.0.0.1:1/busybox:1'))).rejects.toThrow(/cannot reach http:\/\/127\.0\.0\.1:1/);
  });
});

describe('RegistryClient auth', () => {
  // A registry that wants a bearer token from its token service (distribution's token spec), and
  // the token service, which wants the user's basic credentials and hands out short tokens.
  const DIGEST = `sha256:${'a'.repeat(64)}`;
  const issued: string[] = [];
  let tokenRequests = 0;
  let registry: Server;
  let auth: Server;
  let registryHost = '';
  let authUrl = '';

  function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Server> {
    return new Promise((resolve) => {
      const server = createServer(handler);
      server.listen(0, '127.0.0.1', () => resolve(server));
    });
  }

  beforeAll(async () => {
    auth = await listen((req, res) => {
      tokenRequests++;
      const url = new URL(req.url ?? '/', 'http://x');
      const basic = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString();
      if (basic !== 'kiln:s3cret' || url.searchParams.get('service') !== 'test-registry' || url.searchParams.get('scope') !== 'repository:team/app:pull') {
        res.writeHead(401).end();
        return;
      }
      const token = `t${issued.length}`;
      issued.push(token);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300 }));
    });
    authUrl = `http://127.0.0.1:${(auth.address() as AddressInfo).port}/token`;
    registry = await listen((req, res) => {
      const bearer = (req.headers.authorization ?? '').replace(/^Bearer /, '');
      if (!issued.includes(bearer)) {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="${authUrl}",service="test-registry",scope="repository:team/app:pull"` }).end();
        return;
      }
      if (req.url === '/v2/team/app/manifests/1.0') res.writeHead(200, { 'docker-content-digest': DIGEST }).end();
      else res.writeHead(404).end();
    });
    registryHost = `127.0.0.1:${(registry.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((r) => registry.close(r));
    await new Promise((r) => auth.close(r));
  });

  it('follows a Bearer challenge with the login, and reuses the token until it expires', async () => {
    const client = new RegistryClient({ loginFor: (host) => (host === registryHost ? { username: 'kiln', password: 's3cret' } : undefined) });
    const before = tokenRequests;
    expect(await client.manifestDigest(parseImageRef(`${registryHost}/team/app:1.0`))).toBe(DIGEST);
    expect(await client.manifestDigest(parseImageRef(`${registryHost}/team/app:1.0`))).toBe(DIGEST);
    expect(tokenRequests - before).toBe(1);
    expect(await client.manifestDigest(parseImageRef(`${registryHost}/team/app:2.0`))).toBeUndefined();
  });

  it('a wrong login is an error that names the token service, not a missing image', async () => {
    const client = new RegistryClient({ loginFor: () => ({ username: 'kiln', password: 'wrong' }) });
    const err = await client.manifestDigest(parseImageRef(`${registryHost}/team/app:1.0`)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as RegistryError).message).toMatch(/^token service http:\/\/127\.0\.0\.1:\d+: 401/);
  });

  it('parses challenges, quoted or not', () => {
    expect(parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"')).toEqual({
      scheme: 'bearer',
      params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' },
    });
    expect(parseChallenge('Basic realm=registry')).toEqual({ scheme: 'basic', params: { realm: 'registry' } });
  });
});
