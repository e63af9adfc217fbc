/**
 * encoding/json as Sprig's toJson/toPrettyJson/fromJson use it: sorted map keys, HTML-safe string
 * escapes (<, >, & as \u003c...), times as RFC 3339. Written by hand rather than with
 * JSON.stringify so that output is bounded by a Sink (a shared or cyclic structure fails fast).
 */

import { rfc3339Nano } from './date';
import { LimitError, type Sink } from './runtime';
import { isMap, isNil, newMap, setEntry, sortedKeys } from './values';

const MAX_DEPTH = 100;

/** encoding/json refuses these; Sprig then renders an empty string. */
export class UnsupportedValueError extends Error {
  override readonly name = 'UnsupportedValueError';
}

function escapeChar(c: number): string {
  switch (c) {
    case 0x22:
      return '\\"';
    case 0x5c:
      return '\\\\';
    case 0x0a:
      return '\\n';
    case 0x0d:
      return '\\r';
    case 0x09:
      return '\\t';
    case 0x08:
      return '\\b';
    case 0x0c:
      return '\\f';
    default:
      return '\\u' + c.toString(16).padStart(4, '0');
  }
}

// Control characters, quote, backslash, the HTML-sensitive <>&, U+2028/2029 and lone surrogates.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const NEEDS_ESCAPE = /[\x00-\x1f"\\<>&\u2028\u2029]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

export function jsonString(s: string): string {
  return (
    '"' +
    s.replace(NEEDS_ESCAPE, (ch) => {
      const c = ch.charCodeAt(0);
      return c >= 0xd800 && c <= 0xdfff ? '\\ufffd' : escapeChar(c);
    }) +
    '"'
  );
}

function jsonNumber(v: number): string {
  if (!Number.isFinite(v)) throw new UnsupportedValueError(`json: unsupported value: ${v}`);
  // Go and ECMAScript agree: plain notation in [1e-6, 1e21), exponent otherwise, shortest digits.
  return String(v);
}

function encode(out: Sink, v: unknown, indent: string | null, prefix: string, depth: number): void {
  if (depth > MAX_DEPTH) throw new LimitError('value is nested too deeply to encode as JSON (is it cyclic?)');
  if (isNil(v)) return out.write('null');
  switch (typeof v) {
    case 'string':
      return out.write(jsonString(v));
    case 'number':
      return out.write(jsonNumber(v));
    case 'boolean':
      return out.write(v ? 'true' : 'false');
  }
  if (v instanceof Date) return out.write(jsonString(rfc3339Nano(v)));
  const inner = indent === null ? '' : prefix + indent;
  const newline = indent === null ? '' : '\n';
  if (Array.isArray(v)) {
    if (v.length === 0) return out.write('[]');
    out.write('[');
    for (let i = 0; i < v.length; i++) {
      if (i > 0) out.write(',');
      out.write(newline + inner);
      encode(out, v[i], indent, inner, depth + 1);
    }
    return out.write(newline + prefix + ']');
  }
  if (isMap(v)) {
    const keys = sortedKeys(v);
    if (keys.length === 0) return out.write('{}');
    out.write('{');
    for (let i = 0; i < keys.length; i++) {
      if (i > 0) out.write(',');
      out.write(newline + inner + jsonString(keys[i]) + (indent === null ? ':' : ': '));
      encode(out, v[keys[i]], indent, inner, depth + 1);
    }
    return out.write(newline + prefix + '}');
  }
  throw new UnsupportedValueError(`json: unsupported type: ${typeof v}`);
}

/** json.Marshal, or json.MarshalIndent(v, "", indent) when `indent` is given. */
export function toJson(out: Sink, v: unknown, indent: string | null = null): string {
  encode(out, v, indent, '', 0);
  return out.toString();
}

function fromParsed(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(fromParsed);
  if (v !== null && typeof v === 'object') {
    const m = newMap();
    for (const [k, e] of Object.entries(v)) setEntry(m, k, fromParsed(e));
    return m;
  }
  return v;
}

/** json.Unmarshal into interface{}; throws SyntaxError on invalid input. */
export function fromJson(text: string): unknown {
  return fromParsed(JSON.parse(text));
}
