/**
 * Sprig's string, encoding and regular-expression functions (strings.go, regex.go, crypto.go).
 * Sprig puts the subject string last so that it can be piped: `{{ .x | replace "a" "b" }}`.
 * Lengths and cuts are in UTF-8 bytes where Sprig's are (substr, trunc, abbrev). Functions that can
 * multiply their input (repeat, replace, indent) check the result size before building it.
 */

import { createHash } from 'node:crypto';
import { byteLength, byteSlice, decodeBytes, goQuote, isGoSpace } from './gostr';
import { formatValue } from './printf';
import { compileGoRegex, regexReplaceAll, regexTest } from './regex';
import { FuncError, LimitError, fixed, variadic, type FuncContext, type FuncSpec } from './runtime';
import { isNil } from './values';

/** Sprig's strval: strings as they are, anything else as fmt's %v. */
export function strval(v: unknown, ctx: FuncContext): string {
  return typeof v === 'string' ? v : formatValue(ctx.newSink(), v);
}

function cp(ch: string): number {
  return ch.codePointAt(0) ?? 0;
}

const LETTER_OR_DIGIT = /^[\p{L}\p{Nd}]$/u;

/** strings.Title's word boundaries. */
function isSeparator(ch: string): boolean {
  const c = cp(ch);
  if (c <= 0x7f) return !/[0-9A-Za-z_]/.test(ch);
  if (LETTER_OR_DIGIT.test(ch)) return false;
  return isGoSpace(c);
}

function title(s: string): string {
  let out = '';
  let prev = ' ';
  for (const ch of s) {
    out += isSeparator(prev) ? ch.toUpperCase() : ch;
    prev = ch;
  }
  return out;
}

/** goutils.Uncapitalize: lower-cases the first letter of each whitespace-separated word. */
function untitle(s: string): string {
  let out = '';
  let atWordStart = true;
  for (const ch of s) {
    if (isGoSpace(cp(ch))) {
      atWordStart = true;
      out += ch;
    } else {
      out += atWordStart ? ch.toLowerCase() : ch;
      atWordStart = false;
    }
  }
  return out;
}

/** strings.TrimFunc: drops code points matching `drop` from both ends. */
function trimFunc(s: string, drop: (cp: number) => boolean): string {
  let start = 0;
  while (start < s.length) {
    const c = s.codePointAt(start) ?? 0;
    if (!drop(c)) break;
    start += c > 0xffff ? 2 : 1;
  }
  let end = s.length;
  while (end > start) {
    const low = s.charCodeAt(end - 1);
    const pair = low >= 0xdc00 && low <= 0xdfff && end - 2 >= start && (s.codePointAt(end - 2) ?? 0) > 0xffff;
    const c = pair ? (s.codePointAt(end - 2) ?? 0) : low;
    if (!drop(c)) break;
    end -= pair ? 2 : 1;
  }
  return s.slice(start, end);
}

const GO_SPACES = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/g;

function repeat(count: number, s: string, ctx: FuncContext): string {
  if (count < 0) throw new FuncError('strings: negative Repeat count');
  ctx.ensureSize(count * s.length);
  return s.repeat(count);
}

/** strings.Replace(s, old, new, -1); an empty `old` matches before every rune and at the end. */
function replaceAll(s: string, old: string, replacement: string, ctx: FuncContext): string {
  if (old === '') {
    const chars = Array.from(s);
    ctx.ensureSize(s.length + (chars.length + 1) * replacement.length);
    return replacement + chars.map((ch) => ch + replacement).join('');
  }
  const pieces = s.split(old);
  ctx.ensureSize(s.length + (pieces.length - 1) * (replacement.length - old.length));
  return pieces.join(replacement);
}

function substr(start: number, end: number, s: string): string {
  const len = byteLength(s);
  const bounds = (lo: number, hi: number): string => {
    if (lo < 0 || hi > len || lo > hi) throw new FuncError(`runtime error: slice bounds out of range [${lo}:${hi}] with length ${len}`);
    return byteSlice(s, lo, hi);
  };
  if (start < 0) return bounds(0, end);
  if (end < 0 || end > len) return bounds(start, len);
  return bounds(start, end);
}

function trunc(c: number, s: string): string {
  const len = byteLength(s);
  if (c < 0 && len + c > 0) return byteSlice(s, len + c, len);
  if (c >= 0 && len > c) return byteSlice(s, 0, c);
  return s;
}

function abbrev(width: number, s: string): string {
  if (width < 4 || byteLength(s) <= width) return s;
  return byteSlice(s, 0, width - 3) + '...';
}

function indent(spaces: number, s: string, ctx: FuncContext): string {
  if (spaces < 0) throw new FuncError('strings: negative Repeat count');
  const lines = s.split('\n');
  ctx.ensureSize(s.length + lines.length * spaces);
  const pad = ' '.repeat(spaces);
  return pad + lines.join('\n' + pad);
}

const B64_VALUES = new Map(Array.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/', (ch, i) => [ch, i]));

function corrupt(at: number): FuncError {
  return new FuncError(`illegal base64 data at input byte ${at}`);
}

/** base64.StdEncoding.DecodeString, with Go's error positions; newlines are ignored. */
function b64decode(src: string): string {
  const out: number[] = [];
  const isNewline = (i: number): boolean => src[i] === '\n' || src[i] === '\r';
  let si = 0;
  while (si < src.length) {
    const quantum: number[] = [];
    let dlen = 4;
    for (let j = 0; j < 4; j++) {
      if (si === src.length) {
        if (j === 0) return decodeBytes(out);
        throw corrupt(si - j);
      }
      const ch = src[si++];
      const v = B64_VALUES.get(ch);
      if (v !== undefined) {
        quantum.push(v);
        continue;
      }
      if (ch === '\n' || ch === '\r') {
        j--;
        continue;
      }
      if (ch !== '=' || j < 2) throw corrupt(si - 1);
      if (j === 2) {
        while (si < src.length && isNewline(si)) si++;
        if (si === src.length) throw corrupt(src.length);
        if (src[si] !== '=') throw corrupt(si - 1);
        si++;
      }
      while (si < src.length && isNewline(si)) si++;
      if (si < src.length) throw corrupt(si);
      dlen = j;
      break;
    }
    const [a, b, c = 0, d = 0] = quantum;
    const n = (a << 18) | (b << 12) | (c << 6) | d;
    out.push((n >> 16) & 0xff);
    if (dlen > 2) out.push((n >> 8) & 0xff);
    if (dlen > 3) out.push(n & 0xff);
  }
  return decodeBytes(out);
}

function quoteAll(args: readonly unknown[], ctx: FuncContext, quoteOne: (s: string) => string): string {
  const out = ctx.newSink();
  for (const a of args) {
    if (isNil(a)) continue;
    if (out.length > 0) out.write(' ');
    out.write(quoteOne(strval(a, ctx)));
  }
  return out.toString();
}

export const SPRIG_STRINGS: ReadonlyMap<string, FuncSpec> = new Map<string, FuncSpec>([
  ['upper', fixed(['string'], ([s]) => s.toUpperCase())],
  ['lower', fixed(['string'], ([s]) => s.toLowerCase())],
  ['title', fixed(['string'], ([s]) => title(s))],
  ['untitle', fixed(['string'], ([s]) => untitle(s))],
  ['trim', fixed(['string'], ([s]) => trimFunc(s, isGoSpace))],
  ['trimAll', fixed(['string', 'string'], ([cutset, s]) => trimFunc(s, (c) => cutset.includes(String.fromCodePoint(c))))],
  ['trimPrefix', fixed(['string', 'string'], ([prefix, s]) => (s.startsWith(prefix) ? s.slice(prefix.length) : s))],
  [
    'trimSuffix',
    fixed(['string', 'string'], ([suffix, s]) => (suffix !== '' && s.endsWith(suffix) ? s.slice(0, s.length - suffix.length) : s)),
  ],
  ['replace', fixed(['string', 'string', 'string'], ([old, repl, s], ctx) => replaceAll(s, old, repl, ctx))],
  ['contains', fixed(['string', 'string'], ([sub, s]) => s.includes(sub))],
  ['hasPrefix', fixed(['string', 'string'], ([prefix, s]) => s.startsWith(prefix))],
  ['hasSuffix', fixed(['string', 'string'], ([suffix, s]) => s.endsWith(suffix))],
  ['repeat', fixed(['int', 'string'], ([count, s], ctx) => repeat(count, s, ctx))],
  ['substr', fixed(['int', 'int', 'string'], ([start, end, s]) => substr(start, end, s))],
  ['trunc', fixed(['int', 'string'], ([c, s]) => trunc(c, s))],
  ['abbrev', fixed(['int', 'string'], ([width, s]) => abbrev(width, s))],
  ['nospace', fixed(['string'], ([s]) => s.replace(GO_SPACES, ''))],
  ['indent', fixed(['int', 'string'], ([n, s], ctx) => indent(n, s, ctx))],
  ['nindent', fixed(['int', 'string'], ([n, s], ctx) => '\n' + indent(n, s, ctx))],
  ['quote', variadic([], 'any', (_, args, ctx) => quoteAll(args, ctx, (s) => goQuote(s)))],
  ['squote', variadic([], 'any', (_, args, ctx) => quoteAll(args, ctx, (s) => `'${s}'`))],
  ['b64enc', fixed(['string'], ([s]) => Buffer.from(s, 'utf8').toString('base64'))],
  ['b64dec', fixed(['string'], ([s]) => b64decode(s))],
  ['sha256sum', fixed(['string'], ([s]) => createHash('sha256').update(s, 'utf8').digest('hex'))],
  ['regexMatch', fixed(['string', 'string'], ([pattern, s], ctx) => ctx.guarded(() => regexTest(compileGoRegex(pattern), s)))],
  [
    'regexReplaceAll',
    fixed(['string', 'string', 'string'], ([pattern, s, repl], ctx) => {
      const re = compileGoRegex(pattern);
      return ctx.guarded(() =>
        regexReplaceAll(re, s, repl, ctx.maxBytes, () => {
          throw new LimitError(`value exceeds the output limit of ${ctx.maxBytes} bytes`);
        }),
      );
    }),
  ],
]);
