import type { Request, Response } from 'express';
import type { RunSource } from '../domain/run-record';
import type { Submitted } from '../runs/submit';
import { contextSource } from '../runs/submit';
import { formatDiagnostic } from '../errors';
import { discardUpload, type Upload } from './body';
import { HttpError } from './problem';

/** Small helpers the route modules share. */

/** A query parameter given at most once, or undefined. */
export function queryParam(req: Request, name: string): string | undefined {
  const value: unknown = (req.query as Record<string, unknown>)[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new HttpError(400, `the query parameter "${name}" may be given once`);
  return value;
}

/** Refuses (400) a query parameter not in `known`. */
export function onlyQueryParams(req: Request, known: readonly string[]): void {
  for (const name of Object.keys(req.query)) {
    if (!known.includes(name)) throw new HttpError(400, `unknown query parameter "${name}"; known: ${known.join(', ')}`);
  }
}

/** A query parameter that must be one of `values`, or undefined. */
export function enumQueryParam<T extends string>(req: Request, name: string, values: readonly T[]): T | undefined {
  const value = queryParam(req, name);
  if (value !== undefined && !(values as readonly string[]).includes(value)) throw new HttpError(400, `${name} must be one of ${values.join(', ')}`);
  return value as T | undefined;
}

/** The largest page a list route gives. */
export const MAX_PAGE = 500;

/** A page size from `?limit=`, 1 to `max`, or undefined. */
export function pageLimit(req: Request, max: number): number | undefined {
  const limit = queryParam(req, 'limit');
  if (limit === undefined) return undefined;
  const n = Number(limit);
  if (!/^\d+$/.test(limit) || n < 1 || n > max) throw new HttpError(400, `limit must be a whole number from 1 to ${max}`);
  return n;
}

/** A route parameter (always present on the routes that use it). */
export function pathParam(req: Request, name: string): string {
  const value = (req.params as Record<string, string | undefined>)[name];
  if (value === undefined) throw new HttpError(404, `no ${name} in the path`);
  return value;
}

/** Runs `work`; if it fails, the upload it was given is removed before the error goes on. */
export async function withUpload<T>(upload: Upload | undefined, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    await discardUpload(upload);
    throw err;
  }
}

/** Where a run's files come from: a context URL, an uploaded tar, or nothing; never both. */
export function runSource(context: string | undefined, upload: Upload | undefined, fallback: RunSource = { kind: 'none' }): RunSource {
  if (context !== undefined && upload) throw new HttpError(400, 'give the context as a URL or as an uploaded tar, not both');
  if (upload) return { kind: 'upload', uploadId: upload.uploadId, bytes: upload.bytes };
  if (context !== undefined) return contextSource(context);
  return fallback;
}

/** 202 with the new run's id and status, and where to find it. */
export function sendAccepted(res: Response, submitted: Submitted): void {
  const { run, warnings } = submitted;
  res.status(202).location(`/v1/runs/${encodeURIComponent(run.runId)}`);
  res.json({ runId: run.runId, status: run.status, ...(warnings.length > 0 ? { warnings: warnings.map(formatDiagnostic) } : {}) });
}
