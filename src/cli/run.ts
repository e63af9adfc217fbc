import { resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { Backend } from '../backend/types';
import type { BuildContext } from '../domain/plan';
import type { RunResult } from '../domain/run-result';
import { KilnError, errorMessage } from '../errors';
import { parseContext } from '../plan';
import { executeRun } from '../runs/execute';
import { dockerConfigLogins, mergeLogins, parseCredsFlags } from '../runs/logins';
import { isDeadLocalOwner } from '../runs/local-owner';
import { confinementOf, policyViolations, POLICIES, type Policy } from '../runs/policy';
import { hasErrors } from '../runs/prepare';
import { QUICK_BUILD_FILE, quickBuildTask } from '../runs/quick-build';
import { makeSecretResolver } from '../runs/secrets';
import { buildRemote, LOCAL_ONLY_FLAGS, runRemote } from './client/remote-run';
import type { ClientDeps } from './client/common';
import { printDiagnostics } from './diagnostics';
import { formatSummary, makeEventPrinter } from './run-output';
import { newRunId, prepareFromFlags, type TaskFlags, type TaskInputDeps } from './task-input';

/** `kiln run` and `kiln build`: run a task file (or a quick build) here, on the local Docker Engine. */

export interface RunCommandDeps {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  cwd: string;
  input: Omit<TaskInputDeps, 'resolveSecrets' | 'content'>;
  createBackend: () => Promise<Backend>;
  /** Calls `handler` on Ctrl-C / SIGTERM; returns a function that stops listening. */
  onInterrupt?: (handler: () => void) => () => void;
  setExitCode: (code: number) => void;
}

export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_BAD_INPUT = 2;

interface RunFlags extends TaskFlags {
  secret: string[];
  creds: string[];
  output: 'text' | 'json';
  maxParallel?: number;
  timeout: number;
  dockerSocket: boolean;
  policy: Policy;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function positiveInt(max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`must be a whole number from 1 to ${max}`);
    return n;
  };
}

function runOptions(cmd: Command): Command {
  return cmd
    .option('--registry <host>', 'the run registry for $Registry, .Run.Registry and quick-build tags (default: $KILN_REGISTRY)')
    .option('--secret <id=value>', 'the value of a secret the task declares (repeatable)', collect, [])
    .option('--creds <host=user:password>', 'a registry login for pulls and pushes (repeatable; a local run also reads ~/.docker/config.json)', collect, [])
    .addOption(new Option('-o, --output <format>', 'text: a log and a summary; json: the run document on stdout, the log on stderr').choices(['text', 'json']).default('text'))
    .option('--max-parallel <n>', 'run at most this many steps at once (default: no limit; local runs only)', positiveInt(1000))
    .option('--timeout <seconds>', "the run timeout (with --server, the server's default unless given)", positiveInt(28800), 3600)
    .option('--no-docker-socket', 'do not give steps the Docker socket (steps that run docker need it; local runs only)')
    .addOption(
      new Option('--policy <policy>', 'trusted: steps may do what ACR allows; restricted: no privileged steps, host network or Docker socket, capabilities dropped (local runs only; a server applies its own)')
        .choices([...POLICIES])
        .default('trusted'),
    )
    .option('--id <run-id>', 'the run id for $ID and .Run.ID (default: a new id; local runs only)')
    .option('--server <url>', 'run on this Kiln server instead of the local Docker Engine (a context directory is uploaded)')
    .option('--token <token>', 'with --server: the API token (default: $KILN_TOKEN)')
    .option('--no-wait', 'with --server: print the run id and exit without waiting')
    .option('--no-logs', 'with --server: wait for the outcome without printing the log');
}

interface ServerRunFlags {
  server?: string;
  token?: string;
  wait: boolean;
  logs: boolean;
}

/**
 * Which way the command goes: to the server named by `--server`, or here. `KILN_SERVER` alone does
 * not send a run away: `kiln run` stays the local run unless asked. Flags that mean something on
 * only one side are refused on the other.
 */
function serverFlags(cmd: Command, flags: ServerRunFlags): { remote: boolean; timeout?: number } {
  const given = (name: string): boolean => cmd.getOptionValueSource(name) === 'cli';
  if (flags.server === undefined) {
    const needsServer = [['token', '--token'], ['wait', '--no-wait'], ['logs', '--no-logs']].find(([name]) => given(name));
    if (needsServer) throw new KilnError('invalid_input', `${needsServer[1]} needs --server`);
    return { remote: false };
  }
  const localOnly = Object.entries(LOCAL_ONLY_FLAGS).find(([name]) => given(name));
  if (localOnly) throw new KilnError('invalid_input', `${localOnly[1]} applies to local runs only, not with --server`);
  return { remote: true, timeout: given('timeout') ? (cmd.getOptionValue('timeout') as number) : undefined };
}

/** A local directory, or a git URL (`https://host/repo.git#ref:subdir`) or an http(s) tar URL. */
function runContext(text: string | undefined, cwd: string): BuildContext | undefined {
  if (text === undefined) return undefined;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text) || text.startsWith('git@')) {
    const errors: string[] = [];
    const context = parseContext(text, errors);
    if (!context) throw new KilnError('invalid_input', errors.join('; '));
    return context;
  }
  return { kind: 'workspace', path: resolve(cwd, text) };
}

async function runTask(flags: RunFlags, contextArg: string | undefined, deps: RunCommandDeps, content?: string): Promise<void> {
  const runId = flags.id ?? newRunId();
  const provided: Record<string, string> = {};
  for (const s of flags.secret) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new KilnError('invalid_input', `--secret "${s.replace(/=.*/, '=***')}" must have the form ID=VALUE`);
    provided[s.slice(0, eq)] = s.slice(eq + 1);
  }
  const logins = mergeLogins(parseCredsFlags(flags.creds), await dockerConfigLogins(deps.env));
  const context = runContext(contextArg, deps.cwd);

  const prepared = await prepareFromFlags(
    { ...flags, id: runId },
    { ...deps.input, resolveSecrets: makeSecretResolver({ provided, env: deps.env }), content },
  );
  printDiagnostics(prepared.diagnostics, deps.stderr);
  if (hasErrors(prepared.diagnostics) || !prepared.plan) {
    deps.setExitCode(EXIT_BAD_INPUT);
    return;
  }
  const plan = prepared.plan;
  const denied = policyViolations(plan, flags.policy);
  if (denied.length > 0) {
    for (const v of denied) deps.stderr.write(`${flags.file}: ${v.key}: ${v.message}\n`);
    deps.setExitCode(EXIT_BAD_INPUT);
    return;
  }
  const log = flags.output === 'json' ? deps.stderr : deps.stdout;
  const controller = new AbortController();
  let interrupts = 0;
  const stopListening = deps.onInterrupt?.(() => {
    interrupts++;
    if (interrupts === 1) {
      deps.stderr.write('kiln: canceling the run (again to quit without cleaning up)\n');
      controller.abort();
    } else {
      process.exit(130);
    }
  });
  let result: RunResult;
  const backend = await deps.createBackend();
  // What crashed `kiln run` processes on this host left behind goes, alongside this run.
  const sweeping = backend.sweep(({ owner }) => isDeadLocalOwner(owner)).catch((err: unknown) => {
    deps.stderr.write(`kiln: could not remove what earlier runs left behind: ${errorMessage(err)}\n`);
    return 0;
  });
  try {
    result = await executeRun({
      runId,
      backend,
      plan,
      context,
      registryLogins: logins,
      secrets: Object.values(prepared.secretValues),
      dockerSocket: flags.dockerSocket && flags.policy === 'trusted',
      confinement: confinementOf(flags.policy),
      timeoutSeconds: flags.timeout,
      maxParallel: flags.maxParallel,
      signal: controller.signal,
      onEvent: makeEventPrinter(log, plan.steps.map((s) => s.id)),
      // A run on one's own machine is trusted: it may fetch contexts from local and private hosts.
      network: { allowSchemes: ['https', 'http'], allowPrivateAddresses: true },
    });
  } finally {
    stopListening?.();
    await sweeping;
  }
  if (flags.output === 'json') deps.stdout.write(JSON.stringify(result, null, 2) + '\n');
  else log.write('\n' + formatSummary(result));
  deps.setExitCode(result.status === 'Succeeded' ? EXIT_OK : EXIT_FAILED);
}

function clientDeps(deps: RunCommandDeps): ClientDeps {
  return { stdout: deps.stdout, stderr: deps.stderr, env: deps.env, cwd: deps.cwd, now: deps.input.now, onInterrupt: deps.onInterrupt, setExitCode: deps.setExitCode };
}

export function registerRunCommands(program: Command, taskOptions: (cmd: Command) => Command, deps: RunCommandDeps): void {
  runOptions(
    taskOptions(
      program
        .command('run')
        .description('run a task file on the local Docker Engine, or on a Kiln server with --server; exit 0 Succeeded, 1 Failed/Timeout/Canceled/Error/Expired, 2 bad input')
        .argument('[context]', 'the source context copied into /workspace: a directory, a git URL (https://host/repo.git#ref:subdir) or an http(s) tar URL'),
    ),
  ).action(async (contextArg: string | undefined, flags: RunFlags & ServerRunFlags, cmd: Command) => {
    const side = serverFlags(cmd, flags);
    if (side.remote && flags.server !== undefined) await runRemote({ ...flags, server: flags.server, timeout: side.timeout }, contextArg, clientDeps(deps));
    else await runTask(flags, contextArg, deps);
  });

  runOptions(
    program
      .command('build')
      .description('the quick build: build CONTEXT with docker build options, then push the tags, here or on a Kiln server with --server (exit codes as for run)')
      .argument('<context>', 'the build context: a directory, a git URL or an http(s) tar URL')
      .requiredOption('-t, --image <image>', 'a tag for the image (repeatable); a tag without a registry gets the run registry', collect, [])
      .option('-f, --file <dockerfile>', 'the Dockerfile, relative to the context (default Dockerfile)')
      .option('--build-arg <name=value>', 'a build argument (repeatable)', collect, [])
      .option('--target <stage>', 'the stage to build')
      .option('--no-push', 'build only'),
  ).action(async (contextArg: string, flags: RunFlags & ServerRunFlags & { image: string[]; file?: string; buildArg: string[]; target?: string; push: boolean }, cmd: Command) => {
    const side = serverFlags(cmd, flags);
    if (side.remote && flags.server !== undefined) {
      // The server gives a tag without a registry its own run registry: only --registry is sent.
      await buildRemote({ ...flags, server: flags.server, timeout: side.timeout }, contextArg, clientDeps(deps));
      return;
    }
    const registry = flags.registry ?? deps.input.registry;
    const content = quickBuildTask({ tags: flags.image, file: flags.file, buildArgs: flags.buildArg, target: flags.target, push: flags.push, registry });
    await runTask({ ...flags, file: QUICK_BUILD_FILE, set: [] }, contextArg, deps, content);
  });
}
