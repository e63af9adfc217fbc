import type { Express } from 'express';
import type { SavedTask, TaskInput, TaskSealed } from '../runs/store';
import { parseMemory } from '../runs/policy';
import { checkTask, contextSource, INLINE_TASK_FILE, submitTaskRun, taskConfinement } from '../runs/submit';
import { normalizeTriggers } from '../triggers/settings';
import type { RouteContext } from './context';
import { principal } from './auth';
import { readBody, type FieldKinds } from './body';
import { HttpError } from './problem';
import { pathParam, runSource, sendAccepted, withUpload } from './request';
import { checkBody, NAME_PATTERN, validators, type TaskBody } from './schemas';

/**
 * Saved tasks: admins write them (secrets and credentials are write-only: answers carry only
 * their ids and registries), readers read them, runners run them with overrides.
 */

const TASK_RUN_FIELDS: FieldKinds = { json: ['values', 'set', 'secrets'] };
const NAME = new RegExp(NAME_PATTERN);

export function registerTaskRoutes(app: Express, ctx: RouteContext): void {
  const { deps, requireRole } = ctx;
  const { tasks, defaults } = deps;

  /** A task name from the path; one that cannot exist is simply not found. */
  const taskName = (value: string): string => {
    if (!NAME.test(value)) throw new HttpError(404, `no task ${value}`);
    return value;
  };

  /** The task to store and its write-only parts, checked. */
  const save = async (body: TaskBody): Promise<{ input: TaskInput; sealed: TaskSealed }> => {
    if ((body.task === undefined) === (body.file === undefined)) throw new HttpError(400, 'a task has exactly one of "task" (inline YAML) and "file" (a path in its context)');
    if (body.context !== undefined) contextSource(body.context);
    const { triggers, webhookSecret } = normalizeTriggers(body.triggers, body.context);
    const registry = body.registry ?? defaults.registry;
    if (body.task !== undefined) {
      const stored = body.secrets === undefined ? (await tasks.secretsOf(body.name)).secrets : {};
      await checkTask(
        {
          text: body.task,
          fileName: INLINE_TASK_FILE,
          taskName: body.name,
          values: body.values,
          secrets: { ...stored, ...body.secrets },
          registry,
          hostSecrets: true,
          secretsMayComeLater: true,
          // Saved as the policy its runs will have: a denied key is refused now, not at each run.
          policy: taskConfinement({ policy: body.policy }, defaults).policy,
        },
        ctx.submitDeps,
      );
    }
    const input: TaskInput = {
      name: body.name,
      platform: body.platform ?? defaults.platform,
      pool: body.pool ?? defaults.pool,
      timeout: body.timeout ?? defaults.timeout,
      status: body.status ?? 'Enabled',
      concurrency: body.concurrency ?? 0,
      triggers,
    };
    if (body.task !== undefined) input.task = body.task;
    if (body.file !== undefined) input.file = body.file;
    if (body.context !== undefined) input.context = body.context;
    if (body.values !== undefined) input.values = body.values;
    if (body.registry !== undefined) input.registry = body.registry;
    if (body.policy !== undefined) input.policy = body.policy;
    if (body.limits !== undefined) {
      if (body.limits.memory !== undefined) parseMemory(body.limits.memory);
      input.limits = body.limits;
    }
    const sealed: TaskSealed = {};
    if (body.secrets !== undefined) sealed.secrets = body.secrets;
    if (body.credentials !== undefined) sealed.credentials = body.credentials;
    if (webhookSecret !== undefined) sealed.webhookSecret = webhookSecret;
    return { input, sealed };
  };

  /** The triggers follow the task: its timers are scheduled (or removed) as it now says. */
  const saved = async (task: SavedTask): Promise<void> => {
    await deps.triggers?.service.taskSaved(task);
  };

  app.post('/v1/tasks', requireRole('admin'), async (req, res) => {
    const body = checkBody(validators.task, (await readBody(req, res)).body);
    const { input, sealed } = await save(body);
    const created = await tasks.create(input, sealed);
    if (!created) throw new HttpError(409, `task ${body.name} exists; PUT /v1/tasks/${body.name} replaces it`);
    await saved(created);
    res.status(201).location(`/v1/tasks/${created.name}`).json(created);
  });

  app.get('/v1/tasks', requireRole('reader'), async (_req, res) => {
    res.json({ items: await tasks.list() });
  });

  app.get('/v1/tasks/:name', requireRole('reader'), async (req, res) => {
    const name = taskName(pathParam(req, 'name'));
    const task = await tasks.get(name);
    if (!task) throw new HttpError(404, `no task ${name}`);
    res.json(task);
  });

  app.put('/v1/tasks/:name', requireRole('admin'), async (req, res) => {
    const name = taskName(pathParam(req, 'name'));
    const raw = (await readBody(req, res)).body;
    // The name is the path's; the body may repeat it, not contradict it.
    const withName = raw !== null && typeof raw === 'object' && !Array.isArray(raw) && !('name' in raw) ? { ...raw, name } : raw;
    const body = checkBody(validators.task, withName);
    if (body.name !== name) throw new HttpError(400, `the body names task "${body.name}", the path "${name}"`);
    const existed = (await tasks.get(name)) !== undefined;
    const { input, sealed } = await save(body);
    const stored = await tasks.put(input, sealed);
    await saved(stored);
    res.status(existed ? 200 : 201).json(stored);
  });

  app.delete('/v1/tasks/:name', requireRole('admin'), async (req, res) => {
    const name = taskName(pathParam(req, 'name'));
    if (!(await tasks.delete(name))) throw new HttpError(404, `no task ${name}`);
    await deps.triggers?.service.taskDeleted(name);
    res.status(204).end();
  });

  app.post('/v1/tasks/:name/runs', requireRole('runner'), async (req, res) => {
    const name = taskName(pathParam(req, 'name'));
    const { body, upload } = await readBody(req, res, { upload: { dir: deps.uploadsDir, capBytes: defaults.uploadCapBytes, fields: TASK_RUN_FIELDS } });
    await withUpload(upload, async () => {
      const input = checkBody(validators.taskRun, body);
      const task = await tasks.get(name);
      if (!task) throw new HttpError(404, `no task ${name}`);
      if (task.status === 'Disabled') throw new HttpError(409, `task ${name} is disabled`);
      const saved = task.context !== undefined ? contextSource(task.context) : ({ kind: 'none' } as const);
      const who = principal(res)?.name;
      const submitted = await submitTaskRun(
        task,
        {
          trigger: who ? { type: 'Manual', by: who } : { type: 'Manual' },
          source: runSource(input.context, upload, saved),
          ...(input.values ? { values: input.values } : {}),
          ...(input.set ? { set: input.set } : {}),
          ...(input.secrets ? { secrets: input.secrets } : {}),
        },
        { ...ctx.submitDeps, tasks, defaults },
      );
      sendAccepted(res, submitted);
    });
  });
}
