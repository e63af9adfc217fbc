import { relative, resolve, sep } from 'node:path';
import express, { type Express, type Request } from 'express';
import { HttpError } from './problem';

/**
 * The web console: the built single-page app (Vite's output: `index.html` and hashed files under
 * `assets/`) served from a directory at `/`, without a token (the page asks for one and sends it
 * to /v1 itself). `index.html` answers `/` and every other GET that asks for HTML outside the
 * API's paths (client-side routes such as `/runs/ka12`); it is never cached without revalidation,
 * while the hashed assets are immutable. These pages get their own Content-Security-Policy: the
 * API's `default-src 'none'` would stop their scripts.
 */

/** Scripts, styles, images and connections of its own origin only; no inline code, no framing, no forms. */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Hashed names: a changed file gets a new name, so a cached one never goes stale. */
export const ASSET_CACHE_CONTROL = 'public, max-age=31536000, immutable';
/** index.html (and the other unhashed files) is checked again at each use, so a new build shows at once. */
export const PAGE_CACHE_CONTROL = 'no-cache';

/** Paths that are never the console's, whatever they ask for. */
const API_PATHS = ['/v1', '/healthz', '/readyz', '/metrics'];
/** Paths that are files or nothing: a missing asset is a 404, not the page. */
const FILE_PATHS = ['/assets'];

function under(path: string, prefixes: readonly string[]): boolean {
  return prefixes.some((p) => path === p || path.startsWith(`${p}/`));
}

function wantsHtml(req: Request): boolean {
  return (req.get('accept') ?? '').toLowerCase().includes('text/html');
}

function notBuilt(): HttpError {
  return new HttpError(404, 'the web console is not built: its directory has no index.html. Build it with `npm run build` (it writes dist/web), then reload', {
    type: 'urn:kiln:problem:console-not-built',
  });
}

/** Serves the console from `dir`; registered after the API's routes, before the 404 handler. */
export function serveConsole(app: Express, dir: string): void {
  const root = resolve(dir);
  const files = express.static(root, {
    index: 'index.html',
    // `/assets` is not redirected to `/assets/`, and no directory is listed.
    redirect: false,
    dotfiles: 'ignore',
    fallthrough: true,
    cacheControl: false,
    setHeaders: (res, path) => {
      const rel = `/${relative(root, path).split(sep).join('/')}`;
      res.setHeader('Cache-Control', under(rel, FILE_PATHS) ? ASSET_CACHE_CONTROL : PAGE_CACHE_CONTROL);
    },
  });

  app.use((req, res, next) => {
    if ((req.method !== 'GET' && req.method !== 'HEAD') || under(req.path, API_PATHS)) {
      next();
      return;
    }
    res.setHeader('Content-Security-Policy', CONSOLE_CSP);
    files(req, res, (err?: unknown) => {
      if (err) return next(err);
      // Not a file of the console.
      if (req.path !== '/' && (under(req.path, FILE_PATHS) || !wantsHtml(req))) return next();
      // `/` without index.html, or a client-side route: the page, which routes it.
      const asked = req.url;
      req.url = '/index.html';
      files(req, res, (again?: unknown) => {
        req.url = asked;
        next(again ?? notBuilt());
      });
    });
  });
}
