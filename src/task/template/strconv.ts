/**
 * Go's strconv where templates depend on it: unquoting literals, parsing numbers the way
 * strconv/cast do, and FormatFloat with Go's exact digits and round-half-even on exact ties
 * (JavaScript's toFixed rounds ties up, so `%.2f` of 0.125 would differ).
 */

import { decodeBytes } from './gostr';

export class LiteralError extends Error {
  override readonly name = 'LiteralError';
}

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  a: '\x07',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
  '\\': '\\',
};

interface Escape {
  /** A code point, or a raw byte when `isByte` (\x and octal escapes denote bytes in Go). */
  value: number;
  isByte: boolean;
  next: number;
}

function readHex(body: string, start: number, count: number): number {
  const digits = body.slice(start, start + count);
  if (digits.length !== count || !/^[0-9a-fA-F]+$/.test(digits)) {
    throw new LiteralError(`invalid escape sequence in ${body}`);
  }
  return parseInt(digits, 16);
}

/** Reads the escape after the backslash at `i`; `quote` is the enclosing quote, which may be escaped. */
function readEscape(body: string, i: number, quote: string): Escape {
  const e = body[i + 1];
  if (e === undefined) throw new LiteralError('invalid escape at end of literal');
  const simple = SIMPLE_ESCAPES[e];
  if (simple !== undefined) return { value: simple.charCodeAt(0), isByte: false, next: i + 2 };
  if (e === quote) return { value: quote.charCodeAt(0), isByte: false, next: i + 2 };
  switch (e) {
    case 'x':
      return { value: readHex(body, i + 2, 2), isByte: true, next: i + 4 };
    case 'u':
    case 'U': {
      const n = e === 'u' ? 4 : 8;
      const cp = readHex(body, i + 2, n);
      if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) throw new LiteralError(`invalid Unicode escape \\${e}${body.slice(i + 2, i + 2 + n)}`);
      return { value: cp, isByte: false, next: i + 2 + n };
    }
  }
  const octal = body.slice(i + 1, i + 4);
  if (/^[0-7]{3}$/.test(octal)) {
    const v = parseInt(octal, 8);
    if (v > 255) throw new LiteralError(`octal escape value \\${octal} > 255`);
    return { value: v, isByte: true, next: i + 4 };
  }
  throw new LiteralError(`unknown escape sequence \\${e}`);
}

/** strconv.Unquote for a "..." or `...` literal (with its quotes). */
export function unquoteString(raw: string): string {
  if (raw.startsWith('`')) return raw.slice(1, -1).replace(/\r/g, '');
  const body = raw.slice(1, -1);
  if (!body.includes('\\')) return body;
  let out = '';
  let bytes: number[] = [];
  const flush = (): void => {
    if (bytes.length > 0) out += decodeBytes(bytes);
    bytes = [];
  };
  let i = 0;
  while (i < body.length) {
    if (body[i] !== '\\') {
      flush();
      out += body[i];
      i++;
      continue;
    }
    const esc = readEscape(body, i, '"');
    if (esc.isByte) bytes.push(esc.value);
    else {
      flush();
      out += String.fromCodePoint(esc.value);
    }
    i = esc.next;
  }
  flush();
  return out;
}

/** The value of a character constant such as 'a', '\n' or '\u00e9' (with its quotes). */
export function unquoteChar(raw: string): number {
  const body = raw.slice(1, -1);
  if (body.startsWith('\\')) {
    const esc = readEscape(body, 0, "'");
    if (esc.next !== body.length) throw new LiteralError(`malformed character constant: ${raw}`);
    return esc.value;
  }
  const cp = body.codePointAt(0);
  if (cp === undefined || String.fromCodePoint(cp).length !== body.length || cp === 0x27) {
    throw new LiteralError(`malformed character constant: ${raw}`);
  }
  return cp;
}

export interface NumberLiteral {
  value: number;
  isInt: boolean;
}

const INT_LITERAL = /^[+-]?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|0[0-7_]*|[1-9][0-9_]*)$/;
const FLOAT_LITERAL = /^[+-]?(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9_]+)?$/;

function signedBigInt(text: string): bigint {
  const neg = text.startsWith('-');
  let body = text.replace(/^[+-]/, '').replace(/_/g, '');
  // BigInt reads 0x/0o/0b but not Go's legacy leading-zero octal.
  if (/^0[0-7]+$/.test(body)) body = '0o' + body.slice(1);
  const v = BigInt(body);
  return neg ? -v : v;
}

/** A number literal in a template; null when it is not valid Go syntax. */
export function parseNumberLiteral(text: string): NumberLiteral | null {
  if (/^[+-]?[1-9][0-9]{0,14}$/.test(text) || text === '0') return { value: Number(text), isInt: true };
  if (INT_LITERAL.test(text)) return { value: Number(signedBigInt(text)), isInt: true };
  if (FLOAT_LITERAL.test(text) && /[0-9]/.test(text)) {
    const value = Number(text.replace(/_/g, ''));
    return Number.isNaN(value) ? null : { value, isInt: false };
  }
  return null;
}

const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;

/** strconv.ParseInt(s, 0, 64): prefixes 0x, 0o, 0b and a leading 0 select the base; null on error. */
export function parseGoInt(s: string): number | null {
  if (!/^[+-]?(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|0[0-7_]*|[1-9][0-9]*)$/.test(s)) return null;
  const v = signedBigInt(s);
  return v > INT64_MAX || v < INT64_MIN ? null : Number(v);
}

/** strconv.Atoi: decimal only. */
export function parseDecimalInt(s: string): number | null {
  if (!/^[+-]?[0-9]+$/.test(s)) return null;
  const v = BigInt(s);
  return v > INT64_MAX || v < INT64_MIN ? null : Number(v);
}

/** strconv.ParseFloat(s, 64) for decimal syntax, Inf and NaN; null on error. */
export function parseGoFloat(s: string): number | null {
  if (/^[+-]?(?:inf|infinity)$/i.test(s)) return s.startsWith('-') ? -Infinity : Infinity;
  if (/^nan$/i.test(s)) return NaN;
  if (!/^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/.test(s)) return null;
  return Number(s);
}

/** Decimal digits of a positive number: value = 0.d1d2d3... × 10^dp, with no trailing zeros. */
interface Digits {
  d: string;
  dp: number;
}

function trimZeros(d: string, dp: number): Digits {
  let end = d.length;
  while (end > 0 && d.charCodeAt(end - 1) === 0x30) end--;
  return end === 0 ? { d: '', dp: 0 } : { d: d.slice(0, end), dp };
}

/** The shortest digits that read back as `v` (what Go's precision -1 means). */
function shortestDigits(v: number): Digits {
  const [mantissa, exp] = v.toExponential().split('e');
  return trimZeros(mantissa.replace('.', ''), Number(exp) + 1);
}

const scratch = new DataView(new ArrayBuffer(8));

/** Every decimal digit of `v`, exactly: a double is m × 2^e, and 2^-k = 5^k / 10^k. */
function exactDigits(v: number): Digits {
  scratch.setFloat64(0, v);
  const bits = scratch.getBigUint64(0);
  const biased = Number((bits >> 52n) & 0x7ffn);
  let mant = bits & 0xfffffffffffffn;
  let e: number;
  if (biased === 0) e = -1074;
  else {
    mant |= 1n << 52n;
    e = biased - 1075;
  }
  if (e >= 0) {
    const s = (mant << BigInt(e)).toString();
    return trimZeros(s, s.length);
  }
  const s = (mant * 5n ** BigInt(-e)).toString();
  return trimZeros(s, s.length + e);
}

/** Rounds to `nd` digits, half to even on exact ties, like Go's decimal.Round. */
function roundDigits(x: Digits, nd: number): Digits {
  if (nd < 0 || nd >= x.d.length) return x;
  const digit = x.d.charCodeAt(nd) - 0x30;
  const exactHalf = digit === 5 && nd + 1 === x.d.length;
  const up = exactHalf ? nd > 0 && (x.d.charCodeAt(nd - 1) - 0x30) % 2 === 1 : digit >= 5;
  if (!up) return trimZeros(x.d.slice(0, nd), x.dp);
  let i = nd - 1;
  while (i >= 0 && x.d[i] === '9') i--;
  if (i < 0) return { d: '1', dp: x.dp + 1 };
  return { d: x.d.slice(0, i) + String.fromCharCode(x.d.charCodeAt(i) + 1), dp: x.dp };
}

function formatE(x: Digits, prec: number, e: string): string {
  let out = x.d.length === 0 ? '0' : x.d[0];
  if (prec > 0) {
    out += '.' + x.d.slice(1, prec + 1).padEnd(prec, '0');
  }
  const exp = x.d.length === 0 ? 0 : x.dp - 1;
  const abs = Math.abs(exp);
  return out + e + (exp < 0 ? '-' : '+') + (abs < 10 ? '0' : '') + abs;
}

function formatF(x: Digits, prec: number): string {
  let out: string;
  if (x.dp > 0) out = x.d.slice(0, x.dp).padEnd(x.dp, '0');
  else out = '0';
  if (prec > 0) {
    out += '.';
    for (let i = 1; i <= prec; i++) {
      const j = x.dp + i - 1;
      out += j >= 0 && j < x.d.length ? x.d[j] : '0';
    }
  }
  return out;
}

export type FloatVerb = 'e' | 'E' | 'f' | 'g' | 'G';

/**
 * strconv.FormatFloat(v, verb, prec, 64); prec -1 means the shortest representation.
 * Infinities are "+Inf"/"-Inf" and NaN is "NaN", as Go writes them.
 */
export function formatFloat(v: number, verb: FloatVerb, prec: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  const neg = v < 0 || Object.is(v, -0);
  const abs = Math.abs(v);
  const shortest = prec < 0;
  let x: Digits;
  if (abs === 0) x = { d: '', dp: 0 };
  else if (shortest) x = shortestDigits(abs);
  else {
    const exact = exactDigits(abs);
    switch (verb) {
      case 'e':
      case 'E':
        x = roundDigits(exact, prec + 1);
        break;
      case 'f':
        x = roundDigits(exact, exact.dp + prec);
        break;
      default:
        x = roundDigits(exact, prec === 0 ? 1 : prec);
    }
  }
  return (neg ? '-' : '') + layout(x, verb, shortest ? -1 : prec);
}

function layout(x: Digits, verb: FloatVerb, prec: number): string {
  const shortest = prec < 0;
  const nd = x.d.length;
  switch (verb) {
    case 'e':
    case 'E':
      return formatE(x, shortest ? Math.max(nd - 1, 0) : prec, verb);
    case 'f':
      return formatF(x, shortest ? Math.max(nd - x.dp, 0) : prec);
    default: {
      const e = verb === 'g' ? 'e' : 'E';
      let p = shortest ? nd : prec === 0 ? 1 : prec;
      let eprec = p;
      if (eprec > nd && nd >= x.dp) eprec = nd;
      if (shortest) eprec = 6;
      const exp = x.dp - 1;
      if (nd > 0 && (exp < -4 || exp >= eprec)) {
        if (p > nd) p = nd;
        return formatE(x, p - 1, e);
      }
      if (p > x.dp) p = nd;
      return formatF(x, Math.max(p - x.dp, 0));
    }
  }
}
