import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import type { Express, Request } from 'express';
import type { RunSource } from '../domain/run-record';
import { TRIGGER_TYPES } from '../domain/trigger';
import { RUN_STATUSES } from '../domain/status';
import { QUICK_BUILD_FILE, quickBuildTask } from '../runs/quick-build';
import type { RunFilter } from '../runs/store';
import { submitRun, taskConfinement, type SubmitInput } from '../runs/submit';
import { uploadPath } from '../runs/worker-run';
import type { RouteContext } from './context';
import { principal } from './auth';
import { readBody, type FieldKinds, type Upload } from './body';
import { HttpError, sendProblem } from './problem';
import { enumQueryParam, MAX_PAGE, onlyQueryParams, pageLimit, pathParam, queryParam, runSource, sendAccepted, withUpload } from './request';
import { checkBody, NAME_PATTERN, validators } from './schemas';

/** Quick runs and builds, the run list, one run, cancel and rerun. */

const RUN_FIELDS: FieldKinds = { json: ['values', 'set', 'secrets', 'credentials'], integer: ['timeout'] };
const BUILD_FIELDS: FieldKinds = { json: ['tags', 'buildArgs', 'credentials'], integer: ['timeout'], boolean: ['noPush'] };


export function registerRunRoutes(app: Express, ctx: RouteContext): void {
  const { deps, requireRole } = ctx;
  const uploadTo = (fields: FieldKinds) => ({ upload: { dir: deps.uploadsDir, capBytes: deps.defaults.uploadCapBytes, fields } });

  /** What every manual run shares: the server's defaults and who asked. */
  const manualRun = (who: string | undefined): Pick<SubmitInput, 'trigger' | 'platform' | 'pool' | 'queueTtl' | 'policy' | 'limits'> => ({
    trigger: who ? { type: 'Manual', by: who } : { type: 'Manual' },
    platform: deps.defaults.platform,
    pool: deps.defaults.pool,
    queueTtl: deps.defaults.queueTtl,
    policy: deps.defaults.policy ?? 'restricted',
    limits: deps.defaults.limits ?? {},
  });

  app.post('/v1/runs', requireRole('runner'), async (req, res) => {
    const { body, upload } = await readBody(req, res, uploadTo(RUN_FIELDS));
    await withUpload(upload, async () => {
      const input = checkBody(validators.run, body);
      const submitted = await submitRun(
        {
          ...manualRun(principal(res)?.name),
          task: { text: input.task, fileName: 'acb.yaml' },
          values: input.values,
          set: input.set,
          secrets: { secrets: input.secrets ?? {}, credentials: input.credentials ?? [] },
          registry: input.registry ?? deps.defaults.registry,
          timeout: input.timeout ?? deps.defaults.timeout,
          source: runSource(input.context, upload),
        },
        ctx.submitDeps,
      );
      sendAccepted(res, submitted);
    });
  });

  app.post('/v1/builds', requireRole('runner'), async (req, res) => {
    const { body, upload } = await readBody(req, res, uploadTo(BUILD_FIELDS));
    await withUpload(upload, async () => {
      const input = checkBody(validators.build, body);
      if (input.context === undefined && !upload) throw new HttpError(400, 'a build needs a context: a URL in "context", or an uploaded "context" tar');
      const registry = input.registry ?? deps.defaults.registry;
      const buildArgs = Array.isArray(input.buildArgs) ? input.buildArgs : Object.entries(input.buildArgs ?? {}).map(([k, v]) => `${k}=${v}`);
      const text = quickBuildTask({ tags: input.tags, file: input.dockerfile, buildArgs, target: input.target, push: input.noPush !== true, registry });
      const submitted = await submitRun(
        {
          ...manualRun(principal(res)?.name),
          task: { text, fileName: QUICK_BUILD_FILE },
          secrets: { secrets: {}, credentials: input.credentials ?? [] },
          registry,
          timeout: input.timeout ?? deps.defaults.timeout,
          source: runSource(input.context, upload),
        },
        ctx.submitDeps,
      );
      sendAccepted(res, submitted);
    });
  });

  app.get('/v1/runs', requireRole('reader'), async (req, res) => {
    res.json(await deps.runs.list(runFilter(req)));
  });

  app.get('/v1/runs/:id', requireRole('reader'), async (req, res) => {
    const id = pathParam(req, 'id');
    const run = await deps.runs.get(id);
    if (!run) throw new HttpError(404, `no run ${id}`);
    res.json(run);
  });

  /**
   * The same request again, through the same submit path: its task text (or file), values,
   * registry, timeout, source, platform, pool and queue TTL, and its stored secrets and
   * credentials (decrypted here only to check the task, as for any submit). The policy and limits
   * are what a new run of the same kind gets now (the server's, or its task's), so that repeating
   * an old run never escapes a policy tightened since. An uploaded context is copied under a new
   * id, since each run's upload is removed when that run ends.
   */
  app.post('/v1/runs/:id/rerun', requireRole('runner'), async (req, res) => {
    const id = pathParam(req, 'id');
    const original = await deps.runs.submission(id);
    if (!original) throw new HttpError(404, `no run ${id}`);
    const { request, secrets } = original;
    if (!secrets) throw notRepeatable(id, "its secrets were sealed with another server key and cannot be read");
    let confinement: Pick<SubmitInput, 'policy' | 'limits'>;
    if (request.taskName !== undefined) {
      const task = await deps.tasks.get(request.taskName);
      if (!task) throw notRepeatable(id, `its task ${request.taskName} no longer exists`);
      if (task.status === 'Disabled') throw notRepeatable(id, `its task ${request.taskName} is disabled`);
      confinement = taskConfinement(task, deps.defaults);
    } else {
      confinement = { policy: deps.defaults.policy ?? 'restricted', limits: deps.defaults.limits ?? {} };
    }
    const upload = request.source.kind === 'upload' ? await copyUpload(id, request.source) : undefined;
    await withUpload(upload, async () => {
      const { taskText, fileName, trigger: _trigger, source, policy: _policy, limits: _limits, ...same } = request;
      const who = principal(res)?.name;
      const submitted = await submitRun(
        {
          ...same,
          ...confinement,
          // A `file` task was stored with an empty text: the worker reads it from the source again.
          task: taskText === '' ? { file: fileName } : { text: taskText, fileName },
          source: upload ? { kind: 'upload', uploadId: upload.uploadId, bytes: upload.bytes } : source,
          trigger: { type: 'Manual', ...(who ? { by: who } : {}), rerunOf: id },
          secrets,
          // Only a saved task's runs may read `env:` and `file:` secrets on the worker (as its first run could).
          hostSecrets: request.taskName !== undefined,
        },
        ctx.submitDeps,
      );
      sendAccepted(res, submitted);
    });
  });

  /** A copy of the run's upload under a new id, or 409 when it is gone (its run ended). */
  const copyUpload = async (runId: string, source: Extract<RunSource, { kind: 'upload' }>): Promise<Upload> => {
    const uploadId = randomUUID();
    const path = uploadPath(deps.uploadsDir, uploadId);
    try {
      // A fresh file (not a link): the sweep of old uploads goes by its age.
      await copyFile(uploadPath(deps.uploadsDir, source.uploadId), path, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw notRepeatable(runId, 'its context was an uploaded tar, which is removed once its run ends; submit it again with the context');
      }
      throw err;
    }
    return { uploadId, path, bytes: source.bytes };
  };

  app.post('/v1/runs/:id/cancel', requireRole('runner'), async (req, res) => {
    const id = pathParam(req, 'id');
    const outcome = await deps.runs.cancel(id);
    switch (outcome.outcome) {
      case 'missing':
        throw new HttpError(404, `no run ${id}`);
      case 'final':
        sendProblem(res, 409, `run ${id} already ended ${outcome.run.status}`, { extensions: { run: outcome.run } });
        return;
      case 'canceled':
        // The job would only be refused by its worker; removing it frees the queue sooner.
        await deps.queue.remove(id).catch((err: unknown) => ctx.logger.warn({ err, runId: id }, 'could not remove the job of a canceled run'));
        break;
      case 'requested':
        break;
      default: {
        const never: never = outcome;
        throw new Error(`unknown cancel outcome ${JSON.stringify(never)}`);
      }
    }
    res.status(202).json(outcome.run);
  });
}

/** 409: the run cannot be submitted again as it was. */
function notRepeatable(runId: string, why: string): HttpError {
  return new HttpError(409, `run ${runId} cannot be run again: ${why}`, { type: 'urn:kiln:problem:not-repeatable' });
}

function runFilter(req: Request): RunFilter {
  onlyQueryParams(req, ['status', 'task', 'trigger', 'since', 'until', 'cursor', 'limit']);
  const param = (name: string): string | undefined => queryParam(req, name);
  const filter: RunFilter = {};
  const status = enumQueryParam(req, 'status', RUN_STATUSES);
  if (status !== undefined) filter.status = status;
  const trigger = enumQueryParam(req, 'trigger', TRIGGER_TYPES);
  if (trigger !== undefined) filter.trigger = trigger;
  const task = param('task');
  if (task !== undefined) {
    if (!new RegExp(NAME_PATTERN).test(task)) throw new HttpError(400, 'task must be a task name');
    filter.task = task;
  }
  for (const name of ['since', 'until'] as const) {
    const text = param(name);
    if (text === undefined) continue;
    const time = Date.parse(text);
    if (Number.isNaN(time)) throw new HttpError(400, `${name} must be an ISO 8601 time`);
    // The store compares its ISO timestamps as text: give it the same form.
    filter[name] = new Date(time).toISOString();
  }
  const cursor = param('cursor');
  if (cursor !== undefined) {
    if (cursor.length === 0 || cursor.length > 200) throw new HttpError(400, 'cursor is not one this API gave');
    filter.cursor = cursor;
  }
  const limit = pageLimit(req, MAX_PAGE);
  if (limit !== undefined) filter.limit = limit;
  return filter;
}
