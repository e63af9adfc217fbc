import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Express } from 'express';
import { UPLOAD_ID_PATTERN, verifyUploadSignature } from '../runs/upload-url';
import type { RouteContext } from './context';
import { HttpError } from './problem';
import { pathParam, queryParam } from './request';

/**
 * `GET /v1/uploads/{uploadId}`: a stored upload, for a worker on a host that cannot see the API's
 * data directory. It takes no bearer token: the URL carries its own signature (see
 * runs/upload-url.ts), which only holders of the server key can make. Without an upload key the
 * route serves nothing (404).
 */
export function registerUploadRoutes(app: Express, ctx: RouteContext): void {
  const { deps } = ctx;
  app.get('/v1/uploads/:uploadId', async (req, res) => {
    const uploadId = pathParam(req, 'uploadId');
    const key = deps.uploadKey;
    if (!key || !UPLOAD_ID_PATTERN.test(uploadId)) throw new HttpError(404, 'no such upload');
    const now = deps.now?.() ?? new Date();
    const check = verifyUploadSignature(key, uploadId, queryParam(req, 'expires'), queryParam(req, 'sig'), now);
    if (check !== 'valid') {
      ctx.logger.warn({ uploadId, check }, 'upload request refused: its signature is not valid');
      throw new HttpError(403, check === 'expired' ? 'the upload URL has expired' : 'the upload URL is not signed by this service');
    }
    let file: FileHandle;
    try {
      file = await open(join(deps.uploadsDir, `${uploadId}.tar`), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new HttpError(404, `no upload ${uploadId}`);
      throw err;
    }
    let size: number;
    try {
      size = (await file.stat()).size;
    } catch (err) {
      await file.close().catch(() => undefined);
      throw err;
    }
    res.status(200).set({ 'Content-Type': 'application/octet-stream', 'Content-Length': String(size), 'Cache-Control': 'no-store' });
    const started = Date.now();
    ctx.logger.info({ uploadId, bytes: size }, 'upload download started');
    try {
      // The stream closes the file when it ends or fails.
      await pipeline(file.createReadStream(), res);
      ctx.logger.info({ uploadId, bytes: size, ms: Date.now() - started }, 'upload download finished');
    } catch (err) {
      // The headers are out: a cut connection is the only way left to say the body is incomplete.
      ctx.logger.warn({ uploadId, bytes: size, ms: Date.now() - started, err: (err as Error).message }, 'upload download failed');
      res.destroy();
    }
  });
}
