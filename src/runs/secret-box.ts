import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { KilnError } from '../errors';

/**
 * Secrets at rest (run secrets, task secrets, registry credentials): AES-256-GCM under the
 * server key. A sealed value is `v1.<iv>.<tag>.<ciphertext>` in base64url; opening a value that
 * was tampered with, or sealed under another key, throws.
 */

const KEY_BYTES = 32;

export class SecretBox {
  constructor(private readonly key: Buffer) {
    if (key.length !== KEY_BYTES) throw new KilnError('invalid_input', `the secret key must be ${KEY_BYTES} bytes, not ${key.length}`);
  }

  seal(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return ['v1', iv, cipher.getAuthTag(), body].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.');
  }

  open(sealed: string): string {
    const [version, iv, tag, body] = sealed.split('.');
    if (version !== 'v1' || iv === undefined || tag === undefined || body === undefined) throw new Error('not a sealed secret');
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString('utf8');
  }
}

/**
 * The server key: `KILN_SECRET_KEY` (64 hex digits or 32 bytes in base64), else the key file,
 * created with a random key (mode 0600) on first start.
 */
export function loadSecretKey(env: NodeJS.ProcessEnv, keyFile: string): Buffer {
  const given = env.KILN_SECRET_KEY?.trim();
  if (given) {
    const key = /^[0-9a-f]{64}$/i.test(given) ? Buffer.from(given, 'hex') : Buffer.from(given, 'base64');
    if (key.length !== KEY_BYTES) throw new KilnError('invalid_input', 'KILN_SECRET_KEY must be 32 bytes: 64 hex digits or base64');
    return key;
  }
  if (existsSync(keyFile)) {
    const key = Buffer.from(readFileSync(keyFile, 'utf8').trim(), 'hex');
    if (key.length !== KEY_BYTES) throw new KilnError('invalid_input', `the key file ${keyFile} does not hold a 32-byte key in hex`);
    return key;
  }
  const key = randomBytes(KEY_BYTES);
  mkdirSync(dirname(keyFile), { recursive: true, mode: 0o700 });
  // wx: two processes starting at once must not both write a key; the loser reads the winner's.
  try {
    writeFileSync(keyFile, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadSecretKey(env, keyFile);
    throw err;
  }
  chmodSync(keyFile, 0o600);
  return key;
}
