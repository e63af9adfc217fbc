import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { parse } from 'yaml';
import { registerServiceCommands, type ServiceOptions } from '../../src/cli/serve';

/** `kiln worker --api-url` / KILN_API_URL into ServiceOptions, with a fake startService. */

/** The ServiceOptions a command line starts the service with (a fake startService records them). */
async function startedWith(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<ServiceOptions> {
  let given: ServiceOptions | undefined;
  const program = new Command().exitOverride();
  registerServiceCommands(program, {
    stderr: { write: () => true } as unknown as NodeJS.WritableStream,
    env,
    startService: async (options) => {
      given = options;
      return { stop: async () => undefined };
    },
    untilStopped: async () => 'SIGTERM',
    setExitCode: () => undefined,
  });
  await program.parseAsync(argv, { from: 'user' });
  if (!given) throw new Error('not started');
  return given;
}

function workerOptions(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ServiceOptions> {
  return startedWith(['worker', ...args], env);
}

describe('kiln worker --api-url', () => {
  it('takes the flag, else KILN_API_URL, without a trailing slash; none by default', async () => {
    expect((await workerOptions(['--api-url', 'http://api.internal:8080/'])).apiUrl).toBe('http://api.internal:8080');
    expect((await workerOptions([], { KILN_API_URL: 'https://kiln.example/base/' })).apiUrl).toBe('https://kiln.example/base');
    expect((await workerOptions(['--api-url', 'http://a:1'], { KILN_API_URL: 'http://b:2' })).apiUrl).toBe('http://a:1');
    expect((await workerOptions([])).apiUrl).toBeUndefined();
  });

  it('refuses a URL that is not http(s), or carries credentials or a query', async () => {
    await expect(workerOptions(['--api-url', 'nope'])).rejects.toThrow(/is not a URL/);
    await expect(workerOptions(['--api-url', 'ftp://h/'])).rejects.toThrow(/http\(s\) URL/);
    await expect(workerOptions(['--api-url', 'http://u:p@h/'])).rejects.toThrow(/without credentials/);
    await expect(workerOptions(['--api-url', 'http://h/?x=1'])).rejects.toThrow(/without credentials, query/);
  });
});

describe('compose.yaml', () => {
  // The compose file is not run here (no compose on these machines): its commands and
  // environment are checked against the CLI instead, so the two cannot drift apart.
  const compose = parse(readFileSync(join(__dirname, '..', '..', 'compose.yaml'), 'utf8')) as {
    services: Record<string, { command?: string[]; environment?: Record<string, string>; image?: string }>;
  };

  async function started(service: string): Promise<ServiceOptions> {
    const spec = compose.services[service];
    if (!spec?.command) throw new Error(`no command for ${service}`);
    // ${VAR:?message} is compose's; the CLI sees the value.
    const env = Object.fromEntries(Object.entries(spec.environment ?? {}).map(([k, v]) => [k, v.replace(/^\$\{[^}]*\}$/, 'from-the-environment')]));
    return startedWith(spec.command, env);
  }

  it('starts the API on all of its container interfaces with the shared data volume, and a worker on the same Redis', async () => {
    expect(compose.services.api?.image).toBe('kiln');
    expect(await started('api')).toMatchObject({ api: true, worker: false, host: '0.0.0.0', port: 8080, dataDir: '/data', redisUrl: 'redis://redis:6379', registry: '127.0.0.1:5000', adminToken: 'from-the-environment' });
    expect(await started('worker')).toMatchObject({ api: false, worker: true, concurrency: 2, dataDir: '/data', redisUrl: 'redis://redis:6379' });
  });
});

describe('the service options and start-up', () => {
  it('defaults to the restricted policy with step limits, and takes the flags and KILN_ALLOW_PRIVATE_SOURCES', async () => {
    expect(await startedWith(['serve'])).toMatchObject({ policy: 'restricted', limits: { memoryBytes: 2 * 1024 ** 3, cpus: 2, pids: 1024 }, allowPrivateSources: false, pollTick: 5 });
    expect(await startedWith(['api', '--policy', 'trusted', '--step-memory', '512m', '--step-cpus', '0.5', '--step-pids', '64', '--poll-tick', '1'], { KILN_ALLOW_PRIVATE_SOURCES: '1' })).toMatchObject({
      policy: 'trusted',
      limits: { memoryBytes: 512 * 1024 ** 2, cpus: 0.5, pids: 64 },
      allowPrivateSources: true,
      pollTick: 1,
    });
    await expect(startedWith(['serve', '--policy', 'lax'])).rejects.toThrow();
    await expect(startedWith(['worker', '--warm-sandboxes', 'many'])).rejects.toThrow(/whole number from 0 to 64/);
  });

  it('keeps two warm network sandboxes on a worker unless told otherwise', async () => {
    expect(await startedWith(['serve'])).toMatchObject({ warmSandboxes: 2 });
    expect(await startedWith(['worker', '--warm-sandboxes', '0'])).toMatchObject({ warmSandboxes: 0 });
    expect(await startedWith(['worker', '--warm-sandboxes', '5'])).toMatchObject({ warmSandboxes: 5 });
    await expect(startedWith(['serve', '--step-memory', 'lots'])).rejects.toThrow(/memory/);
  });

  it('ends the process when the service cannot start (nothing half-started stays alive)', async () => {
    const exits: number[] = [];
    const lines: string[] = [];
    const program = new Command().exitOverride();
    registerServiceCommands(program, {
      stderr: { write: (text: string) => lines.push(text) } as unknown as NodeJS.WritableStream,
      env: {},
      startService: async () => {
        throw new Error('Connection is closed.');
      },
      untilStopped: async () => 'SIGTERM',
      setExitCode: () => undefined,
      forceExit: (code) => exits.push(code),
    });
    await expect(program.parseAsync(['worker'], { from: 'user' })).rejects.toThrow('Connection is closed.');
    expect(exits).toEqual([1]);
    expect(lines.join('')).toContain('kiln: could not start: Connection is closed.');
  });
});
