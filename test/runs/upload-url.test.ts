import { randomUUID } from 'node:crypto';
import { signUploadPath, uploadKeyFrom, verifyUploadSignature, UPLOAD_ID_PATTERN } from '../../src/runs/upload-url';

/** Signed upload URLs: what a worker signs, the API accepts, and nothing else. */

const KEY = uploadKeyFrom(Buffer.alloc(32, 7));
const NOW = new Date('2030-01-01T00:00:00Z');
const NOW_S = NOW.getTime() / 1000;

function parts(path: string): { id: string; expires: string; sig: string } {
  const url = new URL(path, 'http://x');
  return { id: url.pathname.slice('/v1/uploads/'.length), expires: url.searchParams.get('expires') ?? '', sig: url.searchParams.get('sig') ?? '' };
}

describe('upload URL signatures', () => {
  const id = randomUUID();
  const signed = parts(signUploadPath(KEY, id, 300, NOW));

  it('signs /v1/uploads/<id> with an expiry ttl seconds ahead, and verifies it until then', () => {
    expect(UPLOAD_ID_PATTERN.test(id)).toBe(true);
    expect(signed).toEqual({ id, expires: String(NOW_S + 300), sig: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(verifyUploadSignature(KEY, id, signed.expires, signed.sig, NOW)).toBe('valid');
    expect(verifyUploadSignature(KEY, id, signed.expires, signed.sig.toUpperCase(), new Date((NOW_S + 299) * 1000))).toBe('valid');
  });

  it('refuses it once expired', () => {
    expect(verifyUploadSignature(KEY, id, signed.expires, signed.sig, new Date((NOW_S + 300) * 1000))).toBe('expired');
    expect(verifyUploadSignature(KEY, id, signed.expires, signed.sig, new Date((NOW_S + 3600) * 1000))).toBe('expired');
  });

  it('refuses a signature for another upload id', () => {
    expect(verifyUploadSignature(KEY, randomUUID(), signed.expires, signed.sig, NOW)).toBe('mismatch');
  });

  it('refuses a tampered expiry, including the same number written otherwise', () => {
    expect(verifyUploadSignature(KEY, id, String(NOW_S + 86_400), signed.sig, NOW)).toBe('mismatch');
    expect(verifyUploadSignature(KEY, id, `0${signed.expires}`, signed.sig, NOW)).toBe('malformed');
  });

  it('refuses a signature made with another key, and the server key used directly', () => {
    const other = parts(signUploadPath(uploadKeyFrom(Buffer.alloc(32, 8)), id, 300, NOW));
    expect(verifyUploadSignature(KEY, id, other.expires, other.sig, NOW)).toBe('mismatch');
    const raw = parts(signUploadPath(Buffer.alloc(32, 7), id, 300, NOW));
    expect(verifyUploadSignature(KEY, id, raw.expires, raw.sig, NOW)).toBe('mismatch');
    expect(uploadKeyFrom(Buffer.alloc(32, 7)).equals(Buffer.alloc(32, 7))).toBe(false);
  });

  it('refuses missing or malformed parts without comparing anything', () => {
    expect(verifyUploadSignature(KEY, id, undefined, signed.sig, NOW)).toBe('malformed');
    expect(verifyUploadSignature(KEY, id, signed.expires, undefined, NOW)).toBe('malformed');
    expect(verifyUploadSignature(KEY, id, signed.expires, signed.sig.slice(2), NOW)).toBe('malformed');
    expect(verifyUploadSignature(KEY, id, 'soon', signed.sig, NOW)).toBe('malformed');
    expect(verifyUploadSignature(KEY, id, signed.expires, `${signed.sig.slice(1)}g`, NOW)).toBe('malformed');
  });
});
