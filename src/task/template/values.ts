/**
 * The value model templates compute with, and how it maps onto Go's:
 *
 * | JavaScript                          | Go                         |
 * |-------------------------------------|----------------------------|
 * | string                              | string                     |
 * | number, safe integer                | int                        |
 * | number, otherwise                   | float64                    |
 * | boolean                             | bool                       |
 * | unknown[]                           | []interface {}             |
 * | GoMap (null-prototype object)       | map[string]interface {}    |
 * | Date                                | time.Time                  |
 * | null                                | nil                        |
 * | Missing                             | the result of looking up a key a map does not have |
 *
 * A Missing behaves as nil everywhere (isNil, truth, typeName), and also remembers where the
 * lookup was and what it missed, so that the executor can report it where it is *used* (printed,
 * or passed to an ordinary function) but not where it is only *tested* (`if`, `with`, `default`,
 * `empty`...). Looking up a field of a Missing gives the same Missing: `.a.b.c` with `a` absent
 * reports `a` once. A Missing is never stored in a list or a map (function arguments are
 * converted first), and `undefined` does not occur in the value model at all.
 */

/** A failed map lookup: `pos` is the offset of the action (`{{`) that made it, `message` the report. */
export class Missing {
  constructor(
    readonly pos: number,
    readonly message: string,
  ) {}
}

export type GoMap = { [key: string]: unknown };

export function newMap(): GoMap {
  // A null prototype: keys such as `constructor` or `__proto__` are plain data, never inherited.
  return Object.create(null) as GoMap;
}

export function isMap(v: unknown): v is GoMap {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date) && !(v instanceof Missing);
}

export function isNil(v: unknown): v is null | undefined | Missing {
  return v === null || v === undefined || v instanceof Missing;
}

/** An int in the Go sense; larger integral numbers behave as float64, as they do after JSON. */
export function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

/**
 * The entry for `key`, or `undefined` when the map has no such entry. A plain read is enough:
 * every map in a render comes from newMap or importData and has no prototype to inherit from.
 */
export function getEntry(m: GoMap, key: string): unknown {
  return m[key];
}

export function setEntry(m: GoMap, key: string, value: unknown): void {
  // defineProperty, not assignment: assigning `__proto__` on an ordinary object changes its prototype.
  Object.defineProperty(m, key, {
    value: value === undefined ? null : value,
    writable: true,
    enumerable: true,
    configurable: true,
  });
}

/** Go sorts string map keys by bytes; UTF-16 order differs only beyond the BMP. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function sortedKeys(m: GoMap): string[] {
  return Object.keys(m).sort(compareStrings);
}

function isEmptyMap(m: GoMap): boolean {
  for (const key in m) {
    if (Object.prototype.hasOwnProperty.call(m, key)) return false;
  }
  return true;
}

/** Go's template truth: false, 0, "", nil and empty lists and maps are false. */
export function truth(v: unknown): boolean {
  if (isNil(v)) return false;
  switch (typeof v) {
    case 'boolean':
      return v;
    case 'number':
      return v !== 0;
    case 'string':
      return v.length > 0;
    case 'bigint':
      return v !== 0n;
    default:
      if (Array.isArray(v)) return v.length > 0;
      if (v instanceof Date) return true;
      if (isMap(v)) return !isEmptyMap(v);
      return true;
  }
}

/** The Go type of a value, as it appears in error messages and in `%T`. */
export function typeName(v: unknown): string {
  if (isNil(v)) return '<nil>';
  switch (typeof v) {
    case 'string':
      return 'string';
    case 'number':
      return isInt(v) ? 'int' : 'float64';
    case 'boolean':
      return 'bool';
    default:
      if (Array.isArray(v)) return '[]interface {}';
      if (v instanceof Date) return 'time.Time';
      if (isMap(v)) return 'map[string]interface {}';
      return typeof v;
  }
}

const MAX_DATA_DEPTH = 200;

/**
 * Copies caller data into the value model. The copy keeps `set` from mutating the caller's
 * objects, drops `undefined` entries (absent, as in JSON) and turns other exotic values into
 * nil. Throws a RangeError on nesting beyond MAX_DATA_DEPTH, which also catches cycles.
 */
export function importData(v: unknown, depth = 0): unknown {
  if (depth > MAX_DATA_DEPTH) throw new RangeError(`template data is nested more than ${MAX_DATA_DEPTH} levels deep`);
  switch (typeof v) {
    case 'string':
    case 'number':
    case 'boolean':
      return v;
    case 'bigint':
      return Number(v);
    case 'object':
      break;
    default:
      return null;
  }
  if (v === null) return null;
  if (v instanceof Date) return new Date(v.getTime());
  if (Array.isArray(v)) return v.map((e) => importData(e, depth + 1));
  const out = newMap();
  if (v instanceof Map) {
    for (const [k, e] of v) if (e !== undefined) setEntry(out, String(k), importData(e, depth + 1));
    return out;
  }
  for (const [k, e] of Object.entries(v)) if (e !== undefined) setEntry(out, k, importData(e, depth + 1));
  return out;
}
