import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { load as loadYaml } from 'js-yaml';
import { SOURCE_EVENTS, sourceDefaults, TRIGGER_TYPES, type SourceEventKind, type TaskTriggers } from '../../domain/trigger';
import { RUN_STATUSES } from '../../domain/status';
import { formatDiagnostic, KilnError } from '../../errors';
import { parseContext } from '../../plan';
import { parseCredsFlags } from '../../runs/logins';
import { ROLES, type RunFilter, type SavedTask } from '../../runs/store';
import { parseSetFlags, readValuesFile } from '../../task';
import { TRIGGER_ACTIONS, TRIGGER_EVENT_SOURCES, type TriggerEventFilter } from '../../triggers/store';
import type { TriggersInput } from '../../triggers/settings';
import type { TaskBody } from './api';
import { EXIT_BAD_INPUT, EXIT_FAILED, clientOptions, makeClient, reportingErrors, writeJson, type ClientDeps, type ServerFlags } from './common';
import {
  makeLinePrinter,
  formatDependencies,
  formatDependentsTable,
  formatRunDetails,
  formatRunsTable,
  formatTaskDetails,
  formatTasksTable,
  formatTimersTable,
  formatTokensTable,
  formatTriggerEventsTable,
} from './format';
import { afterAccepted, contextOf, submitting } from './remote-run';

/**
 * The commands that only talk to a Kiln server: `kiln task ...` (saved tasks, their timers and
 * dependencies), `kiln runs ...` (the run list, one run, its log, cancel), `kiln triggers events`
 * (what the triggers decided) and `kiln token ...` (API tokens, for admins).
 */

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function wholeNumber(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}`);
    return n;
  };
}

/** `[bool]` options: no value is true; otherwise `true` or `false`. */
export function parseBool(value: string): boolean {
  if (/^true$/i.test(value)) return true;
  if (/^false$/i.test(value)) return false;
  throw new InvalidArgumentError('must be true or false (or no value, for true)');
}

/** A poll interval as the API takes it: 0 (off) or 2 to 86400 seconds. */
function pollSeconds(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n === 1 || n > 86_400) throw new InvalidArgumentError('must be 0 (off) or 2 to 86400 seconds');
  return n;
}

function isoTime(value: string): string {
  const time = Date.parse(value);
  if (Number.isNaN(time)) throw new InvalidArgumentError('must be an ISO 8601 time, e.g. 2026-05-01T12:00:00Z');
  return new Date(time).toISOString();
}

export function registerClientCommands(program: Command, deps: ClientDeps): void {
  registerTaskCommands(program, deps);
  registerRunsCommands(program, deps);
  registerTriggersCommands(program, deps);
  registerTokenCommands(program, deps);
}

// Saved tasks

interface TaskFlags extends ServerFlags, TriggerFlags {
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

/** The settings flags of `kiln task create` and `kiln task update`. */
export function taskSettings(cmd: Command): Command {
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
    .option('--triggers <file>', 'a YAML or JSON file with the triggers: {source, baseImage, timers} (the flags below change what it says)')
    .option('--commit-trigger-enabled [bool]', 'run on pushes to the context repository (true/false; no value: true)', parseBool)
    .option('--pull-request-trigger-enabled [bool]', 'run on pull requests to it (true/false; no value: true)', parseBool)
    .option('--branch <glob>', 'the branches whose pushes and pull requests start runs, e.g. main or release/* (default: the context\'s branch, or every branch)')
    .option('--include-path <glob>', 'run only for changes to these paths (repeatable; replaces the list)', collect, [])
    .option('--exclude-path <glob>', 'not for changes only to these paths (repeatable; replaces the list)', collect, [])
    .option('--webhook-secret [secret]', 'the secret webhooks are signed with, 16 to 256 characters (no value: $KILN_WEBHOOK_SECRET); write-only')
    .option('--git-poll-interval <seconds>', 'also poll the repository (git ls-remote) this often; 0: webhooks only', pollSeconds)
    .option('--base-image-trigger-enabled [bool]', 'run when a base image gets a new digest (true/false; no value: true)', parseBool)
    .addOption(new Option('--base-image-trigger-type <type>', 'Runtime: the final stage\'s base only; All: every stage\'s').choices(['Runtime', 'All']))
    .option('--base-image-poll-interval <seconds>', 'also poll the base images\' digests this often; 0: registry notifications only', pollSeconds)
    .option('--schedule <cron>', 'a timer: the first --schedule sets timer t1, the next t2... (repeatable; see kiln task timer)', collect, [])
    .option('--timezone <tz>', 'the IANA time zone of the --schedule timers (default UTC)');
}

// Trigger flags

/** The trigger flags of `kiln task create|update`, as commander parses them. */
export interface TriggerFlags {
  commitTriggerEnabled?: boolean;
  pullRequestTriggerEnabled?: boolean;
  branch?: string;
  includePath: string[];
  excludePath: string[];
  /** `true`: the flag without a value (take $KILN_WEBHOOK_SECRET). */
  webhookSecret?: string | true;
  gitPollInterval?: number;
  baseImageTriggerEnabled?: boolean;
  baseImageTriggerType?: 'Runtime' | 'All';
  baseImagePollInterval?: number;
  schedule: string[];
  timezone?: string;
}

/** The trigger flags checked, the webhook secret read: what to change in a task's triggers. */
export type TriggerEdit = Omit<TriggerFlags, 'webhookSecret'> & { webhookSecret?: string };

/** Checks the trigger flags that need no server; the problems are `kiln: ...` lines. */
export function readTriggerFlags(flags: TriggerFlags, env: NodeJS.ProcessEnv): { edit: TriggerEdit; problems: string[] } {
  const problems: string[] = [];
  const { webhookSecret, ...rest } = flags;
  const edit: TriggerEdit = rest;
  if (webhookSecret !== undefined) {
    const secret = webhookSecret === true ? env.KILN_WEBHOOK_SECRET : webhookSecret;
    if (!secret) problems.push('kiln: --webhook-secret without a value takes $KILN_WEBHOOK_SECRET, which is not set');
    else if (secret.length < 16 || secret.length > 256) problems.push(`kiln: the webhook secret must have 16 to 256 characters, not ${secret.length}`);
    else edit.webhookSecret = secret;
  }
  if (flags.timezone !== undefined && flags.schedule.length === 0) {
    problems.push('kiln: --timezone goes with --schedule (one timer: kiln task timer update NAME --timer-name T --timezone TZ)');
  }
  return { edit, problems };
}

function hasTriggerEdits(edit: TriggerEdit): boolean {
  return (
    edit.commitTriggerEnabled !== undefined ||
    edit.pullRequestTriggerEnabled !== undefined ||
    edit.branch !== undefined ||
    edit.includePath.length > 0 ||
    edit.excludePath.length > 0 ||
    edit.webhookSecret !== undefined ||
    edit.gitPollInterval !== undefined ||
    edit.baseImageTriggerEnabled !== undefined ||
    edit.baseImageTriggerType !== undefined ||
    edit.baseImagePollInterval !== undefined ||
    edit.schedule.length > 0
  );
}

/**
 * `base` (the stored triggers, a --triggers file, or nothing) with what the flags change, and
 * nothing else; undefined when there is no base and no flag (the server's defaults apply).
 * - The commit and pull-request flags turn those events of the source trigger on or off: the
 *   events of a source trigger that is off count as none, and the source trigger is on exactly
 *   when some event is left (a new task's source trigger counts as on with `commit`, the
 *   server's default for a git context).
 * - `--schedule` sets timers t1, t2... in order, replacing those names' schedules (and time
 *   zones, with `--timezone`); the other timers, and those timers' `enabled`, stay.
 */
export function applyTriggerEdit(base: TriggersInput | undefined, edit: TriggerEdit): TriggersInput | undefined {
  if (!hasTriggerEdits(edit)) return base;
  const triggers: TriggersInput = structuredClone(base ?? {});
  const source = { ...triggers.source };
  if (edit.commitTriggerEnabled !== undefined || edit.pullRequestTriggerEnabled !== undefined) {
    const on = new Set<SourceEventKind>(source.enabled === false ? [] : (source.events ?? ['commit']));
    const toggle = (event: SourceEventKind, value: boolean | undefined): void => {
      if (value === true) on.add(event);
      else if (value === false) on.delete(event);
    };
    toggle('commit', edit.commitTriggerEnabled);
    toggle('pullrequest', edit.pullRequestTriggerEnabled);
    source.enabled = on.size > 0;
    if (on.size > 0) source.events = SOURCE_EVENTS.filter((e) => on.has(e));
  }
  if (edit.branch !== undefined) source.branch = edit.branch;
  if (edit.includePath.length > 0) source.paths = { ...source.paths, include: edit.includePath };
  if (edit.excludePath.length > 0) source.paths = { ...source.paths, exclude: edit.excludePath };
  if (edit.webhookSecret !== undefined) source.webhookSecret = edit.webhookSecret;
  if (edit.gitPollInterval !== undefined) source.pollInterval = edit.gitPollInterval;
  if (Object.keys(source).length > 0) triggers.source = source;

  const baseImage = { ...triggers.baseImage };
  if (edit.baseImageTriggerEnabled !== undefined) baseImage.enabled = edit.baseImageTriggerEnabled;
  if (edit.baseImageTriggerType !== undefined) baseImage.type = edit.baseImageTriggerType;
  if (edit.baseImagePollInterval !== undefined) baseImage.pollInterval = edit.baseImagePollInterval;
  if (Object.keys(baseImage).length > 0) triggers.baseImage = baseImage;

  if (edit.schedule.length > 0) {
    const timers = [...(triggers.timers ?? [])];
    edit.schedule.forEach((schedule, i) => {
      const name = `t${i + 1}`;
      const at = timers.findIndex((t) => t.name === name);
      const timer = { ...timers[at], name, schedule };
      if (edit.timezone !== undefined) timer.timezone = edit.timezone;
      if (at >= 0) timers[at] = timer;
      else timers.push(timer);
    });
    triggers.timers = timers;
  }
  return triggers;
}

/**
 * The stored triggers as the base of an update. The server derives some source settings from the
 * context (`sourceDefaults`: on for a git context, the branch from its ref, the paths from its
 * subdirectory); when the update changes the context, those still at the old context's
 * defaults are left out so that the server derives them again from the new one.
 */
export function storedTriggers(stored: TaskTriggers | undefined, oldContext: string | undefined, newContext: string | undefined): TriggersInput {
  const triggers: TriggersInput = structuredClone(stored ?? {});
  if (newContext === undefined || newContext === oldContext || !triggers.source) return triggers;
  const parsed = oldContext === undefined ? undefined : parseContext(oldContext, []);
  const defaults = sourceDefaults(parsed?.kind === 'git' ? parsed : undefined);
  const source = triggers.source;
  if (source.enabled === defaults.enabled) delete source.enabled;
  if (source.branch === defaults.branch) delete source.branch;
  const include = source.paths?.include;
  if (source.paths && include?.length === 1 && include[0] === defaults.include[0]) delete source.paths.include;
  return triggers;
}

/**
 * The settings the flags give; `file` is read and sent inline. The trigger flags come back apart
 * (`edit`): an update applies them to the stored triggers.
 */
async function taskBodyFrom(
  name: string,
  flags: TaskFlags,
  deps: Pick<ClientDeps, 'cwd' | 'env'>,
): Promise<{ body: Partial<TaskBody>; edit: TriggerEdit; problems: string[]; fileName: string }> {
  const cwd = deps.cwd;
  const body: Partial<TaskBody> = {};
  const read = readTriggerFlags(flags, deps.env);
  const problems: string[] = [...read.problems];
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
  return { body: { ...body, name }, edit: read.edit, problems, fileName: flags.file ?? flags.contextFile ?? name };
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
  const task = program.command('task').description('saved tasks on a Kiln server: create, list, show, update, delete, run; their timers, dependencies and dependents');

  clientOptions(taskSettings(task.command('create').description('save a task on the server (-f FILE, or --context with --context-file PATH)').argument('<name>', 'the task name')))
    .action(async (name: string, flags: TaskFlags) => {
      const client = makeClient(flags, deps.env);
      const { body, edit, problems, fileName } = await taskBodyFrom(name, flags, deps);
      if (body.task === undefined && body.file === undefined) problems.push('kiln: give the task: -f FILE, or --context URL with --context-file PATH');
      if (reportProblems(problems, deps)) return;
      const triggers = applyTriggerEdit(body.triggers, edit);
      if (triggers !== undefined) body.triggers = triggers;
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
        else deps.stdout.write(formatTaskDetails(saved, client.server));
      });
    },
  );

  clientOptions(
    taskSettings(task.command('update').description('change a saved task: the settings given replace those stored, the rest stay').argument('<name>', 'the task name')),
  ).action(async (name: string, flags: TaskFlags) => {
    const client = makeClient(flags, deps.env);
    const { body, edit, problems, fileName } = await taskBodyFrom(name, flags, deps);
    if (reportProblems(problems, deps)) return;
    await reportingErrors(deps, async () => {
      const stored = await client.getTask(name);
      const current = bodyOf(stored);
      // The task is given one way: a new one replaces the other.
      if (body.task !== undefined) delete current.file;
      if (body.file !== undefined) delete current.task;
      // PUT replaces the whole triggers object: a --triggers file replaces it, the flags change the rest.
      body.triggers = applyTriggerEdit(body.triggers ?? storedTriggers(stored.triggers, stored.context, body.context), edit);
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

  registerTimerCommands(task, deps);

  clientOptions(
    task
      .command('dependencies')
      .description('the base images a task builds from and the images it pushes, as its last recorded run saw them (what base-image triggers follow)')
      .argument('<name>', 'the task name'),
  ).action(async (name: string, flags: ServerFlags) => {
    const client = makeClient(flags, deps.env);
    await reportingErrors(deps, async () => {
      const found = await client.taskDependencies(name);
      if (flags.output === 'json') writeJson(deps.stdout, found);
      else deps.stdout.write(formatDependencies(found));
    });
  });

  clientOptions(
    task
      .command('dependents')
      .description('the saved tasks that build from an image: those a new digest of it would run')
      .requiredOption('--image <ref>', 'the image, e.g. 127.0.0.1:5000/base:1 or alpine:3.20'),
  ).action(async (flags: ServerFlags & { image: string }) => {
    const client = makeClient(flags, deps.env);
    await reportingErrors(deps, async () => {
      const found = await client.dependents(flags.image);
      if (flags.output === 'json') writeJson(deps.stdout, found);
      else deps.stdout.write(formatDependentsTable(found));
    });
  });
}

interface TimerFlags extends ServerFlags {
  timerName: string;
  schedule?: string;
  timezone?: string;
  enabled?: boolean;
  disabled?: boolean;
}

/** `kiln task timer ...`: one timer at a time, without touching the task's other settings. */
function registerTimerCommands(task: Command, deps: ClientDeps): void {
  const timer = task.command('timer').description("a saved task's timers (cron schedules that run it): add, update, remove, list");
  const timerName = (cmd: Command): Command => cmd.argument('<name>', 'the task name').requiredOption('--timer-name <timer>', 'the timer name, e.g. nightly');
  const scheduleHelp = 'cron: minute hour day month weekday, or 6 fields with seconds first (e.g. "0 3 * * *")';
  const timezoneHelp = 'an IANA time zone, e.g. Europe/Paris';

  clientOptions(
    timerName(timer.command('add').description('add a timer to a task (exit 1 when it has one of that name)'))
      .requiredOption('--schedule <cron>', scheduleHelp)
      .option('--timezone <tz>', `${timezoneHelp} (default UTC)`)
      .option('--disabled', 'add it switched off'),
  ).action(async (name: string, flags: TimerFlags & { schedule: string }) => {
    const client = makeClient(flags, deps.env);
    await reportingErrors(deps, async () => {
      const { items } = await client.listTimers(name);
      if (items.some((t) => t.name === flags.timerName)) {
        deps.stderr.write(`kiln: task ${name} already has a timer ${flags.timerName} (change it with kiln task timer update)\n`);
        deps.setExitCode(EXIT_FAILED);
        return;
      }
      const { timer: saved } = await client.setTimer(name, flags.timerName, { schedule: flags.schedule, timezone: flags.timezone, enabled: !flags.disabled });
      if (flags.output === 'json') writeJson(deps.stdout, saved);
      else deps.stdout.write(`timer ${saved.name} added to task ${name}\n`);
    });
  });

  clientOptions(
    timerName(timer.command('update').description('change a timer of a task: the settings given replace those stored, the rest stay (exit 1 when it has none of that name)'))
      .option('--schedule <cron>', scheduleHelp)
      .option('--timezone <tz>', timezoneHelp)
      .option('--enabled', 'switch it on')
      .option('--disabled', 'switch it off'),
  ).action(async (name: string, flags: TimerFlags) => {
    if (reportProblems(flags.enabled && flags.disabled ? ['kiln: --enabled and --disabled contradict each other'] : [], deps)) return;
    const client = makeClient(flags, deps.env);
    await reportingErrors(deps, async () => {
      const current = (await client.listTimers(name)).items.find((t) => t.name === flags.timerName);
      if (!current) {
        deps.stderr.write(`kiln: task ${name} has no timer ${flags.timerName} (add it with kiln task timer add)\n`);
        deps.setExitCode(EXIT_FAILED);
        return;
      }
      const { timer: saved } = await client.setTimer(name, flags.timerName, {
        schedule: flags.schedule ?? current.schedule,
        timezone: flags.timezone ?? current.timezone,
        enabled: flags.disabled ? false : flags.enabled ? true : current.enabled,
      });
      if (flags.output === 'json') writeJson(deps.stdout, saved);
      else deps.stdout.write(`timer ${saved.name} of task ${name} updated\n`);
    });
  });

  clientOptions(timerName(timer.command('remove').description('remove a timer from a task'))).action(async (name: string, flags: TimerFlags) => {
    const client = makeClient(flags, deps.env);
    await reportingErrors(deps, async () => {
      await client.deleteTimer(name, flags.timerName);
      if (flags.output === 'json') writeJson(deps.stdout, { task: name, timer: flags.timerName, removed: true });
      else deps.stdout.write(`timer ${flags.timerName} removed from task ${name}\n`);
    });
  });

  clientOptions(timer.command('list').description("a task's timers with their next run (none while the timer or the task is disabled)").argument('<name>', 'the task name')).action(
    async (name: string, flags: ServerFlags) => {
      const client = makeClient(flags, deps.env);
      await reportingErrors(deps, async () => {
        const page = await client.listTimers(name);
        if (flags.output === 'json') writeJson(deps.stdout, page);
        else deps.stdout.write(formatTimersTable(page.items));
      });
    },
  );
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
      .addOption(new Option('--trigger <type>', 'only runs started this way').choices([...TRIGGER_TYPES]))
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

// Trigger decisions

function registerTriggersCommands(program: Command, deps: ClientDeps): void {
  const triggers = program.command('triggers').description('what the triggers on a Kiln server did: events');

  clientOptions(
    triggers
      .command('events')
      .description('the decision log, newest first: each webhook, registry notification, poll and timer tick, and what came of it')
      .option('--task <name>', 'only events for this saved task')
      .addOption(new Option('--source <source>', 'only events from this source').choices([...TRIGGER_EVENT_SOURCES]))
      .addOption(new Option('--action <action>', 'only events with this outcome').choices([...TRIGGER_ACTIONS]))
      .option('--limit <n>', 'at most this many events (default 50)', wholeNumber(1, 500))
      .option('--cursor <cursor>', 'the next page: the cursor a previous list printed'),
  ).action(async (flags: ServerFlags & TriggerEventFilter) => {
    const client = makeClient(flags, deps.env);
    await reportingErrors(deps, async () => {
      const page = await client.triggerEvents({ task: flags.task, source: flags.source, action: flags.action, limit: flags.limit, cursor: flags.cursor });
      if (flags.output === 'json') {
        writeJson(deps.stdout, page);
        return;
      }
      deps.stdout.write(formatTriggerEventsTable(page.items));
      if (page.next !== undefined) deps.stderr.write(`kiln: more events: add --cursor ${page.next}\n`);
    });
  });
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
