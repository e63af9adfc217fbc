import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A unix-socket proxy in front of the Docker Engine's socket, for cutting the engine off without
 * touching it (RELIABILITY's "fault proxy"): `cut()` drops every connection and refuses new ones,
 * as a dockerd that is restarting would; `restore()` lets them through again.
 */
export class SocketProxy {
  readonly path: string;
  private readonly dir: string;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private down = false;

  private constructor(private readonly target: string) {
    this.dir = mkdtempSync(join(tmpdir(), 'kiln-proxy-'));
    this.path = join(this.dir, 'docker.sock');
    this.server = createServer((client) => this.accept(client));
  }

  static async started(target = '/var/run/docker.sock'): Promise<SocketProxy> {
    const proxy = new SocketProxy(target);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(proxy.path, () => resolve());
    });
    return proxy;
  }

  /** Drops every open connection and refuses new ones until restore(). */
  cut(): void {
    this.down = true;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  restore(): void {
    this.down = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private accept(client: Socket): void {
    if (this.down) {
      client.destroy();
      return;
    }
    const upstream = createConnection(this.target);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }
}
