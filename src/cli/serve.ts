import { homedir } from 'node:os';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { KilnError, errorMessage } from '../errors';
import { parseMemory, POLICIES, type Policy, type StepLimits } from '../runs/policy';

/**
 * `kiln serve` (API + reconciler + worker in one process), `kiln api` and `kiln worker`:
 * flags and environment into ServiceOptions; the process itself is assembled in bin/, which
 * injects `startService`.
 */

export interface ServiceOptions {
  api: boolean;
  worker: boolean;
  host: string;
  port: number;
  redisUrl: string;
  /** Holds the secret key file and uploaded contexts. */
  dataDir: string;
  /** The API a worker fetches uploaded contexts from when they are not in its data directory (`--api-url`, `KILN_API_URL`). */
  apiUrl?: string;
  /** Runs at once on this worker. */
  concurrency: number;
  /** Started network sandboxes the worker keeps for steps on the default bridge (`--warm-sandboxes`; 0: none). */
  warmSandboxes: number;
  platform: string;
  pool: string;
  /** The default run registry. */
  registry: string;
  /** Bootstraps an admin token at start (`KILN_ADMIN_TOKEN`). */
  adminToken?: string;
  /** Give steps the engine's socket. */
  dockerSocket: boolean;
  /**
   * Fetch contexts, poll git remotes and registries on private and loopback addresses (a
   * single-machine set-up; `--allow-private-sources`, `KILN_ALLOW_PRIVATE_SOURCES=1`).
   */
  allowPrivateSources: boolean;
  /** Seconds between two passes of the trigger pollers (each poll has its own interval). */
  pollTick: number;
  /** What runs' steps may ask of the host (`--policy`); a saved task may say otherwise. */
  policy: Policy;
  /** Per-step limits of every run (`--step-memory`, `--step-cpus`, `--step-pids`). */
  limits: StepLimits;
  /**
   * A port of its own for `GET /metrics` and `GET /healthz` (`--metrics-port`; 0: any free one),
   * for a worker, which has no API to be scraped on; none by default.
   */
  metricsPort?: number;
  /** The address that port listens on (`--metrics-host`); default 127.0.0.1. */
  metricsHost?: string;
}

export interface RunningService {
  /** The API's address, when this process serves it. */
  url?: string;
  /** The metrics endpoint's address (`--metrics-port`), when there is one. */
  metricsUrl?: string;
  /** Stops taking work, lets what runs finish within `graceMs`, then ends the rest. */
  stop(graceMs: number): Promise<void>;
}

export interface ServiceDeps {
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  startService?: (options: ServiceOptions) => Promise<RunningService>;
  /** Resolves on SIGTERM/SIGINT (bin/ wires the signals). */
  untilStopped?: () => Promise<string>;
  setExitCode: (code: number) => void;
  /** Ends the process at once (bin/ passes process.exit). */
  forceExit?: (code: number) => void;
}

/** A SIGTERM gives running runs this long to finish before they are stopped and re-queued. */
const SHUTDOWN_GRACE_MS = 20_000;
/**
 * After the grace period, tearing down and closing connections get this long: the process exits
 * within 28 s of a SIGTERM whatever hangs (RELIABILITY.md R3: <= 30 s, even with Redis down).
 */
const HARD_DEADLINE_EXTRA_MS = 8_000;

interface ServiceFlags {
  host: string;
  port: number;
  concurrency: number;
  warmSandboxes?: number;
  platform: string;
  pool: string;
  registry?: string;
  dataDir?: string;
  apiUrl?: string;
  dockerSocket: boolean;
  allowPrivateSources?: boolean;
  pollTick?: number;
  policy?: Policy;
  stepMemory?: number;
  stepCpus?: number;
  stepPids?: number;
  metricsPort?: number;
  metricsHost?: string;
}

function integer(min: number, max: number): (text: string) => number {
  return (text) => {
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < min || n > max) throw new KilnError('invalid_input', `"${text}" is not a whole number from ${min} to ${max}`);
    return n;
  };
}

function memoryOption(text: string): number {
  return parseMemory(text);
}

function cpusOption(text: string): number {
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || n <= 0 || n > 1024) throw new KilnError('invalid_input', `"${text}" is not a number of CPUs (e.g. 1.5)`);
  return n;
}

/** `--api-url`: an http(s) URL, without credentials, query or fragment (a path is kept as the base). */
function apiUrlOption(text: string | undefined): { apiUrl?: string } {
  if (text === undefined || text.trim() === '') return {};
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new KilnError('invalid_input', `--api-url "${text}" is not a URL`);
  }
  if (!['http:', 'https:'].includes(url.protocol) || url.username || url.password || url.search || url.hash) {
    throw new KilnError('invalid_input', `--api-url "${text}" must be an http(s) URL without credentials, query or fragment`);
  }
  return { apiUrl: url.href.replace(/\/+$/, '') };
}

/** `--metrics-port` and `--metrics-host`: the host alone is a mistake (nothing would listen). */
function metricsOptions(flags: Pick<ServiceFlags, 'metricsPort' | 'metricsHost'>): Pick<ServiceOptions, 'metricsPort' | 'metricsHost'> {
  if (flags.metricsPort === undefined) {
    if (flags.metricsHost !== undefined) throw new KilnError('invalid_input', '--metrics-host needs --metrics-port');
    return {};
  }
  return { metricsPort: flags.metricsPort, metricsHost: flags.metricsHost ?? '127.0.0.1' };
}

export function registerServiceCommands(program: Command, deps: ServiceDeps): void {
  const apiOptions = (cmd: Command): Command =>
    cmd
      .addOption(new Option('--host <address>', 'the address the API listens on').default('127.0.0.1'))
      .addOption(new Option('--port <port>', 'the API port').argParser(integer(0, 65535)).default(8080))
      .addOption(new Option('--poll-tick <seconds>', 'how often the trigger pollers look for git remotes and base images due a poll').argParser(integer(1, 300)).default(5))
      .addOption(
        new Option('--policy <policy>', "what steps may ask of the host: restricted (no privileged steps, host network or Docker socket; capabilities dropped) or trusted (as ACR allows); a saved task's own policy wins").choices([...POLICIES]).default('restricted'),
      )
      .addOption(new Option('--step-memory <size>', 'memory per step container, e.g. 2g (no swap)').argParser(memoryOption).default(2 * 1024 ** 3, '2g'))
      .addOption(new Option('--step-cpus <n>', 'CPUs per step container, e.g. 1.5').argParser(cpusOption).default(2))
      .addOption(new Option('--step-pids <n>', 'processes per step container, and per build (all of its RUN containers)').argParser(integer(16, 1_048_576)).default(1024));
  const workerOptions = (cmd: Command): Command =>
    cmd
      .addOption(new Option('--concurrency <n>', 'runs at once on this worker').argParser(integer(1, 64)).default(2))
      .addOption(
        new Option(
          '--warm-sandboxes <n>',
          "network sandboxes kept started while the worker is idle: a step on the default bridge that publishes no port joins one and starts ~150 ms sooner (its host name is then the sandbox's, not the step id); 0: none",
        )
          .argParser(integer(0, 64))
          .default(2),
      )
      .addOption(new Option('--platform <os/arch>', 'the platform this worker builds for; it takes only runs for it').default('linux/amd64'))
      .addOption(new Option('--pool <name>', 'the worker pool; it takes only runs for it').default('default'))
      .option('--no-docker-socket', 'do not give steps the Docker socket (steps that run docker need it)')
      .option('--api-url <url>', "the API's URL, to fetch uploaded contexts that are not in this host's data directory (default: $KILN_API_URL)")
      .addOption(
        new Option('--metrics-port <port>', 'serve GET /metrics (Prometheus: event-loop delay...) and GET /healthz on this port, without a token (0: any free port; off by default)').argParser(integer(0, 65535)),
      )
      .addOption(new Option('--metrics-host <address>', 'the address --metrics-port listens on (default: 127.0.0.1)'));
  const common = (cmd: Command): Command =>
    cmd
      .option('--registry <host>', 'the default run registry (default: $KILN_REGISTRY)')
      .option('--data-dir <dir>', 'where the secret key file and uploaded contexts live (default: $KILN_DATA_DIR or ~/.kiln)')
      .option('--allow-private-sources', 'let runs and trigger polls reach git remotes, tar URLs and registries on loopback and private addresses (default: $KILN_ALLOW_PRIVATE_SOURCES=1)');

  const start = async (parts: { api: boolean; worker: boolean }, flags: ServiceFlags): Promise<void> => {
    if (!deps.startService || !deps.untilStopped) throw new Error('this build of kiln cannot start a service');
    const options: ServiceOptions = {
      ...parts,
      host: flags.host ?? '127.0.0.1',
      port: flags.port ?? 8080,
      redisUrl: deps.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      dataDir: flags.dataDir ?? deps.env.KILN_DATA_DIR ?? join(homedir(), '.kiln'),
      ...apiUrlOption(flags.apiUrl ?? deps.env.KILN_API_URL),
      concurrency: flags.concurrency ?? 2,
      warmSandboxes: flags.warmSandboxes ?? 2,
      platform: flags.platform ?? 'linux/amd64',
      pool: flags.pool ?? 'default',
      registry: flags.registry ?? deps.env.KILN_REGISTRY ?? '',
      ...(deps.env.KILN_ADMIN_TOKEN ? { adminToken: deps.env.KILN_ADMIN_TOKEN } : {}),
      dockerSocket: flags.dockerSocket ?? true,
      allowPrivateSources: flags.allowPrivateSources ?? deps.env.KILN_ALLOW_PRIVATE_SOURCES === '1',
      pollTick: flags.pollTick ?? 5,
      policy: flags.policy ?? 'restricted',
      limits: { memoryBytes: flags.stepMemory ?? 2 * 1024 ** 3, cpus: flags.stepCpus ?? 2, pids: flags.stepPids ?? 1024 },
      ...metricsOptions(flags),
    };
    let service: RunningService;
    try {
      service = await deps.startService(options);
    } catch (err) {
      // Half-started (Redis gone while connecting, a port taken...): connections it opened would
      // keep the process alive doing nothing; end it so that a supervisor starts it again.
      deps.stderr.write(`kiln: could not start: ${errorMessage(err)}\n`);
      deps.forceExit?.(1);
      throw err;
    }
    const what = [parts.api ? `API on ${service.url}` : '', parts.worker ? `worker (${options.platform}, pool ${options.pool}, ${options.concurrency} at once)` : '']
      .filter(Boolean)
      .join(' and ');
    deps.stderr.write(`kiln: serving ${what}${service.metricsUrl ? `; metrics on ${service.metricsUrl}/metrics` : ''}\n`);
    const signal = await deps.untilStopped();
    deps.stderr.write(`kiln: ${signal}: stopping (running runs get ${SHUTDOWN_GRACE_MS / 1000} s to finish)\n`);
    // The hard deadline: whatever still hangs (a Redis that is gone, a stuck stream) is cut off.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), SHUTDOWN_GRACE_MS + HARD_DEADLINE_EXTRA_MS);
    });
    const outcome = await Promise.race([service.stop(SHUTDOWN_GRACE_MS).then(() => 'stopped' as const), deadline]);
    clearTimeout(timer);
    if (outcome === 'late') {
      deps.stderr.write('kiln: did not stop in time; exiting anyway\n');
      deps.setExitCode(1);
      deps.forceExit?.(1);
    }
  };

  common(workerOptions(apiOptions(program.command('serve').description('the API (with its reconciler and the triggers: webhooks, polls, timers) and a worker in one process: Kiln on one machine'))))
    .action((flags: ServiceFlags) => start({ api: true, worker: true }, flags));
  common(apiOptions(program.command('api').description('the API (with its reconciler and the triggers) alone; workers run elsewhere on the same Redis')))
    .action((flags: ServiceFlags) => start({ api: true, worker: false }, flags));
  common(workerOptions(program.command('worker').description('a worker alone: runs queued runs on the Docker Engine that DOCKER_HOST names')))
    .action((flags: ServiceFlags) => start({ api: false, worker: true }, flags));
}
