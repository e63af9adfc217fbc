import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';

/** A server bound to 127.0.0.1 on a free port, with its base URL and a close() that ends every connection. */
export interface LocalServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** An HTTP server on 127.0.0.1 serving `handler`. */
export async function serveHttp(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<LocalServer> {
  const server = createServer(handler);
  return listen(server);
}

/** A TCP server on 127.0.0.1 that accepts connections and never says a word: for timeout tests. */
export async function serveSilence(): Promise<LocalServer> {
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

async function listen(server: Server): Promise<LocalServer> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface GitServerOptions {
  /** Speak only protocol v0 (ignore the client's Git-Protocol header), like an old server. */
  protocolV0?: boolean;
  /** Paths under `/private/` need Basic auth with this user and password. */
  basicAuth?: { user: string; password: string };
}

/**
 * Serves the bare repositories under `projectRoot` over git's smart HTTP protocol by running
 * `git http-backend` as a CGI program for each request (what a real git host does).
 * `/private/<repo>` serves `<repo>` behind Basic auth when `basicAuth` is set.
 */
export async function serveGitHttp(projectRoot: string, options: GitServerOptions = {}): Promise<LocalServer & { requests: string[]; authorizations: string[] }> {
  const requests: string[] = [];
  const authorizations: string[] = [];
  const server = await serveHttp((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    let pathInfo = decodeURIComponent(url.pathname);
    if (pathInfo.startsWith('/private/')) {
      const expected = options.basicAuth && `Basic ${Buffer.from(`${options.basicAuth.user}:${options.basicAuth.password}`).toString('base64')}`;
      authorizations.push(String(req.headers.authorization ?? ''));
      if (!expected || req.headers.authorization !== expected) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="kiln-test"' }).end('unauthorized');
        return;
      }
      pathInfo = pathInfo.slice('/private'.length);
    }
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      GIT_PROJECT_ROOT: projectRoot,
      GIT_HTTP_EXPORT_ALL: '1',
      GIT_CONFIG_NOSYSTEM: '1',
      HOME: projectRoot,
      REQUEST_METHOD: req.method ?? 'GET',
      PATH_INFO: pathInfo,
      QUERY_STRING: url.search.replace(/^\?/, ''),
      CONTENT_TYPE: req.headers['content-type'] ?? '',
      REMOTE_ADDR: '127.0.0.1',
      GIT_PROTOCOL: options.protocolV0 ? '' : String(req.headers['git-protocol'] ?? ''),
      HTTP_CONTENT_ENCODING: String(req.headers['content-encoding'] ?? ''),
    };
    const cgi = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'ignore'] });
    req.pipe(cgi.stdin);
    cgi.stdin.on('error', () => undefined);
    let head = Buffer.alloc(0);
    let headersDone = false;
    cgi.stdout.on('data', (chunk: Buffer) => {
      if (headersDone) {
        res.write(chunk);
        return;
      }
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      headersDone = true;
      let status = 200;
      for (const line of head.subarray(0, end).toString('latin1').split('\r\n')) {
        const colon = line.indexOf(':');
        const name = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (name.toLowerCase() === 'status') status = parseInt(value, 10);
        else res.setHeader(name, value);
      }
      res.statusCode = status;
      res.write(head.subarray(end + 4));
    });
    cgi.on('close', () => {
      if (!headersDone) res.statusCode = 500;
      res.end();
    });
  });
  return { ...server, requests, authorizations };
}
