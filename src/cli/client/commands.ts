import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { load as loadYaml } from 'js-yaml';
import { TRIGGER_KINDS } from '../../domain/run-record';
import { RUN_STATUSES } from '../../domain/status';
import { formatDiagnostic, KilnError } from '../../errors';
import { parseCredsFlags } from '../../runs/logins';
import { ROLES, type RunFilter, type SavedTask } from '../../runs/store';
import { parseSetFlags, readValuesFile } from '../../task';
import type { TaskBody } from './api';
import { EXIT_BAD_INPUT, clientOptions, makeClient, reportingErrors, writeJson, type ClientDeps, type ServerFlags } from './common';
import { makeLinePrinter, formatRunDetails, formatRunsTable, formatTaskDetails, formatTasksTable, formatTokensTable } from './format';
import { afterAccepted, contextOf, submitting } from './remote-run';

/**
 * The commands that only talk to a Kiln server: `kiln task ...` (saved tasks), `kiln runs ...`
 * (the run list, one run, its log, cancel) and `kiln token ...` (API tokens, for admins).
 */

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function wholeNumber(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}`);
    return n;
  };
}

function isoTime(value: string): string {
  const time = Date.parse(value);
  if (Number.isNaN(time)) throw new InvalidArgumentError('must be an ISO 8601 time, e.g. 2026-05-01T12:00:00Z');
  return new Date(time).toISOString();
}

export function registerClientCommands(program: Command, deps: ClientDeps): void {
  registerTaskCommands(program, deps);
  registerRunsCommands(program, deps);
  registerTokenCommands(program, deps);
}

// Saved tasks

interface TaskFlags extends ServerFlags {
  file?: string;
  contextFile?: string;
  context?: string;
  values?: string;
  secret: string[];
  creds: string[];
  registry?: string;
  platform?: string;
  pool?: string;
  timeout?: number;
  concurrency?: number;
  enabled?: boolean;
  disabled?: boolean;
  triggers?: string;
}

function taskSettings(cmd: Command): Command {
  return cmd
    .option('-f, --file <file>', 'a local task file (acb.yaml), saved with the task')
    .option('--context-file <path>', 'instead of -f: the task file inside the context, read at each run')
    .option('--context <url>', 'the source context: a git URL (https://host/repo.git#ref:subdir) or an http(s) tar URL')
    .option('--values <file>', 'a YAML or JSON file of values for .Values')
    .option('--secret <id=value>', "a secret value (repeatable; replaces the task's secrets)", collect, [])
    .option('--creds <host=user:password>', "a registry login (repeatable; replaces the task's logins)", collect, [])
    .option('--registry <host>', 'the run registry')
    .option('--platform <os/arch>', 'the platform of the workers that may run it, e.g. linux/amd64')
    .option('--pool <name>', 'the worker pool that runs it')
    .option('--timeout <seconds>', 'the run timeout', wholeNumber(1, 28800))
    .option('--concurrency <n>', 'runs of this task at once (0: no limit)', wholeNumber(0, 1000))
    .option('--enabled', 'runs on its triggers')
    .option('--disabled', 'does not run on its triggers (still runs with `kiln task run`)')
    .option('--triggers <file>', 'a YAML or JSON file with the triggers: {source, baseImage, timers}');
}

/** The settings the flags give; `file` is read and sent inline. */
async function taskBodyFrom(name: string, flags: TaskFlags, cwd: string): Promise<{ body: Partial<TaskBody>; problems: string[]; fileName: string }> {
  const body: Partial<TaskBody> = {};
  const problems: string[] = [];
  if (flags.file !== undefined && flags.contextFile !== undefined) problems.push('kiln: give the task as -f FILE or as --context-file PATH, not both');
  if (flags.file !== undefined) {
    try {
      body.task = await readFile(resolve(cwd, flags.file), 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      problems.push(`${flags.file}:1:1: cannot read the task file: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
    }
  }
  if (flags.contextFile !== undefined) body.file = flags.contextFile;
  if (flags.context !== undefined) body.context = flags.context;
  if (flags.values !== undefined) {
    const read = await readValuesFile(resolve(cwd, flags.values));
    problems.push(...read.diagnostics.map((d) => formatDiagnostic({ ...d, file: flags.values ?? d.file })));
    body.values = read.values;
  }
  if (flags.secret.length > 0) body.secrets = secretsOf(flags.secret);
  if (flags.creds.length > 0) body.credentials = parseCredsFlags(flags.creds);
  if (flags.registry !== undefined) body.registry = flags.registry;
  if (flags.platform !== undefined) body.platform = flags.platform;
  if (flags.pool !== undefined) body.pool = flags.pool;
  if (flags.timeout !== undefined) body.timeout = flags.timeout;
  if (flags.concurrency !== undefined) body.concurrency = flags.concurrency;
  if (flags.enabled && flags.disabled) problems.push('kiln: --enabled and --disabled contradict each other');
  if (flags.disabled) body.status = 'Disabled';
  else if (flags.enabled) body.status = 'Enabled';
  if (flags.triggers !== undefined) {
    try {
      const parsed = loadYaml(await readFile(resolve(cwd, flags.triggers), 'utf8'));
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) problems.push(`kiln: ${flags.triggers}: the triggers must be a map: {source, baseImage, timers}`);
      else body.triggers = parsed as TaskBody['triggers'];
    } catch (err) {
      problems.push(`kiln: ${flags.triggers}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  return { body: { ...body, name }, problems, fileName: flags.file ?? flags.contextFile ?? name };
}

/** What PUT needs to keep a saved task as it is; secrets and logins are kept by leaving them out. */
function bodyOf(task: SavedTask): TaskBody {
  const body: TaskBody = {
    name: task.name,
    platform: task.platform,
    pool: task.pool,
    timeout: task.timeout,
    concurrency: task.concurrency,
    status: task.status,
    triggers: task.triggers,
  };
  if (task.task !== undefined) body.task = task.task;
  if (task.file !== undefined) body.file = task.file;
  if (task.context !== undefined) body.context = task.context;
  if (task.values !== undefined) body.values = task.values;
  if (task.registry !== undefined) body.registry = task.registry;
  return body;
}

function secretsOf(flags: readonly string[]): Record<string, string> {
  const secrets: Record<string, string> = {};
  for (const s of flags) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new KilnError('invalid_input', `--secret "${s.replace(/=.*/, '=***')}" must have the form ID=VALUE`);
    secrets[s.slice(0, eq)] = s.slice(eq + 1);
  }
  return secrets;
}

/** Prints the lines (each `FILE:LINE:COL: ...` or `kiln: ...`) and sets exit 2; false when there are none. */
function reportProblems(problems: readonly string[], deps: ClientDeps): boolean {
  if (problems.length === 0) return false;
  for (const p of problems) deps.stderr.write(`${p}\n`);
  deps.setExitCode(EXIT_BAD_INPUT);
  return true;
}

function registerTaskCommands(program: Command, deps: ClientDeps): void {
  const task = program.command('task').description('saved tasks on a Kiln server: create, list, show, update, delete, run');

  clientOptions(taskSettings(task.command('create').description('save a task on the server (-f FILE, or --context with --context-file PATH)').argument('<name>', 'the task name')))
    .action(async (name: string, flags: TaskFlags) => {
      const client = makeClient(flags, deps.env);
      const { body, problems, fileName } = await taskBodyFrom(name, flags, deps.cwd);
      if (body.task === undefined && body.file === undefined) problems.push('kiln: give the task: -f FILE, or --context URL with --context-file PATH');
      if (reportProblems(problems, deps)) return;
      await reportingErrors(deps, async () => {
        const saved = await submitting(fileName, deps, () => client.createTask(body as TaskBody));
        if (!saved) return;
        if (flags.output === 'json') writeJson(deps.stdout, saved);
        else deps.stdout.write(`task ${saved.name} saved\n`);
      });
    });

  clientOptions(task.command('list').description('list the saved tasks')).action(async (flags: ServerFlags) => {
    const client = makeClient(flags, deps.env);
    await reportingErrors(deps, async () => {
      const tasks = await client.listTasks();
      if (flags.output === 'json') writeJson(deps.stdout, tasks);
      else deps.stdout.write(formatTasksTable(tasks));
    });
  });

  clientOptions(task.command('show').description("a saved task's settings (never its secrets)").argument('<name>', 'the task name')).action(
    async (name: string, flags: ServerFlags) => {
      const client = makeClient(flags, deps.env);
      await reportingErrors(deps, async () => {
        const saved = await client.getTask(name);
        if (flags.output === 'json') writeJson(deps.stdout, saved);
        else deps.stdout.write(formatTaskDetails(saved));
      });
    },
  );

  clientOptions(
    taskSettings(task.command('update').description('change a saved task: the settings given replace those stored, the rest stay').argument('<name>', 'the task name')),
  ).action(async (name: string, flags: TaskFlags) => {
    const client = makeClient(flags, deps.env);
    const { body, problems, fileName } = await taskBodyFrom(name, flags, deps.cwd);
    if (reportProblems(problems, deps)) return;
    await reportingErrors(deps, async () => {
      const current = bodyOf(await client.getTask(name));
      // The task is given one way: a new one replaces the other.
      if (body.task !== undefined) delete current.file;
      if (body.file !== undefined) delete current.task;
      const saved = await submitting(fileName, deps, () => client.putTask(name, { ...current, ...body, name }));
      if (!saved) return;
      if (flags.output === 'json') writeJson(deps.stdout, saved);
      else deps.stdout.write(`task ${saved.name} updated\n`);
    });
  });

  clientOptions(task.command('delete').description('delete a saved task (its past runs stay)').argument('<name>', 'the task name')).action(
    async (name: string, flags: ServerFlags) => {
      const client = makeClient(flags, deps.env);
      await reportingErrors(deps, async () => {
        await client.deleteTask(name);
        if (flags.output === 'json') writeJson(deps.stdout, { name, deleted: true });
        else deps.stdout.write(`task ${name} deleted\n`);
      });
    },
  );

  clientOptions(
    task
      .command('run')
      .description('run a saved task and follow it like kiln run --server: exit 0 Succeeded, 1 Failed/Timeout/Canceled/Error/Expired, 2 bad input')
      .argument('<name>', 'the task name')
      .option('--values <file>', "a YAML or JSON file of values for .Values (its keys win over the task's values)")
      .option('--set <key=value>', 'set a value for .Values (repeatable; wins over --values)', collect, [])
      .option('--secret <id=value>', "a secret value for this run (repeatable; wins over the task's secret of that id)", collect, [])
      .option('--context <url-or-dir>', "this run's context instead of the task's: a git URL, an http(s) tar URL, or a local directory (uploaded)")
      .option('--no-wait', 'print the run id and exit without waiting')
      .option('--no-logs', 'wait for the outcome without printing the log'),
  ).action(async (name: string, flags: ServerFlags & { values?: string; set: string[]; secret: string[]; context?: string; wait: boolean; logs: boolean }) => {
    const client = makeClient(flags, deps.env);
    let values: Record<string, unknown> | undefined;
    const problems: string[] = [];
    if (flags.values !== undefined) {
      const read = await readValuesFile(resolve(deps.cwd, flags.values));
      problems.push(...read.diagnostics.map((d) => formatDiagnostic({ ...d, file: flags.values ?? d.file })));
      values = read.values;
    }
    const set = parseSetFlags(flags.set);
    problems.push(...set.errors.map((e) => `kiln: ${e}`));
    if (reportProblems(problems, deps)) return;
    const secrets = flags.secret.length > 0 ? secretsOf(flags.secret) : undefined;
    const { context, upload } = contextOf(flags.context, deps.cwd);
    await reportingErrors(deps, async () => {
      const accepted = await submitting(name, deps, () =>
        client.runTask(name, { values, set: flags.set.length > 0 ? set.values : undefined, secrets, context }, upload),
      );
      if (accepted) await afterAccepted(client, accepted, flags, deps, name);
    });
  });
}

// Runs

function registerRunsCommands(program: Command, deps: ClientDeps): void {
  const runs = program.command('runs').description('runs on a Kiln server: list, show, logs, cancel');

  clientOptions(
    runs
      .command('list')
      .description('list runs, newest first')
      .addOption(new Option('--status <status>', 'only runs with this status').choices([...RUN_STATUSES]))
      .option('--task <name>', 'only runs of this saved task')
      .addOption(new Option('--trigger <kind>', 'only runs started this way').choices([...TRIGGER_KINDS]))
      .option('--since <time>', 'only runs created at or after this ISO 8601 time', isoTime)
      .option('--until <time>', 'only runs created before this ISO 8601 time', isoTime)
      .option('--limit <n>', 'at most this many runs (default 50)', wholeNumber(1, 500))
      .option('--cursor <cursor>', 'the next page: the cursor a previous list printed'),
  ).action(async (flags: ServerFlags & RunFilter) => {
    const client = makeClient(flags, deps.env);
    await reportingErrors(deps, async () => {
      const page = await client.listRuns({
        status: flags.status,
        task: flags.task,
        trigger: flags.trigger,
        since: flags.since,
        until: flags.until,
        limit: flags.limit,
        cursor: flags.cursor,
      });
      if (flags.output === 'json') {
        writeJson(deps.stdout, page);
        return;
      }
      deps.stdout.write(formatRunsTable(page.items, deps.now()));
      if (page.next !== undefined) deps.stderr.write(`kiln: more runs: add --cursor ${page.next}\n`);
    });
  });

  clientOptions(runs.command('show').description("a run's status, steps and pushed images").argument('<run-id>', 'the run id')).action(
    async (runId: string, flags: ServerFlags) => {
      const client = makeClient(flags, deps.env);
      await reportingErrors(deps, async () => {
        const run = await client.getRun(runId);
        if (flags.output === 'json') writeJson(deps.stdout, run);
        else deps.stdout.write(formatRunDetails(run));
      });
    },
  );

  clientOptions(
    runs
      .command('logs')
      .description("a run's log so far, each line prefixed by its step id; --follow waits for more until the run ends")
      .argument('<run-id>', 'the run id')
      .option('-F, --follow', 'keep printing new lines until the run ends (json: one entry per line)'),
  ).action(async (runId: string, flags: ServerFlags & { follow?: boolean }) => {
    const client = makeClient(flags, deps.env);
    await reportingErrors(deps, async () => {
      if (flags.follow) {
        const print = makeLinePrinter(deps.stdout);
        for await (const event of client.followLog(runId, {
          onReconnect: (attempt, reason) => {
            if (attempt === 1) deps.stderr.write(`kiln: lost the log stream of run ${runId} (${reason}); reconnecting\n`);
          },
        })) {
          if (flags.output === 'json') deps.stdout.write(JSON.stringify(event.type === 'end' ? { status: event.status } : { offset: event.offset, step: event.step, stream: event.stream, line: event.line }) + '\n');
          else if (event.type === 'line') print(event.step, event.line);
        }
        return;
      }
      if (flags.output === 'json') {
        writeJson(deps.stdout, await client.logJson(runId));
        return;
      }
      for await (const chunk of await client.logText(runId)) deps.stdout.write(chunk);
    });
  });

  clientOptions(runs.command('cancel').description('cancel a run: a queued run ends Canceled at once, a running one is stopped by its worker').argument('<run-id>', 'the run id')).action(
    async (runId: string, flags: ServerFlags) => {
      const client = makeClient(flags, deps.env);
      await reportingErrors(deps, async () => {
        const run = await client.cancelRun(runId);
        if (flags.output === 'json') writeJson(deps.stdout, run);
        else deps.stdout.write(run.status === 'Canceled' ? `run ${runId} canceled\n` : `run ${runId}: cancel requested (it is ${String(run.status)})\n`);
      });
    },
  );
}

// Tokens

function registerTokenCommands(program: Command, deps: ClientDeps): void {
  const token = program.command('token').description('API tokens on a Kiln server (admin): create, list, delete');

  clientOptions(
    token
      .command('create')
      .description('create a token; it is printed once (the server keeps only its hash)')
      .requiredOption('--name <name>', 'what the token is for, e.g. ci or alice')
      .addOption(new Option('--role <role>', 'reader: read runs and tasks; runner: also start and cancel runs; admin: also tasks and tokens').choices([...ROLES]).makeOptionMandatory()),
  ).action(async (flags: ServerFlags & { name: string; role: (typeof ROLES)[number] }) => {
    const client = makeClient(flags, deps.env);
    await reportingErrors(deps, async () => {
      const created = await client.createToken(flags.name, flags.role);
      if (flags.output === 'json') {
        writeJson(deps.stdout, created);
        return;
      }
      deps.stdout.write(`${created.token}\n`);
      deps.stderr.write(`kiln: token ${created.id} (${created.role}, "${created.name}"): keep it now, it is not shown again\n`);
    });
  });

  clientOptions(token.command('list').description('list the tokens (never their values)')).action(async (flags: ServerFlags) => {
    const client = makeClient(flags, deps.env);
    await reportingErrors(deps, async () => {
      const tokens = await client.listTokens();
      if (flags.output === 'json') writeJson(deps.stdout, tokens);
      else deps.stdout.write(formatTokensTable(tokens));
    });
  });

  clientOptions(token.command('delete').description('revoke a token').argument('<token-id>', 'the token id (from kiln token list)')).action(
    async (id: string, flags: ServerFlags) => {
      const client = makeClient(flags, deps.env);
      await reportingErrors(deps, async () => {
        await client.deleteToken(id);
        if (flags.output === 'json') writeJson(deps.stdout, { id, deleted: true });
        else deps.stdout.write(`token ${id} revoked\n`);
      });
    },
  );
}
