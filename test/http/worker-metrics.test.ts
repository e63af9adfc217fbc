import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Command } from 'commander';
import { main } from '../../src/cli/main';
import { registerServiceCommands, type RunningService, type ServiceOptions } from '../../src/cli/serve';
import { createMetrics, metricsListener, type KilnMetrics } from '../../src/http/metrics';

/**
 * The worker's metrics endpoint without a worker: `--metrics-port`/`--metrics-host` into
 * ServiceOptions (a fake startService), the listener on a real HTTP server, and the event-loop
 * delay gauge measuring a loop this test blocks. test/integration/worker-metrics.test.ts starts a
 * real worker with it.
 */

/** What a command line starts the service with, and what it printed. */
async function started(argv: string[], service: RunningService = { stop: async () => undefined }): Promise<{ options: ServiceOptions; stderr: string }> {
  let given: ServiceOptions | undefined;
  let stderr = '';
  const program = new Command().exitOverride();
  registerServiceCommands(program, {
    stderr: { write: (text: string) => (stderr += text) } as unknown as NodeJS.WritableStream,
    env: {},
    startService: async (options) => {
      given = options;
      return service;
    },
    untilStopped: async () => 'SIGTERM',
    setExitCode: () => undefined,
  });
  await program.parseAsync(argv, { from: 'user' });
  if (!given) throw new Error('not started');
  return { options: given, stderr };
}

describe('kiln worker --metrics-port / --metrics-host', () => {
  it('is off by default; the port alone listens on 127.0.0.1; the host is taken with it', async () => {
    const none = (await started(['worker'])).options;
    expect([none.metricsPort, none.metricsHost]).toEqual([undefined, undefined]);
    expect((await started(['worker', '--metrics-port', '9464'])).options).toMatchObject({ metricsPort: 9464, metricsHost: '127.0.0.1' });
    expect((await started(['worker', '--metrics-port', '0', '--metrics-host', '0.0.0.0'])).options).toMatchObject({ metricsPort: 0, metricsHost: '0.0.0.0' });
    // `kiln serve` has the worker's flags too.
    expect((await started(['serve', '--metrics-port', '9465'])).options).toMatchObject({ api: true, worker: true, metricsPort: 9465 });
  });

  it('refuses a port out of range and a host without a port', async () => {
    await expect(started(['worker', '--metrics-port', '70000'])).rejects.toThrow(/whole number from 0 to 65535/);
    await expect(started(['worker', '--metrics-port', 'x'])).rejects.toThrow(/whole number/);
    await expect(started(['worker', '--metrics-host', '127.0.0.1'])).rejects.toThrow('--metrics-host needs --metrics-port');
  });

  it('says where the metrics are in its serving line', async () => {
    const { stderr } = await started(['worker', '--metrics-port', '0'], { metricsUrl: 'http://127.0.0.1:41234', stop: async () => undefined });
    expect(stderr).toMatch(/^kiln: serving worker \(linux\/amd64, pool default, 2 at once\); metrics on http:\/\/127\.0\.0\.1:41234\/metrics$/m);
  });

  it('documents both flags in `kiln worker --help`', async () => {
    let out = '';
    const code = await main(['worker', '--help'], {
      stdout: { write: (s: string) => (out += s) } as unknown as NodeJS.WritableStream,
      stderr: { write: () => true } as unknown as NodeJS.WritableStream,
      env: {},
      now: () => new Date(),
    });
    expect(code).toBe(0);
    expect(out).toMatch(/--metrics-port <port>\s+serve GET \/metrics[^]*\(0:\s+any\s+free\s+port;\s+off\s+by\s+default\)/);
    expect(out).toMatch(/--metrics-host <address>\s+the address --metrics-port listens on \(default:\s+127\.0\.0\.1\)/);
  });
});

describe('metricsListener and the event-loop delay gauge', () => {
  let metrics: KilnMetrics;
  let stop: () => void;
  let server: Server;
  let base: string;

  beforeEach(async () => {
    metrics = createMetrics();
    stop = metrics.watchEventLoop({ windowMs: 1000 });
    server = createServer(metricsListener(metrics));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterEach(async () => {
    stop();
    await new Promise((resolve) => server.close(resolve));
  });

  /** The gauge's value for a quantile in a scrape, or undefined when the series is absent. */
  const gauge = (text: string, quantile: string): number | undefined => {
    const m = new RegExp(`^kiln_event_loop_delay_seconds\\{quantile="${quantile.replace('.', '\\.')}"\\} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };

  it('answers /healthz, /metrics (Prometheus text), 404 elsewhere and 405 for other methods', async () => {
    const health = await fetch(`${base}/healthz`);
    expect([health.status, await health.json()]).toEqual([200, { status: 'ok' }]);
    const scrape = await fetch(`${base}/metrics`);
    expect(scrape.status).toBe(200);
    expect(scrape.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(await scrape.text()).toContain('# TYPE kiln_event_loop_delay_seconds gauge');
    expect((await fetch(`${base}/v1/runs`)).status).toBe(404);
    const post = await fetch(`${base}/metrics`, { method: 'POST' });
    expect([post.status, post.headers.get('allow')]).toEqual([405, 'GET, HEAD']);
  });

  it('shows a 300 ms block of the loop as the largest delay of its window, and p99 of the same window', async () => {
    // Early in the first window (a block right at its end could be counted in the next one).
    await new Promise((r) => setTimeout(r, 100));
    const until = Date.now() + 300;
    while (Date.now() < until) {
      // Busy: nothing else runs on this loop meanwhile.
    }
    await new Promise((r) => setTimeout(r, 1200));
    const text = await (await fetch(`${base}/metrics`)).text();
    const max = gauge(text, '1');
    const p99 = gauge(text, '0.99');
    const p50 = gauge(text, '0.5');
    expect(max).toBeGreaterThanOrEqual(0.29);
    expect(max).toBeLessThan(1);
    // One long sample among ~70 of 10 ms: p50 stays at the sampling interval.
    expect(p50).toBeGreaterThanOrEqual(0.009);
    expect(p50).toBeLessThan(0.05);
    expect(p99).toBeGreaterThanOrEqual(p50 as number);
    expect(p99).toBeLessThanOrEqual(max as number);
  });

  it('stops: the series goes and a second watch is possible', async () => {
    stop();
    expect(await (await fetch(`${base}/metrics`)).text()).not.toContain('kiln_event_loop_delay_seconds');
    stop = metrics.watchEventLoop({ windowMs: 1000 });
    expect(() => metrics.watchEventLoop()).toThrow(/already been registered/);
  });
});
