import { Command, CommanderError, Option } from 'commander';
import type { Backend } from '../backend/types';
import { loadConfig } from '../config';
import { hasErrors } from '../runs/prepare';
import { registerClientCommands } from './client/commands';
import { printDiagnostics } from './diagnostics';
import { EXIT_BAD_INPUT, EXIT_OK, registerRunCommands } from './run';
import { registerServiceCommands, type RunningService, type ServiceOptions } from './serve';
import { prepareFromFlags, type TaskFlags } from './task-input';
import { version } from '../../package.json';

export { EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK } from './run';

export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  now: () => Date;
  cwd?: string;
  /** The container backend for `run` and `build`; only bin/ knows the concrete class. */
  createBackend?: () => Promise<Backend>;
  onInterrupt?: (handler: () => void) => () => void;
  /** `kiln serve`, `api` and `worker`: bin/ assembles the service. */
  startService?: (options: ServiceOptions) => Promise<RunningService>;
  /** Resolves with the signal's name on SIGTERM or SIGINT. */
  untilStopped?: () => Promise<string>;
  forceExit?: (code: number) => void;
}

const count = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? '' : 's'}`;
const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** The options of every command that reads a task file. */
function taskFileOptions(cmd: Command): Command {
  return cmd
    .requiredOption('-f, --file <file>', 'the task file (acb.yaml)')
    .option('--values <file>', 'a YAML or JSON file of values for .Values')
    .option('--set <key=value>', 'set a value for .Values (repeatable; wins over --values)', collect, [])
    .option('--strict', 'make unknown keys and missing template keys errors');
}

function runIdentityOptions(cmd: Command): Command {
  return cmd
    .option('--registry <host>', 'the run registry for $Registry and .Run.Registry (default: $KILN_REGISTRY)')
    .option('--id <run-id>', 'the run id for $ID and .Run.ID (default: a new id)');
}

/** Runs the `kiln` command line; resolves to the process exit code. */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  let exitCode = EXIT_OK;
  const setExitCode = (code: number): void => {
    exitCode = code;
  };
  const config = loadConfig(io.env);
  const input = { registry: config.registry, imageAliases: config.imageAliases, now: io.now };

  const program = new Command('kiln')
    .description(
      'Kiln runs ACR Tasks files (acb.yaml) on a Docker Engine: build, push and cmd steps, in parallel where the graph allows. ' +
        'The task, runs, triggers and token commands (and run/build with --server) talk to a Kiln server: --server URL or $KILN_SERVER, --token or $KILN_TOKEN.',
    )
    .version(version)
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .showHelpAfterError('(run "kiln --help" for usage)');

  runIdentityOptions(
    taskFileOptions(program.command('validate').description('check a task file: exit 0 when it is valid, 2 with FILE:LINE:COL messages when not')),
  ).action(async (flags: TaskFlags) => {
    const prepared = await prepareFromFlags(flags, input);
    printDiagnostics(prepared.diagnostics, io.stderr);
    if (hasErrors(prepared.diagnostics) || !prepared.plan) {
      exitCode = EXIT_BAD_INPUT;
      return;
    }
    const plan = prepared.plan;
    io.stdout.write(`${flags.file}: valid (${count(plan.steps.length, 'step')}, ${count(plan.levels.length, 'level')})\n`);
  });

  runIdentityOptions(
    taskFileOptions(
      program
        .command('render')
        .description("print the task after aliases and templates (yaml), or its compiled plan with each step's kind and dependsOn (json)"),
    ),
  )
    .addOption(new Option('-o, --output <format>', 'output format').choices(['yaml', 'json']).default('yaml'))
    .action(async (flags: TaskFlags & { output: 'yaml' | 'json' }) => {
      const prepared = await prepareFromFlags(flags, input);
      printDiagnostics(prepared.diagnostics, io.stderr);
      if (hasErrors(prepared.diagnostics) || !prepared.plan) {
        exitCode = EXIT_BAD_INPUT;
        return;
      }
      if (flags.output === 'json') io.stdout.write(JSON.stringify(prepared.plan, null, 2) + '\n');
      else io.stdout.write(prepared.rendered.endsWith('\n') ? prepared.rendered : prepared.rendered + '\n');
    });

  registerRunCommands(program, taskFileOptions, {
    stdout: io.stdout,
    stderr: io.stderr,
    env: io.env,
    cwd: io.cwd ?? process.cwd(),
    input,
    createBackend: io.createBackend ?? (() => Promise.reject(new Error('no container backend is configured'))),
    onInterrupt: io.onInterrupt,
    setExitCode,
  });

  registerServiceCommands(program, { stderr: io.stderr, env: io.env, startService: io.startService, untilStopped: io.untilStopped, forceExit: io.forceExit, setExitCode });

  registerClientCommands(program, {
    stdout: io.stdout,
    stderr: io.stderr,
    env: io.env,
    cwd: io.cwd ?? process.cwd(),
    now: io.now,
    onInterrupt: io.onInterrupt,
    setExitCode,
  });

  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; any usage error is bad input.
      return err.exitCode === 0 ? EXIT_OK : EXIT_BAD_INPUT;
    }
    if (err instanceof Error && 'code' in err && err.code === 'invalid_input') {
      io.stderr.write(`kiln: ${err.message}\n`);
      return EXIT_BAD_INPUT;
    }
    throw err;
  }
  return exitCode;
}
