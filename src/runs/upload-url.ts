import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Signed URLs for uploaded contexts: a worker on another host fetches an upload from the API with
 * `GET /v1/uploads/{uploadId}?expires=<unix seconds>&sig=<hex>`, where `sig` is
 * HMAC-SHA256("upload:<uploadId>:<expires>") under the upload key. The API and every worker hold
 * the server key (`KILN_SECRET_KEY`), so both derive the same upload key and no token travels.
 * The upload key is derived, never the server key itself: a leaked URL says nothing about the key
 * that seals the secrets at rest.
 */

/** The ids the API gives uploads (randomUUID): the only ones the upload route serves. */
export const UPLOAD_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The path the API serves uploads under (followed by the upload id). */
export const UPLOADS_PATH = '/v1/uploads/';

/** The key that signs upload URLs, derived from the server key. */
export function uploadKeyFrom(serverKey: Buffer): Buffer {
  return createHmac('sha256', serverKey).update('kiln upload url v1').digest();
}

function signature(key: Buffer, uploadId: string, expires: number): Buffer {
  return createHmac('sha256', key).update(`upload:${uploadId}:${expires}`).digest();
}

/** `/v1/uploads/<uploadId>?expires=...&sig=...`, valid for `ttlSeconds` from `now`. */
export function signUploadPath(key: Buffer, uploadId: string, ttlSeconds: number, now: Date = new Date()): string {
  const expires = Math.floor(now.getTime() / 1000) + Math.max(1, Math.floor(ttlSeconds));
  return `${UPLOADS_PATH}${encodeURIComponent(uploadId)}?expires=${expires}&sig=${signature(key, uploadId, expires).toString('hex')}`;
}

/** Why a signature was refused, or that it was not. */
export type UploadSignatureCheck = 'valid' | 'malformed' | 'mismatch' | 'expired';

/**
 * Checks the `expires` and `sig` query values of an upload URL for `uploadId`. The signature is
 * compared in constant time, and before the expiry: an answer never tells a forger which part
 * of a guess was wrong before the guess is right.
 */
export function verifyUploadSignature(key: Buffer, uploadId: string, expires: string | undefined, sig: string | undefined, now: Date = new Date()): UploadSignatureCheck {
  if (expires === undefined || sig === undefined || !/^[1-9]\d{0,11}$/.test(expires) || !/^[0-9a-f]{64}$/i.test(sig)) return 'malformed';
  const when = Number(expires);
  if (!timingSafeEqual(signature(key, uploadId, when), Buffer.from(sig, 'hex'))) return 'mismatch';
  return when > Math.floor(now.getTime() / 1000) ? 'valid' : 'expired';
}
