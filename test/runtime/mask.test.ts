import { SecretMasker } from '../../src/runtime/mask';

describe('secret masking', () => {
  const secret = 's3cr3t-Value-XYZ123';
  const masker = new SecretMasker([secret, 'ab', 'line one\nline two']);
  const b64 = (s: string): string => Buffer.from(s).toString('base64');

  it.each([
    ['the exact value', `token=${secret};`],
    ['base64 of the value', `x ${b64(secret)} y`],
    ['base64 at byte offset 1 (user:password)', b64(`u:${secret}`)],
    ['base64 at byte offset 2', b64(`us:${secret}`)],
    ['base64 at byte offset 0 inside a longer text', b64(`abc${secret}tail`)],
    ['URL-encoded', `?q=${encodeURIComponent(`${secret}/&`)}`],
    ['JSON-escaped', JSON.stringify({ v: `${secret}"` })],
  ])('masks %s', (_name, line) => {
    const masked = masker.mask(line);
    expect(masked).toContain('***');
    expect(masked).not.toContain(secret);
    // No run of 12 characters of any encoding of the secret is left.
    for (const enc of [b64(secret), encodeURIComponent(secret)]) {
      for (let i = 0; i + 12 <= enc.length; i += 4) expect(masked).not.toContain(enc.slice(i, i + 12));
    }
  });

  it('masks each line of a multi-line secret, and short values only when exact', () => {
    expect(masker.mask('> line two <')).toBe('> *** <');
    expect(masker.mask('cab')).toBe('c***');
    expect(masker.mask(b64('ab'))).toBe(b64('ab'));
  });

  it('leaves lines without secrets alone', () => {
    expect(masker.mask('hello world')).toBe('hello world');
    expect(new SecretMasker([]).mask('anything')).toBe('anything');
  });
});
