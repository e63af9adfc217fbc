/**
 * Go's fmt (Sprint, Sprintln, Sprintf) over the template value model, after fmt/print.go and
 * fmt/format.go: verbs, flags, width, precision, argument indexes, and the `%!verb(type=value)`
 * diagnostics. One deliberate leniency: float verbs (%e %f %g) accept ints, because a YAML `3.0`
 * reaches us as the integer 3 while Go would have it as a float64.
 */

import { goTimeString } from './date';
import { canBackquote, goQuote, goQuoteRune, isPrint, runeCount, utf8Bytes } from './gostr';
import { LimitError, type Sink } from './runtime';
import { formatFloat, type FloatVerb } from './strconv';
import { isInt, isMap, isNil, sortedKeys, typeName } from './values';

interface Flags {
  plus: boolean;
  minus: boolean;
  sharp: boolean;
  space: boolean;
  zero: boolean;
  /** %+v and %#v are flagless formats of their own; plus/sharp are cleared when these are set. */
  plusV: boolean;
  sharpV: boolean;
  widPresent: boolean;
  precPresent: boolean;
  wid: number;
  prec: number;
}

function noFlags(): Flags {
  return {
    plus: false,
    minus: false,
    sharp: false,
    space: false,
    zero: false,
    plusV: false,
    sharpV: false,
    widPresent: false,
    precPresent: false,
    wid: 0,
    prec: 0,
  };
}

/** Go refuses widths and precisions above a million (they print as %!(NOVERB) or BADWIDTH). */
function tooLarge(n: number): boolean {
  return n > 1e6 || n < -1e6;
}

const MAX_PRINT_DEPTH = 100;

class Printer {
  private f: Flags = noFlags();
  /** The operand being formatted, for `%!verb(type=value)`. */
  private arg: unknown = null;
  /** An explicit [n] index was used: extra arguments are not reported. */
  private reordered = false;
  private goodArgNum = true;

  constructor(private readonly out: Sink) {}

  // --- padding (format.go) ---

  private writePadding(n: number): void {
    this.out.repeat(this.f.zero && !this.f.minus ? '0' : ' ', n);
  }

  private pad(s: string): void {
    const f = this.f;
    if (!f.widPresent || f.wid === 0) {
      this.out.write(s);
      return;
    }
    const width = f.wid - runeCount(s);
    if (f.minus) {
      this.out.write(s);
      this.writePadding(width);
    } else {
      this.writePadding(width);
      this.out.write(s);
    }
  }

  /** Pads with spaces even under the 0 flag (integers have already zero-extended). */
  private padSpaces(s: string): void {
    const zero = this.f.zero;
    this.f.zero = false;
    this.pad(s);
    this.f.zero = zero;
  }

  private truncate(s: string): string {
    if (!this.f.precPresent) return s;
    const chars = Array.from(s);
    return chars.length > this.f.prec ? chars.slice(0, this.f.prec).join('') : s;
  }

  // --- scalars ---

  private fmtInteger(v: number, base: number, verb: string, upper: boolean): void {
    const f = this.f;
    const negative = v < 0;
    let digits = Math.abs(v).toString(base);
    if (upper) digits = digits.toUpperCase();
    let prec = 0;
    if (f.precPresent) {
      prec = f.prec;
      if (prec === 0 && v === 0) {
        const zero = f.zero;
        f.zero = false;
        this.writePadding(f.wid);
        f.zero = zero;
        return;
      }
    } else if (f.zero && !f.minus && f.widPresent) {
      prec = f.wid;
      if (negative || f.plus || f.space) prec--;
    }
    if (digits.length < prec) digits = '0'.repeat(prec - digits.length) + digits;
    let prefix = '';
    if (f.sharp) {
      if (base === 2) prefix = '0b';
      else if (base === 8 && digits[0] !== '0') prefix = '0';
      else if (base === 16) prefix = upper ? '0X' : '0x';
    }
    if (verb === 'O') prefix = '0o' + prefix;
    const sign = negative ? '-' : f.plus ? '+' : f.space ? ' ' : '';
    this.padSpaces(sign + prefix + digits);
  }

  private fmtUnicode(v: number): void {
    let prec = 4;
    if (this.f.precPresent && this.f.prec > 4) prec = this.f.prec;
    const u = BigInt.asUintN(64, BigInt(v));
    let out = 'U+' + u.toString(16).toUpperCase().padStart(prec, '0');
    if (this.f.sharp && v >= 0 && v <= 0x10ffff && isPrint(v)) out += ` '${String.fromCodePoint(v)}'`;
    this.padSpaces(out);
  }

  private fmtFloat(v: number, verb: FloatVerb, defaultPrec: number): void {
    const f = this.f;
    const prec = f.precPresent ? f.prec : defaultPrec;
    const num = formatFloat(v, verb, prec);
    let sign = '+';
    let body = num;
    if (num[0] === '-' || num[0] === '+') {
      sign = num[0];
      body = num.slice(1);
    }
    if (f.space && sign === '+' && !f.plus) sign = ' ';
    if (body === 'Inf' || body === 'NaN') {
      // Not numbers: never zero-padded, and NaN shows a sign only when asked.
      this.padSpaces(body === 'NaN' && !f.space && !f.plus ? body : sign + body);
      return;
    }
    if (f.sharp) body = sharpFloat(body, verb, prec);
    if (f.plus || sign !== '+') {
      if (f.zero && !f.minus && f.widPresent && f.wid > body.length + 1) {
        this.out.write(sign);
        this.writePadding(f.wid - body.length - 1);
        this.out.write(body);
        return;
      }
      this.pad(sign + body);
      return;
    }
    this.pad(body);
  }

  private fmtQ(s: string): void {
    s = this.truncate(s);
    if (this.f.sharp && canBackquote(s)) this.pad('`' + s + '`');
    else this.pad(goQuote(s, this.f.plus));
  }

  private fmtSx(s: string, upper: boolean): void {
    const f = this.f;
    let bytes = utf8Bytes(s);
    if (f.precPresent && f.prec < bytes.length) bytes = bytes.subarray(0, f.prec);
    if (bytes.length === 0) {
      if (f.widPresent) this.writePadding(f.wid);
      return;
    }
    const x = upper ? '0X' : '0x';
    const parts: string[] = [];
    for (const b of bytes) {
      const h = b.toString(16).padStart(2, '0');
      parts.push(upper ? h.toUpperCase() : h);
    }
    let out: string;
    if (f.space) out = parts.map((p) => (f.sharp ? x + p : p)).join(' ');
    else out = (f.sharp ? x : '') + parts.join('');
    // Go pads the encoding with spaces only, whatever the 0 flag says.
    this.padSpaces(out);
  }

  private fmtString(s: string, verb: string): void {
    switch (verb) {
      case 'v':
        if (this.f.sharpV) this.fmtQ(s);
        else this.pad(this.truncate(s));
        return;
      case 's':
        this.pad(this.truncate(s));
        return;
      case 'x':
      case 'X':
        this.fmtSx(s, verb === 'X');
        return;
      case 'q':
        this.fmtQ(s);
        return;
      default:
        this.badVerb(verb);
    }
  }

  private fmtInt(v: number, verb: string): void {
    switch (verb) {
      case 'v':
      case 'd':
        return this.fmtInteger(v, 10, verb, false);
      case 'b':
        return this.fmtInteger(v, 2, verb, false);
      case 'o':
      case 'O':
        return this.fmtInteger(v, 8, verb, false);
      case 'x':
      case 'X':
        return this.fmtInteger(v, 16, verb, verb === 'X');
      case 'c': {
        const valid = v >= 0 && v <= 0x10ffff && !(v >= 0xd800 && v <= 0xdfff);
        return this.pad(String.fromCodePoint(valid ? v : 0xfffd));
      }
      case 'q':
        return this.pad(goQuoteRune(v, this.f.plus));
      case 'U':
        return this.fmtUnicode(v);
      case 'e':
      case 'E':
      case 'f':
      case 'F':
      case 'g':
      case 'G':
        return this.fmtFloatVerb(v, verb);
      default:
        return this.badVerb(verb);
    }
  }

  private fmtFloatVerb(v: number, verb: string): void {
    switch (verb) {
      case 'v':
        return this.fmtFloat(v, 'g', -1);
      case 'g':
      case 'G':
        return this.fmtFloat(v, verb, -1);
      case 'e':
      case 'E':
        return this.fmtFloat(v, verb, 6);
      case 'f':
      case 'F':
        return this.fmtFloat(v, 'f', 6);
      default:
        return this.badVerb(verb);
    }
  }

  private fmtScalar(v: unknown, verb: string): void {
    if (typeof v === 'string') return this.fmtString(v, verb);
    if (typeof v === 'number') return isInt(v) ? this.fmtInt(v, verb) : this.fmtFloatVerb(v, verb);
    if (typeof v === 'boolean') {
      if (verb === 't' || verb === 'v') return this.pad(String(v));
      return this.badVerb(verb);
    }
    if (v instanceof Date) {
      // time.Time is a fmt.Stringer: the string verbs format its String().
      if (verb === 'v' || verb === 's' || verb === 'q' || verb === 'x' || verb === 'X') {
        return this.fmtString(goTimeString(v), verb === 'v' ? 's' : verb);
      }
      return this.badVerb(verb);
    }
    this.pad(String(v));
  }

  private badVerb(verb: string): void {
    const arg = this.arg;
    this.out.write('%!' + verb + '(');
    if (isNil(arg)) this.out.write('<nil>');
    else {
      this.out.write(typeName(arg) + '=');
      this.printArg(arg, 'v');
    }
    this.out.write(')');
  }

  // --- values ---

  printArg(arg: unknown, verb: string): void {
    this.arg = arg;
    if (isNil(arg)) {
      if (verb === 'T' || verb === 'v') this.pad('<nil>');
      else this.badVerb(verb);
      return;
    }
    if (verb === 'T') {
      this.pad(this.truncate(typeName(arg)));
      return;
    }
    if (verb === 'p') {
      this.badVerb(verb);
      return;
    }
    this.printValue(arg, verb, 0);
  }

  private printValue(v: unknown, verb: string, depth: number): void {
    if (depth > MAX_PRINT_DEPTH) throw new LimitError('value is nested too deeply to print (is it cyclic?)');
    if (depth > 0) {
      if (isNil(v)) {
        if (this.f.sharpV) this.out.write('interface {}(nil)');
        else this.pad('<nil>');
        return;
      }
      this.arg = v;
    }
    if (Array.isArray(v)) {
      const sharpV = this.f.sharpV;
      this.out.write(sharpV ? '[]interface {}{' : '[');
      for (let i = 0; i < v.length; i++) {
        if (i > 0) this.out.write(sharpV ? ', ' : ' ');
        this.printValue(v[i], verb, depth + 1);
      }
      this.out.write(sharpV ? '}' : ']');
      return;
    }
    if (isMap(v)) {
      const sharpV = this.f.sharpV;
      this.out.write(sharpV ? 'map[string]interface {}{' : 'map[');
      const keys = sortedKeys(v);
      for (let i = 0; i < keys.length; i++) {
        if (i > 0) this.out.write(sharpV ? ', ' : ' ');
        this.printValue(keys[i], verb, depth + 1);
        this.out.write(':');
        this.printValue(v[keys[i]], verb, depth + 1);
      }
      this.out.write(sharpV ? '}' : ']');
      return;
    }
    this.fmtScalar(v, verb);
  }

  // --- entry points (print.go) ---

  doPrint(args: readonly unknown[]): void {
    let prevString = false;
    for (let i = 0; i < args.length; i++) {
      const isString = typeof args[i] === 'string';
      // Sprint separates operands with a space when neither side is a string.
      if (i > 0 && !isString && !prevString) this.out.write(' ');
      this.printArg(args[i], 'v');
      prevString = isString;
    }
  }

  doPrintln(args: readonly unknown[]): void {
    for (let i = 0; i < args.length; i++) {
      if (i > 0) this.out.write(' ');
      this.printArg(args[i], 'v');
    }
    this.out.write('\n');
  }

  /** Reads `[n]` at `i`; returns the argument number to use and where the format continues. */
  private argNumber(argNum: number, format: string, i: number, numArgs: number): [number, number, boolean] {
    if (format[i] !== '[') return [argNum, i, false];
    this.reordered = true;
    const close = format.indexOf(']', i + 1);
    if (close < 0) {
      this.goodArgNum = false;
      return [argNum, i + 1, false];
    }
    const text = format.slice(i + 1, close);
    if (!/^[0-9]+$/.test(text) || tooLarge(Number(text))) {
      this.goodArgNum = false;
      return [argNum, close + 1, false];
    }
    const index = Number(text) - 1;
    if (index >= 0 && index < numArgs) return [index, close + 1, true];
    this.goodArgNum = false;
    return [argNum, close + 1, true];
  }

  private intFromArg(args: readonly unknown[], argNum: number): [number, boolean, number] {
    if (argNum >= args.length) return [0, false, argNum];
    const v = args[argNum];
    if (!isInt(v) || tooLarge(v)) return [0, false, argNum + 1];
    return [v, true, argNum + 1];
  }

  doPrintf(format: string, args: readonly unknown[]): void {
    const end = format.length;
    let argNum = 0;
    let afterIndex = false;
    this.reordered = false;
    let i = 0;
    formatLoop: while (i < end) {
      this.goodArgNum = true;
      const percent = format.indexOf('%', i);
      const stop = percent < 0 ? end : percent;
      if (stop > i) this.out.write(format.slice(i, stop));
      if (stop >= end) break;
      i = stop + 1;
      this.f = noFlags();
      const f = this.f;
      flags: for (; i < end; i++) {
        switch (format[i]) {
          case '#':
            f.sharp = true;
            break;
          case '0':
            f.zero = !f.minus;
            break;
          case '+':
            f.plus = true;
            break;
          case '-':
            f.minus = true;
            f.zero = false;
            break;
          case ' ':
            f.space = true;
            break;
          default:
            break flags;
        }
      }
      [argNum, i, afterIndex] = this.argNumber(argNum, format, i, args.length);
      if (format[i] === '*') {
        i++;
        [f.wid, f.widPresent, argNum] = this.intFromArg(args, argNum);
        if (!f.widPresent) this.out.write('%!(BADWIDTH)');
        if (f.wid < 0) {
          f.wid = -f.wid;
          f.minus = true;
          f.zero = false;
        }
        afterIndex = false;
      } else {
        [f.wid, f.widPresent, i] = parseNum(format, i, end);
        if (afterIndex && f.widPresent) this.goodArgNum = false;
      }
      if (i + 1 < end && format[i] === '.') {
        i++;
        if (afterIndex) this.goodArgNum = false;
        [argNum, i, afterIndex] = this.argNumber(argNum, format, i, args.length);
        if (format[i] === '*') {
          i++;
          [f.prec, f.precPresent, argNum] = this.intFromArg(args, argNum);
          if (f.prec < 0) {
            f.prec = 0;
            f.precPresent = false;
          }
          if (!f.precPresent) this.out.write('%!(BADPREC)');
          afterIndex = false;
        } else {
          [f.prec, f.precPresent, i] = parseNum(format, i, end);
          if (!f.precPresent) {
            f.prec = 0;
            f.precPresent = true;
          }
        }
      }
      if (!afterIndex) [argNum, i, afterIndex] = this.argNumber(argNum, format, i, args.length);
      if (i >= end) {
        this.out.write('%!(NOVERB)');
        break formatLoop;
      }
      const verb = String.fromCodePoint(format.codePointAt(i) ?? 0);
      i += verb.length;
      if (verb === '%') {
        this.out.write('%');
      } else if (!this.goodArgNum) {
        this.out.write(`%!${verb}(BADINDEX)`);
      } else if (argNum >= args.length) {
        this.out.write(`%!${verb}(MISSING)`);
      } else {
        if (verb === 'v') {
          f.sharpV = f.sharp;
          f.sharp = false;
          f.plusV = f.plus;
          f.plus = false;
        }
        this.printArg(args[argNum], verb);
        argNum++;
      }
    }
    if (!this.reordered && argNum < args.length) {
      this.f = noFlags();
      this.out.write('%!(EXTRA ');
      for (let k = argNum; k < args.length; k++) {
        if (k > argNum) this.out.write(', ');
        const arg = args[k];
        if (isNil(arg)) this.out.write('<nil>');
        else {
          this.out.write(typeName(arg) + '=');
          this.printArg(arg, 'v');
        }
      }
      this.out.write(')');
    }
  }
}

function parseNum(s: string, start: number, end: number): [number, boolean, number] {
  let num = 0;
  let isNum = false;
  let i = start;
  for (; i < end && s.charCodeAt(i) >= 0x30 && s.charCodeAt(i) <= 0x39; i++) {
    if (tooLarge(num)) return [0, false, end];
    num = num * 10 + (s.charCodeAt(i) - 0x30);
    isNum = true;
  }
  return [num, isNum, i];
}

/** The # flag on floats: keep a decimal point and, for %g, the trailing zeros. */
function sharpFloat(body: string, verb: FloatVerb, prec: number): string {
  let digits = verb === 'g' || verb === 'G' ? (prec === -1 ? 6 : prec) : 0;
  let tail = '';
  const e = body.search(/[eE]/);
  if (e >= 0) {
    tail = body.slice(e);
    body = body.slice(0, e);
  }
  let sawNonzero = false;
  for (const ch of body) {
    if (ch === '.') continue;
    if (ch !== '0') sawNonzero = true;
    if (sawNonzero) digits--;
  }
  if (!body.includes('.')) {
    if (body === '0') digits--;
    body += '.';
  }
  if (digits > 0) body += '0'.repeat(digits);
  return body + tail;
}

/** fmt.Sprintf. */
export function sprintf(out: Sink, format: string, args: readonly unknown[]): string {
  new Printer(out).doPrintf(format, args);
  return out.toString();
}

/** fmt.Sprint. */
export function sprint(out: Sink, args: readonly unknown[]): string {
  new Printer(out).doPrint(args);
  return out.toString();
}

/** fmt.Sprintln. */
export function sprintln(out: Sink, args: readonly unknown[]): string {
  new Printer(out).doPrintln(args);
  return out.toString();
}

/** fmt.Sprint of one value; nil prints as `<nil>`. */
export function formatValue(out: Sink, v: unknown): string {
  if (typeof v === 'string') return v;
  new Printer(out).printArg(v, 'v');
  return out.toString();
}
