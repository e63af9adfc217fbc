import { gzipSync } from 'node:zlib';
import type { Readable } from 'node:stream';
import { fetchTarContext, SourceFetchError, type TarFetchOptions } from '../../src/source';
import { listTar, makeTar, rejection } from './helpers/files';
import { serveHttp, serveSilence, type LocalServer } from './helpers/servers';

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}


describe('fetchTarContext', () => {
  let server: LocalServer;
  let tar: Buffer;
  const MB = 1024 * 1024;
  const local: TarFetchOptions = { allowSchemes: ['http'], allowPrivateAddresses: true };
  const seen: string[] = [];

  beforeAll(async () => {
    tar = await makeTar([
      { name: 'Dockerfile', content: 'FROM busybox\n' },
      { name: 'src', type: 'directory' },
      { name: 'src/main.sh', content: 'echo hi\n', mode: 0o755 },
    ]);
    const tgz = gzipSync(tar);
    const bomb = gzipSync(Buffer.alloc(5 * MB));
    server = await serveHttp((req, res) => {
      seen.push(`${req.url} ${req.headers.authorization ?? ''}`);
      switch (req.url) {
        case '/ctx.tar':
          res.writeHead(200, { 'content-type': 'application/x-tar', 'content-length': tar.length }).end(tar);
          return;
        case '/ctx.tar.gz':
          res.writeHead(200, { 'content-type': 'application/gzip' }).end(tgz);
          return;
        case '/redirect':
          res.writeHead(302, { location: 'http://user:pw@127.0.0.1/ctx.tar' }).end();
          return;
        case '/big-length':
          res.writeHead(200, { 'content-length': 3 * MB });
          res.write(Buffer.alloc(1024));
          return; // never finishes: the client must not wait for it
        case '/big-chunked': {
          res.writeHead(200);
          let sent = 0;
          const more = (): void => {
            while (sent < 3 * MB) {
              sent += 64 * 1024;
              if (!res.write(Buffer.alloc(64 * 1024))) return void res.once('drain', more);
            }
            res.end();
          };
          res.on('error', () => undefined);
          more();
          return;
        }
        case '/bomb.gz':
          res.writeHead(200).end(bomb);
          return;
        case '/private.tar':
          if (req.headers.authorization !== `Basic ${Buffer.from('kiln:tar-s3cret').toString('base64')}`) {
            res.writeHead(401).end();
            return;
          }
          res.writeHead(200).end(tar);
          return;
        case '/stall':
          res.writeHead(200);
          res.write(tar.subarray(0, 512));
          return; // then silence
        case '/teapot':
          res.writeHead(418).end();
          return;
        default:
          res.writeHead(404).end('not found');
      }
    });
  });

  afterAll(async () => {
    await server.close();
  });

  it('returns a .tar as is', async () => {
    const body = await readAll(await fetchTarContext(`${server.url}/ctx.tar`, local));
    expect(body.equals(tar)).toBe(true);
  });

  it('returns a .tar.gz as a plain tar stream', async () => {
    const stream = await fetchTarContext(`${server.url}/ctx.tar.gz`, local);
    const body = await readAll(stream);
    expect(body.equals(tar)).toBe(true);
    const entries = await listTar([body]);
    expect(entries.map((e) => `${e.name} ${e.type}`)).toEqual(['Dockerfile file', 'src directory', 'src/main.sh file']);
  });

  it('sends URL credentials as Basic auth', async () => {
    const body = await readAll(await fetchTarContext(`http://kiln:tar-s3cret@127.0.0.1:${server.port}/private.tar`, local));
    expect(body.equals(tar)).toBe(true);
    const err = await rejection(fetchTarContext(`http://kiln:wrong-s3cret@127.0.0.1:${server.port}/private.tar`, local));
    expect((err as SourceFetchError).reason).toBe('auth');
    expect(err.message).not.toMatch(/s3cret/);
    expect(err.message).toMatch(/http:\/\/\*\*\*@127\.0\.0\.1/);
  });

  it('reports a 404 as not_found and another status as failed', async () => {
    const missing = await rejection(fetchTarContext(`${server.url}/missing.tar`, local));
    expect(missing).toBeInstanceOf(SourceFetchError);
    expect((missing as SourceFetchError).reason).toBe('not_found');
    expect(missing.message).toMatch(/answered 404/);
    const teapot = await rejection(fetchTarContext(`${server.url}/teapot`, local));
    expect((teapot as SourceFetchError).reason).toBe('failed');
  });

  it('refuses a redirect without following it', async () => {
    const before = seen.length;
    const err = await rejection(fetchTarContext(`${server.url}/redirect`, local));
    expect(err.code).toBe('invalid_input');
    expect(err.message).toMatch(/redirects \(302 to http:\/\/\*\*\*@127\.0\.0\.1\/ctx\.tar\); redirects are not followed/);
    expect(seen.slice(before)).toEqual(['/redirect ']);
  });

  it('refuses a Content-Length over the cap before reading the body', async () => {
    const err = await rejection(fetchTarContext(`${server.url}/big-length`, { ...local, maxBytes: MB }));
    expect(err.code).toBe('invalid_input');
    expect(err.message).toMatch(/is 3145728 bytes, over the cap of 1 MiB/);
  });

  it('fails the stream when a body without length passes the cap', async () => {
    const stream = await fetchTarContext(`${server.url}/big-chunked`, { ...local, maxBytes: MB });
    const err = await rejection(readAll(stream));
    expect(err.code).toBe('invalid_input');
    expect(err.message).toMatch(/the download is over the cap of 1 MiB/);
  });

  it('fails the stream when the decompressed body passes the cap (gzip bomb)', async () => {
    const stream = await fetchTarContext(`${server.url}/bomb.gz`, { ...local, maxBytes: MB });
    const err = await rejection(readAll(stream));
    expect(err.message).toMatch(/the decompressed tar is over the cap of 1 MiB/);
  });

  it('times out on a server that never answers, and on a body that stalls', async () => {
    const silent = await serveSilence();
    try {
      const started = Date.now();
      const err = await rejection(fetchTarContext(`${silent.url}/ctx.tar`, { ...local, timeoutMs: 500 }));
      expect((err as SourceFetchError).reason).toBe('timeout');
      expect(Date.now() - started).toBeLessThan(2000);
    } finally {
      await silent.close();
    }
    const stream = await fetchTarContext(`${server.url}/stall`, { ...local, timeoutMs: 500 });
    const stalled = await rejection(readAll(stream));
    expect((stalled as SourceFetchError).reason).toBe('timeout');
  });

  it('stops when the caller aborts, before or during the download', async () => {
    const controller = new AbortController();
    controller.abort();
    expect(((await rejection(fetchTarContext(`${server.url}/ctx.tar`, { ...local, signal: controller.signal }))) as SourceFetchError).reason).toBe('canceled');
    const during = new AbortController();
    const stream = await fetchTarContext(`${server.url}/stall`, { ...local, signal: during.signal });
    setTimeout(() => during.abort(), 100);
    expect(((await rejection(readAll(stream))) as SourceFetchError).reason).toBe('canceled');
  });

  it('refuses bad URLs, other schemes and private addresses (SSRF) before connecting', async () => {
    const before = seen.length;
    const cases: [string, TarFetchOptions, RegExp][] = [
      [`${server.url}/ctx.tar`, {}, /scheme "http"; allowed: https/],
      [`${server.url}/ctx.tar`, { allowSchemes: ['http'] }, /loopback, private, link-local or reserved address/],
      ['http://169.254.169.254/latest/meta-data/', { allowSchemes: ['http'] }, /reserved address/],
      [`http://localhost:${server.port}/ctx.tar`, { allowSchemes: ['http'] }, /it resolves to (127\.0\.0\.1|::1)/],
      ['file:///etc/passwd', { allowSchemes: ['http', 'https'] }, /scheme "file"/],
      ['-https://example.com/x.tar', {}, /starts with "-"/],
      ['git://example.com/x.tar', { allowSchemes: ['git'] }, /http\(s\) only/],
    ];
    for (const [url, options, message] of cases) {
      const err = await rejection(fetchTarContext(url, options));
      expect(err.code).toBe('invalid_input');
      expect(err.message).toMatch(message);
    }
    expect(seen.length).toBe(before);
  });
});
