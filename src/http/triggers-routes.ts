import type { Express, Request, Response } from 'express';
import { SOURCE_PROVIDERS, type SourceProvider } from '../domain/trigger';
import { TRIGGER_ACTIONS, TRIGGER_EVENT_SOURCES, type TriggerEventFilter } from '../triggers/store';
import { canonical, type HookAnswer } from '../triggers/service';
import type { RouteContext } from './context';
import { readBody, readRawBody } from './body';
import { HttpError } from './problem';
import { enumQueryParam, MAX_PAGE, onlyQueryParams, pageLimit, pathParam, queryParam } from './request';
import { checkBody, NAME_PATTERN, validators } from './schemas';
import { errorMessage } from '../errors';

/**
 * The triggers' routes: the webhooks of source providers (open: the signature is the
 * authentication), registry notifications (a runner token, which the registry's endpoint
 * configuration sends as a header), the dependency index and the decision log (readers), and the
 * timers of a task (admins write them).
 */

/** GitHub's cap on a webhook payload; a bigger body is refused from its Content-Length, unread. */
export const WEBHOOK_LIMIT_BYTES = 25 * 1024 * 1024;
/** A registry notification envelope: a few events, each under a kilobyte. */
const NOTIFICATION_LIMIT_BYTES = 2 * 1024 * 1024;
const NAME = new RegExp(NAME_PATTERN);
const REGISTRY_HOST = /^[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?$/;

export function registerTriggerRoutes(app: Express, ctx: RouteContext): void {
  const { deps, requireRole } = ctx;
  const triggers = deps.triggers;
  if (!triggers) return;
  const { tasks } = deps;

  const existingTask = async (req: Request): Promise<string> => {
    const name = pathParam(req, 'name');
    if (!NAME.test(name) || !(await tasks.get(name))) throw new HttpError(404, `no task ${name}`);
    return name;
  };
  const send = (res: Response, answer: HookAnswer): void => {
    res.status(answer.status).json(answer.body);
  };

  app.post('/v1/tasks/:name/hooks/:provider', async (req, res) => {
    const provider = pathParam(req, 'provider');
    if (!(SOURCE_PROVIDERS as readonly string[]).includes(provider)) throw new HttpError(404, `no webhook provider ${provider}; one of ${SOURCE_PROVIDERS.join(', ')}`);
    const name = pathParam(req, 'name');
    const raw = await readRawBody(req, res, WEBHOOK_LIMIT_BYTES);
    // An unknown task answers as a bad signature does: task names are not probed through here.
    const answer = NAME.test(name)
      ? await triggers.service.sourceWebhook(name, provider as SourceProvider, req.headers, raw)
      : { status: 401, body: { action: 'rejected' as const, reason: 'the signature does not match' } };
    send(res, answer);
  });

  app.post('/v1/hooks/registry', requireRole('runner'), async (req, res) => {
    const host = typeof req.query.registry === 'string' ? req.query.registry : undefined;
    if (host !== undefined && !REGISTRY_HOST.test(host)) throw new HttpError(400, 'registry must be a host[:port]');
    const raw = await readRawBody(req, res, NOTIFICATION_LIMIT_BYTES);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8')) as unknown;
    } catch {
      throw new HttpError(400, 'the body must be a registry notification envelope (JSON)');
    }
    send(res, await triggers.service.registryNotification(body, host));
  });

  app.get('/v1/tasks/:name/dependencies', requireRole('reader'), async (req, res) => {
    const name = await existingTask(req);
    const [baseImages, outputs] = await Promise.all([triggers.dependencies.dependenciesOf(name), triggers.dependencies.outputsOf(name)]);
    res.json({ task: name, baseImages: baseImages.map(({ task: _task, ...rest }) => rest), outputs });
  });

  app.get('/v1/dependencies', requireRole('reader'), async (req, res) => {
    const image = typeof req.query.image === 'string' ? req.query.image : undefined;
    if (image === undefined || image.length === 0 || image.length > 512) throw new HttpError(400, 'give ?image=REFERENCE (e.g. 127.0.0.1:5000/base:1)');
    let reference: string;
    try {
      reference = canonical(image);
    } catch (err) {
      throw new HttpError(400, `image: ${errorMessage(err)}`);
    }
    const dependents = await triggers.dependencies.dependents(reference);
    res.json({ image: reference, dependents: dependents.map(({ image: _image, ...rest }) => rest) });
  });

  app.get('/v1/triggers/events', requireRole('reader'), async (req, res) => {
    res.json(await triggers.decisions.list(eventFilter(req)));
  });

  app.get('/v1/tasks/:name/timers', requireRole('reader'), async (req, res) => {
    const name = await existingTask(req);
    const task = await tasks.get(name);
    const next = new Map((await triggers.service.listTimers(name)).map((t) => [t.name, t.next]));
    res.json({ items: (task?.triggers.timers ?? []).map((t) => ({ ...t, next: t.enabled ? (next.get(t.name) ?? null) : null })) });
  });

  app.put('/v1/tasks/:name/timers/:timer', requireRole('admin'), async (req, res) => {
    const name = await existingTask(req);
    const timerName = pathParam(req, 'timer');
    if (!NAME.test(timerName)) throw new HttpError(400, `timer name "${timerName}" must match ${NAME_PATTERN}`);
    const body = checkBody(validators.timer, (await readBody(req, res)).body);
    const { saved, created } = await triggers.service.setTimer(name, { name: timerName, ...body });
    res.status(created ? 201 : 200).json(saved.triggers.timers.find((t) => t.name === timerName));
  });

  app.delete('/v1/tasks/:name/timers/:timer', requireRole('admin'), async (req, res) => {
    const name = await existingTask(req);
    if (!(await triggers.service.removeTimer(name, pathParam(req, 'timer')))) throw new HttpError(404, `task ${name} has no timer ${pathParam(req, 'timer')}`);
    res.status(204).end();
  });
}

function eventFilter(req: Request): TriggerEventFilter {
  onlyQueryParams(req, ['task', 'source', 'action', 'cursor', 'limit']);
  const filter: TriggerEventFilter = {};
  const task = queryParam(req, 'task');
  if (task !== undefined) filter.task = task;
  const source = enumQueryParam(req, 'source', TRIGGER_EVENT_SOURCES);
  if (source !== undefined) filter.source = source;
  const action = enumQueryParam(req, 'action', TRIGGER_ACTIONS);
  if (action !== undefined) filter.action = action;
  const cursor = queryParam(req, 'cursor');
  if (cursor !== undefined) {
    if (!/^\d{1,20}-\d{1,20}$/.test(cursor)) throw new HttpError(400, 'cursor is not one this API gave');
    filter.cursor = cursor;
  }
  const limit = pageLimit(req, MAX_PAGE);
  if (limit !== undefined) filter.limit = limit;
  return filter;
}
