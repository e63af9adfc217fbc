/**
 * The functions text/template predefines (funcs.go): and, or, not, len, index, slice, print,
 * printf, println, eq, ne, lt, le, gt, ge, html, js, urlquery. `call` is not provided: template
 * data holds no functions.
 */

import { byteAt, byteLength, byteSlice, isPrint, utf8Bytes } from './gostr';
import { sprint, sprintf, sprintln } from './printf';
import { FuncError, fixed, tolerant, variadic, type FuncContext, type FuncSpec } from './runtime';
import { getEntry, isInt, isMap, isNil, truth, typeName } from './values';

function indexArg(index: unknown, cap: number): number {
  if (isNil(index)) throw new FuncError('cannot index slice/array with nil');
  if (!isInt(index)) throw new FuncError(`cannot index slice/array with type ${typeName(index)}`);
  if (index < 0 || index > cap) throw new FuncError(`index out of range: ${index}`);
  return index;
}

function index(item: unknown, indexes: readonly unknown[], ctx: FuncContext): unknown {
  if (isNil(item)) throw new FuncError('index of untyped nil');
  for (const ix of indexes) {
    if (isNil(item)) throw new FuncError('index of nil pointer');
    if (Array.isArray(item) || typeof item === 'string') {
      const len = Array.isArray(item) ? item.length : byteLength(item);
      const x = indexArg(ix, len);
      if (x === len) throw new FuncError(`index out of range: ${x}`);
      item = Array.isArray(item) ? item[x] : byteAt(item, x);
    } else if (isMap(item)) {
      if (typeof ix !== 'string') throw new FuncError(`value has type ${typeName(ix)}; should be string`);
      const v = getEntry(item, ix);
      if (v === undefined) return ctx.missing(ix);
      item = v;
    } else {
      throw new FuncError(`can't index item of type ${typeName(item)}`);
    }
  }
  return item;
}

function slice(item: unknown, indexes: readonly unknown[]): unknown {
  if (isNil(item)) throw new FuncError('slice of untyped nil');
  if (indexes.length > 3) throw new FuncError(`too many slice indexes: ${indexes.length}`);
  let len: number;
  if (typeof item === 'string') {
    if (indexes.length === 3) throw new FuncError('cannot 3-index slice a string');
    len = byteLength(item);
  } else if (Array.isArray(item)) {
    len = item.length;
  } else {
    throw new FuncError(`can't slice item of type ${typeName(item)}`);
  }
  const idx = [0, len, len];
  indexes.forEach((ix, k) => {
    idx[k] = indexArg(ix, len);
  });
  if (idx[0] > idx[1]) throw new FuncError(`invalid slice index: ${idx[0]} > ${idx[1]}`);
  if (indexes.length === 3 && idx[1] > idx[2]) throw new FuncError(`invalid slice index: ${idx[1]} > ${idx[2]}`);
  return typeof item === 'string' ? byteSlice(item, idx[0], idx[1]) : item.slice(idx[0], idx[1]);
}

function length(item: unknown): number {
  if (isNil(item)) throw new FuncError('len of nil pointer');
  if (typeof item === 'string') return byteLength(item);
  if (Array.isArray(item)) return item.length;
  if (isMap(item)) return Object.keys(item).length;
  throw new FuncError(`len of type ${typeName(item)}`);
}

type Kind = 'bool' | 'number' | 'string' | 'nil' | 'other';

function basicKind(v: unknown): Kind {
  if (isNil(v)) return 'nil';
  switch (typeof v) {
    case 'boolean':
      return 'bool';
    case 'number':
      return 'number';
    case 'string':
      return 'string';
    default:
      return 'other';
  }
}

/** Go's eq for one pair. Numbers compare by value: ints and floats are one kind here. */
function equal(a: unknown, b: unknown): boolean {
  const ka = basicKind(a);
  const kb = basicKind(b);
  if (ka !== kb) {
    if (ka === 'nil' || kb === 'nil') return false;
    if (ka === 'other' && kb === 'other') {
      throw new FuncError(`non-comparable types ${typeName(a)} and ${typeName(b)}`);
    }
    throw new FuncError(`incompatible types for comparison: ${typeName(a)} and ${typeName(b)}`);
  }
  if (ka !== 'other') return a === b || (ka === 'nil' && kb === 'nil');
  if (a instanceof Date && b instanceof Date) return a.getTime() === b.getTime();
  if (Array.isArray(a) || isMap(a)) throw new FuncError(`non-comparable type ${typeName(a)}`);
  throw new FuncError(`non-comparable type ${typeName(b)}`);
}

function eq(a: unknown, others: readonly unknown[]): boolean {
  if (others.length === 0) throw new FuncError('missing argument for comparison');
  return others.some((b) => equal(a, b));
}

function lessThan(a: unknown, b: unknown): boolean {
  const ka = basicKind(a);
  const kb = basicKind(b);
  if (ka !== 'number' && ka !== 'string') throw new FuncError('invalid type for comparison');
  if (kb !== 'number' && kb !== 'string') throw new FuncError('invalid type for comparison');
  if (typeof a === 'number' && typeof b === 'number') return a < b;
  if (typeof a === 'string' && typeof b === 'string') return a < b;
  throw new FuncError('incompatible types for comparison');
}

/** Go's evalArgs for the escapers: a lone string as is, anything else through Sprint. */
function escaperInput(args: readonly unknown[], ctx: FuncContext): string {
  if (args.length === 1 && typeof args[0] === 'string') return args[0];
  return sprint(ctx.newSink(), args);
}

const HTML_ESCAPES: Readonly<Record<string, string>> = {
  '\0': '\uFFFD',
  '"': '&#34;',
  "'": '&#39;',
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
};

export function htmlEscape(s: string): string {
  return s.replace(/[\0"'&<>]/g, (c) => HTML_ESCAPES[c] ?? c);
}

const JS_ESCAPES: Readonly<Record<string, string>> = {
  '\\': '\\\\',
  "'": "\\'",
  '"': '\\"',
  '<': '\\u003C',
  '>': '\\u003E',
  '&': '\\u0026',
  '=': '\\u003D',
};

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const JS_CANDIDATES = /[\\'"<>&=\x00-\x1f]|[^\x00-\x7f]/gu;

export function jsEscape(s: string): string {
  return s.replace(JS_CANDIDATES, (ch) => {
    const cp = ch.codePointAt(0) ?? 0;
    const known = JS_ESCAPES[ch];
    if (known !== undefined) return known;
    if (cp < 0x20) return '\\u00' + cp.toString(16).toUpperCase().padStart(2, '0');
    if (isPrint(cp)) return ch;
    return '\\u' + cp.toString(16).toUpperCase().padStart(4, '0');
  });
}

/** url.QueryEscape: unreserved characters kept, space as +, every other byte as %XX. */
export function queryEscape(s: string): string {
  let out = '';
  for (const b of utf8Bytes(s)) {
    const ch = String.fromCharCode(b);
    if (/[A-Za-z0-9\-_.~]/.test(ch)) out += ch;
    else if (b === 0x20) out += '+';
    else out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** The text/template builtins. */
export const BUILTINS: ReadonlyMap<string, FuncSpec> = new Map<string, FuncSpec>([
  // The executor evaluates and/or itself, argument by argument; `call` is never reached.
  ['and', { params: ['any'], variadic: 'any', shortCircuit: 'and', call: () => null }],
  ['or', { params: ['any'], variadic: 'any', shortCircuit: 'or', call: () => null }],
  ['not', tolerant(fixed(['any'], ([v]) => !truth(v)))],
  ['len', fixed(['any'], ([v]) => length(v))],
  ['index', variadic(['any'], 'any', ([item], ixs, ctx) => index(item, ixs, ctx))],
  ['slice', variadic(['any'], 'any', ([item], ixs) => slice(item, ixs))],
  ['print', variadic([], 'any', (_, args, ctx) => sprint(ctx.newSink(), args))],
  ['printf', variadic(['string'], 'any', ([format], args, ctx) => sprintf(ctx.newSink(), format, args))],
  ['println', variadic([], 'any', (_, args, ctx) => sprintln(ctx.newSink(), args))],
  ['eq', tolerant(variadic(['any'], 'any', ([a], others) => eq(a, others)))],
  ['ne', tolerant(fixed(['any', 'any'], ([a, b]) => !eq(a, [b])))],
  ['lt', fixed(['any', 'any'], ([a, b]) => lessThan(a, b))],
  ['le', fixed(['any', 'any'], ([a, b]) => lessThan(a, b) || eq(a, [b]))],
  ['gt', fixed(['any', 'any'], ([a, b]) => !lessThan(a, b) && !eq(a, [b]))],
  ['ge', fixed(['any', 'any'], ([a, b]) => !lessThan(a, b))],
  ['html', variadic([], 'any', (_, args, ctx) => htmlEscape(escaperInput(args, ctx)))],
  ['js', variadic([], 'any', (_, args, ctx) => jsEscape(escaperInput(args, ctx)))],
  ['urlquery', variadic([], 'any', (_, args, ctx) => queryEscape(escaperInput(args, ctx)))],
]);
