/**
 * Go string semantics over JavaScript strings. Go strings are UTF-8 bytes while ours are UTF-16;
 * everything that Go measures or cuts in bytes (`len`, `slice`, `substr`, `%x`) goes through here
 * so that the difference stays in one place. Lone surrogates stand in for Go's invalid UTF-8.
 */

export function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** Go's `len(s)`: the UTF-8 length. */
export function byteLength(s: string): number {
  return isAscii(s) ? s.length : Buffer.byteLength(s, 'utf8');
}

export function utf8Bytes(s: string): Uint8Array {
  return Buffer.from(s, 'utf8');
}

/** Go's `s[start:end]`; a cut through a multi-byte character decodes as U+FFFD. */
export function byteSlice(s: string, start: number, end: number): string {
  if (isAscii(s)) return s.slice(start, end);
  return Buffer.from(s, 'utf8').subarray(start, end).toString('utf8');
}

/** Go's `s[i]`: a byte value. */
export function byteAt(s: string, i: number): number {
  return isAscii(s) ? s.charCodeAt(i) : Buffer.from(s, 'utf8')[i];
}

export function decodeBytes(bytes: readonly number[]): string {
  return Buffer.from(bytes).toString('utf8');
}

/** Number of runes (code points), as Go's utf8.RuneCountInString. */
export function runeCount(s: string): number {
  if (isAscii(s)) return s.length;
  let n = 0;
  for (let i = 0; i < s.length; i++, n++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
  }
  return n;
}

const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

/** Go's strconv.IsPrint / unicode.IsPrint: letters, marks, numbers, punctuation, symbols, ASCII space. */
export function isPrint(cp: number): boolean {
  if (cp < 0x7f) return cp >= 0x20;
  if (cp <= 0xa0) return false;
  if (cp >= 0xd800 && cp <= 0xdfff) return false;
  return PRINTABLE.test(String.fromCodePoint(cp));
}

/** Go's unicode.IsSpace. */
export function isGoSpace(cp: number): boolean {
  if (cp <= 0xff) {
    return cp === 0x20 || (cp >= 0x09 && cp <= 0x0d) || cp === 0x85 || cp === 0xa0;
  }
  return (
    cp === 0x1680 ||
    (cp >= 0x2000 && cp <= 0x200a) ||
    cp === 0x2028 ||
    cp === 0x2029 ||
    cp === 0x202f ||
    cp === 0x205f ||
    cp === 0x3000
  );
}

function hex(n: number, width: number): string {
  return n.toString(16).padStart(width, '0');
}

function escapeRune(cp: number, quoteChar: number, asciiOnly: boolean): string {
  if (cp === quoteChar || cp === 0x5c) return '\\' + String.fromCharCode(cp);
  const printable = asciiOnly ? cp < 0x7f && isPrint(cp) : isPrint(cp);
  if (printable) return String.fromCodePoint(cp);
  switch (cp) {
    case 0x07:
      return '\\a';
    case 0x08:
      return '\\b';
    case 0x0c:
      return '\\f';
    case 0x0a:
      return '\\n';
    case 0x0d:
      return '\\r';
    case 0x09:
      return '\\t';
    case 0x0b:
      return '\\v';
  }
  if (cp < 0x20 || cp === 0x7f) return '\\x' + hex(cp, 2);
  // A lone surrogate is the JavaScript image of invalid UTF-8, which Go quotes as U+FFFD.
  if (cp >= 0xd800 && cp <= 0xdfff) return '\\ufffd';
  if (cp < 0x10000) return '\\u' + hex(cp, 4);
  return '\\U' + hex(cp, 8);
}

// Characters strconv.Quote may change: quote, backslash, controls and everything non-ASCII.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const QUOTE_CANDIDATES = /["\\\x00-\x1f\x7f]|[^\x00-\x7f]/gu;

/** strconv.Quote (or QuoteToASCII). */
export function goQuote(s: string, asciiOnly = false): string {
  // Runs of plain ASCII are copied natively; only candidates go through escapeRune.
  return '"' + s.replace(QUOTE_CANDIDATES, (ch) => escapeRune(ch.codePointAt(0) ?? 0, 0x22, asciiOnly)) + '"';
}

/** strconv.QuoteRune (or QuoteRuneToASCII). */
export function goQuoteRune(cp: number, asciiOnly = false): string {
  const r = cp < 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? 0xfffd : cp;
  return "'" + escapeRune(r, 0x27, asciiOnly) + "'";
}

/** strconv.CanBackquote: no control characters other than tab, no backquote, no BOM. */
export function canBackquote(s: string): boolean {
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    if (cp === 0x60 || cp === 0xfeff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    if ((cp < 0x20 && cp !== 0x09) || cp === 0x7f) return false;
  }
  return true;
}

/** Go's `%#U` without the `U+`: `U+0023 '#'`, or just `U+0001` for an unprintable rune. */
export function describeRune(cp: number): string {
  const code = 'U+' + cp.toString(16).toUpperCase().padStart(4, '0');
  return isPrint(cp) ? `${code} '${String.fromCodePoint(cp)}'` : code;
}
