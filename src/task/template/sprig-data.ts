/**
 * Sprig's defaults, lists, dicts, math, conversions, JSON, dates and uuidv4 (defaults.go, list.go,
 * dict.go, numeric.go, conversion.go, date.go). Math is int64 math as in Sprig: operands are
 * converted with spf13/cast (strings are parsed, floats truncated, anything else is 0).
 * Nothing here reads the host: no env, no files, and `now` is the clock the caller passed in.
 */

import { randomUUID } from 'node:crypto';
import { UTC, formatTime, zoneAt } from './date';
import { runeCount } from './gostr';
import { UnsupportedValueError, fromJson, toJson } from './json';
import { FuncError, fixed, tolerant, variadic, type FuncContext, type FuncSpec } from './runtime';
import { strval } from './sprig-strings';
import { parseDecimalInt, parseGoFloat, parseGoInt } from './strconv';
import { compareStrings, getEntry, isInt, isMap, isNil, newMap, setEntry, truth, type GoMap } from './values';

/** cast's trimZeroDecimal: "5.00" parses as an int, "5.10" does not. */
function trimZeroDecimal(s: string): string {
  const m = /^(.*?)\.0+$/.exec(s);
  return m ? m[1] : s;
}

/** cast.ToInt64 as Sprig calls it: errors become 0. */
export function toInt64(v: unknown): number {
  if (typeof v === 'number') return Number.isFinite(v) ? Math.trunc(v) : 0;
  if (typeof v === 'string') return parseGoInt(trimZeroDecimal(v)) ?? 0;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return 0;
}

/** cast.ToFloat64 as Sprig calls it: errors become 0. */
function toFloat64(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return parseGoFloat(v) ?? 0;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return 0;
}

function divide(a: unknown, b: unknown, op: (x: number, y: number) => number): number {
  const y = toInt64(b);
  if (y === 0) throw new FuncError('runtime error: integer divide by zero');
  return op(toInt64(a), y);
}

/** Sprig's strslice, behind `join`: list elements (nils dropped) or a single value, as strings. */
function strslice(v: unknown, ctx: FuncContext): string[] {
  if (Array.isArray(v)) return v.filter((e) => !isNil(e)).map((e) => strval(e, ctx));
  return isNil(v) ? [] : [strval(v, ctx)];
}

/** strings.Split; the parts are counted (and charged as steps) before any is allocated. */
function splitGo(s: string, sep: string, ctx: FuncContext): string[] {
  let count = 1;
  if (sep === '') count = runeCount(s);
  else for (let i = s.indexOf(sep); i >= 0; i = s.indexOf(sep, i + sep.length)) count++;
  ctx.chargeSteps(count);
  return sep === '' ? Array.from(s) : s.split(sep);
}

/** strings.Join, refusing a result over the output cap before building it. */
function joinChecked(parts: readonly string[], sep: string, ctx: FuncContext): string {
  let size = Math.max(0, parts.length - 1) * sep.length;
  for (const p of parts) size += p.length;
  ctx.ensureSize(size);
  return parts.join(sep);
}

function listEnd(list: unknown, which: 'first' | 'last'): unknown {
  if (isNil(list)) return null;
  if (!Array.isArray(list)) {
    const kind = isMap(list) ? 'map' : typeof list === 'string' ? 'string' : typeof list === 'boolean' ? 'bool' : 'int';
    throw new FuncError(`Cannot find ${which} on type ${kind}`);
  }
  if (list.length === 0) return null;
  return which === 'first' ? list[0] : list[list.length - 1];
}

function untilStep(start: number, stop: number, step: number, ctx: FuncContext): number[] {
  let count = 0;
  if (stop < start && step < 0) count = Math.ceil((start - stop) / -step);
  else if (stop > start && step > 0) count = Math.ceil((stop - start) / step);
  // Charged before allocating: `until 100000000` must fail now, not after building the list.
  ctx.chargeSteps(count);
  const out = new Array<number>(count);
  for (let k = 0; k < count; k++) out[k] = start + k * step;
  return out;
}

function dict(args: readonly unknown[], ctx: FuncContext): GoMap {
  const m = newMap();
  for (let k = 0; k < args.length; k += 2) setEntry(m, strval(args[k], ctx), k + 1 < args.length ? args[k + 1] : '');
  return m;
}

/** Sprig's date functions accept a time or Unix seconds; anything else means now. */
function toTime(v: unknown, ctx: FuncContext): Date {
  if (v instanceof Date) return v;
  if (isInt(v)) return new Date(v * 1000);
  return ctx.now();
}

function jsonOrEmpty(v: unknown, ctx: FuncContext, indent: string | null): string {
  try {
    return toJson(ctx.newSink(), v, indent);
  } catch (e) {
    // Sprig ignores marshalling errors (NaN, Inf) and renders nothing.
    if (e instanceof UnsupportedValueError) return '';
    throw e;
  }
}

function parseJsonOrNil(s: string): unknown {
  try {
    return fromJson(s);
  } catch {
    return null; // Sprig's fromJson ignores decoding errors.
  }
}

export const SPRIG_DATA: ReadonlyMap<string, FuncSpec> = new Map<string, FuncSpec>([
  // defaults.go
  // These test for presence, so a missing key given to them is not reported (see FuncSpec.tolerant).
  ['default', tolerant(variadic(['any'], 'any', ([d], given) => (given.length === 0 || !truth(given[0]) ? d : given[0])))],
  ['empty', tolerant(fixed(['any'], ([v]) => !truth(v)))],
  ['coalesce', tolerant(variadic([], 'any', (_, args) => args.find((a) => truth(a)) ?? null))],
  ['ternary', tolerant(fixed(['any', 'any', 'bool'], ([vt, vf, cond]) => (cond ? vt : vf)))],
  ['toJson', fixed(['any'], ([v], ctx) => jsonOrEmpty(v, ctx, null))],
  ['toPrettyJson', fixed(['any'], ([v], ctx) => jsonOrEmpty(v, ctx, '  '))],
  ['fromJson', fixed(['string'], ([s]) => parseJsonOrNil(s))],
  // conversion
  ['toString', fixed(['any'], ([v], ctx) => strval(v, ctx))],
  ['atoi', fixed(['string'], ([s]) => parseDecimalInt(s) ?? 0)],
  ['int', fixed(['any'], ([v]) => toInt64(v))],
  ['int64', fixed(['any'], ([v]) => toInt64(v))],
  ['float64', fixed(['any'], ([v]) => toFloat64(v))],
  // math
  ['add', variadic([], 'any', (_, args) => args.reduce<number>((sum, a) => sum + toInt64(a), 0))],
  ['sub', fixed(['any', 'any'], ([a, b]) => toInt64(a) - toInt64(b))],
  ['mul', variadic(['any'], 'any', ([a], more) => more.reduce<number>((p, b) => p * toInt64(b), toInt64(a)))],
  ['div', fixed(['any', 'any'], ([a, b]) => divide(a, b, (x, y) => Math.trunc(x / y)))],
  ['mod', fixed(['any', 'any'], ([a, b]) => divide(a, b, (x, y) => x % y))],
  ['max', variadic(['any'], 'any', ([a], more) => Math.max(toInt64(a), ...more.map(toInt64)))],
  ['min', variadic(['any'], 'any', ([a], more) => Math.min(toInt64(a), ...more.map(toInt64)))],
  // lists
  ['list', variadic([], 'any', (_, args) => [...args])],
  ['first', fixed(['any'], ([l]) => listEnd(l, 'first'))],
  ['last', fixed(['any'], ([l]) => listEnd(l, 'last'))],
  ['until', fixed(['int'], ([n], ctx) => untilStep(0, n, n < 0 ? -1 : 1, ctx))],
  ['untilStep', fixed(['int', 'int', 'int'], ([start, stop, step], ctx) => untilStep(start, stop, step, ctx))],
  ['join', fixed(['string', 'any'], ([sep, v], ctx) => joinChecked(strslice(v, ctx), sep, ctx))],
  ['splitList', fixed(['string', 'string'], ([sep, s], ctx) => splitGo(s, sep, ctx))],
  [
    'split',
    fixed(['string', 'string'], ([sep, s], ctx) => {
      const m = newMap();
      splitGo(s, sep, ctx).forEach((part, k) => setEntry(m, `_${k}`, part));
      return m;
    }),
  ],
  // dicts
  ['dict', variadic([], 'any', (_, args, ctx) => dict(args, ctx))],
  ['get', fixed(['map', 'string'], ([m, key]) => (m === null ? '' : (getEntry(m, key) ?? '')))],
  [
    'set',
    fixed(['map', 'string', 'any'], ([m, key, value]) => {
      if (m === null) throw new FuncError('assignment to entry in nil map');
      setEntry(m, key, value);
      return m;
    }),
  ],
  ['hasKey', fixed(['map', 'string'], ([m, key]) => m !== null && getEntry(m, key) !== undefined)],
  [
    'keys',
    variadic([], 'map', (_, maps) =>
      maps
        .filter((m): m is GoMap => m !== null)
        .flatMap((m) => Object.keys(m))
        .sort(compareStrings),
    ),
  ],
  // dates
  ['now', fixed([], (_, ctx) => ctx.now())],
  ['date', fixed(['string', 'any'], ([layout, t], ctx) => formatTime(toTime(t, ctx), layout, UTC))],
  [
    'dateInZone',
    fixed(['string', 'any', 'string'], ([layout, t, zone], ctx) => {
      const time = toTime(t, ctx);
      return formatTime(time, layout, zoneAt(time, zone));
    }),
  ],
  ['unixEpoch', fixed(['time'], ([t]) => String(Math.floor(t.getTime() / 1000)))],
  ['uuidv4', fixed([], () => randomUUID())],
]);
