/**
 * Replaces secret values in log lines, including the encodings a step is likely to print them in:
 * base64 (also as part of a longer base64 text, at each of the three byte alignments, which is
 * how `base64(user:password)` shows up), URL encoding and JSON string escaping. Lines are masked
 * whole; the backend delivers complete lines, so a secret is never split across two calls.
 */

export const MASK = '***';
/** Shorter values would mask ordinary words; they are still masked when exact, but not encoded. */
const MIN_ENCODED_LENGTH = 4;

export class SecretMasker {
  private readonly pattern: RegExp | undefined;

  constructor(secrets: readonly string[]) {
    const needles = new Set<string>();
    for (const secret of secrets) {
      // A multi-line secret is printed line by line; mask each line of it.
      for (const part of secret.split(/\r?\n/)) {
        if (part.length === 0) continue;
        needles.add(part);
        if (part.length < MIN_ENCODED_LENGTH) continue;
        for (const variant of encodedVariants(part)) if (variant.length >= MIN_ENCODED_LENGTH) needles.add(variant);
      }
    }
    // Longest first, so that a secret containing another is masked whole.
    const sorted = [...needles].sort((a, b) => b.length - a.length);
    this.pattern = sorted.length ? new RegExp(sorted.map(escapeRegExp).join('|'), 'g') : undefined;
  }

  mask(line: string): string {
    return this.pattern ? line.replace(this.pattern, MASK) : line;
  }
}

function encodedVariants(secret: string): string[] {
  const bytes = Buffer.from(secret, 'utf8');
  const variants = [
    encodeURIComponent(secret),
    JSON.stringify(secret).slice(1, -1),
    bytes.toString('base64').replace(/=+$/, ''),
  ];
  // Inside a longer base64 text the secret starts at byte offset 1 or 2 of a 3-byte group: encode
  // it after 1 or 2 filler bytes and keep only the characters that depend on the secret alone.
  for (const shift of [1, 2]) {
    const encoded = Buffer.concat([Buffer.alloc(shift), bytes]).toString('base64');
    const stableStart = shift === 1 ? 2 : 3;
    // Characters of the last, partial group depend on the bytes that follow the secret.
    const stableEnd = Math.floor((shift + bytes.length) / 3) * 4;
    variants.push(encoded.slice(stableStart, stableEnd));
  }
  // The same for the tail: characters after the last full group depend on what follows.
  variants.push(bytes.toString('base64').slice(0, Math.floor(bytes.length / 3) * 4));
  return variants;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
