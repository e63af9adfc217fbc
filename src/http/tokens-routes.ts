import type { Express } from 'express';
import type { RouteContext } from './context';
import { principal } from './auth';
import { readBody } from './body';
import { HttpError } from './problem';
import { pathParam } from './request';
import { checkBody, validators } from './schemas';

/**
 * API tokens, for admins: a new token is shown once, in the answer that creates it. And, for any
 * token, what it is: a page that was given a token learns what it may offer with it.
 */
export function registerTokenRoutes(app: Express, ctx: RouteContext): void {
  const { tokens } = ctx.deps;
  const admin = ctx.requireRole('admin');

  app.get('/v1/whoami', ctx.requireRole('reader'), (_req, res) => {
    const who = principal(res);
    if (!who) throw new HttpError(401, 'a bearer token is required');
    res.json({ name: who.name || null, role: who.role });
  });

  app.post('/v1/tokens', admin, async (req, res) => {
    const body = checkBody(validators.token, (await readBody(req, res)).body);
    const { token, info } = await tokens.create(body.name, body.role);
    res.status(201).set('Cache-Control', 'no-store').json({ ...info, token });
  });

  app.get('/v1/tokens', admin, async (_req, res) => {
    res.json({ items: await tokens.list() });
  });

  app.delete('/v1/tokens/:id', admin, async (req, res) => {
    const id = pathParam(req, 'id');
    if (!(await tokens.revoke(id))) throw new HttpError(404, `no token ${id}`);
    res.status(204).end();
  });
}
