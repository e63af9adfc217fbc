import { Command } from 'commander';
import { registerServiceCommands, type ServiceOptions } from '../../src/cli/serve';

/** `kiln worker --api-url` / KILN_API_URL into ServiceOptions, with a fake startService. */

async function workerOptions(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ServiceOptions> {
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
  await program.parseAsync(['worker', ...args], { from: 'user' });
  if (!given) throw new Error('not started');
  return given;
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
