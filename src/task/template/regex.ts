/**
 * Go (RE2) regular expressions on the JavaScript engine. The pattern is translated to a
 * `u`-mode RegExp: RE2 escapes (\A, \z, \Q..\E, \pN, octal, POSIX classes, (?P<name>)) become
 * their JavaScript equivalents, and RE2 constructs JavaScript lacks or means differently are
 * refused rather than silently changed. JavaScript backtracks where RE2 does not, so callers run
 * matching under a time budget (FuncContext.guarded). Replacement follows Go's Expand ($1, ${name})
 * and Go's rule that an empty match right after a match is not replaced.
 */

import { FuncError } from './runtime';
import { errorMessage } from '../../errors';

const JS_SYNTAX = '^$\\.*+?()[]{}|/';

const POSIX_CLASSES: Readonly<Record<string, string>> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7F',
  blank: '\\t ',
  cntrl: '\\x00-\\x1F\\x7F',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`\\{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
};

class Translator {
  private i = 0;
  private out = '';
  flags = '';

  constructor(private readonly src: string) {}

  fail(reason: string): never {
    throw new FuncError(`error parsing regexp: ${reason}: \`${this.src}\``);
  }

  run(): string {
    const src = this.src;
    const lead = /^\(\?([a-zA-Z]+)\)/.exec(src);
    if (lead) {
      for (const flag of lead[1]) {
        if (flag !== 'i' && flag !== 'm' && flag !== 's') this.fail(`unsupported flag ${flag}`);
        if (!this.flags.includes(flag)) this.flags += flag;
      }
      this.i = lead[0].length;
    }
    while (this.i < src.length) {
      const c = src[this.i];
      switch (c) {
        case '\\':
          this.out += this.escape(false);
          break;
        case '[':
          this.charClass();
          break;
        case '(':
          this.group();
          break;
        case '{': {
          const rep = /^\{(\d+)(,(\d*))?\}/.exec(src.slice(this.i));
          if (rep) {
            if (Number(rep[1]) > 1000 || (rep[3] !== undefined && rep[3] !== '' && Number(rep[3]) > 1000)) {
              this.fail('invalid repeat count');
            }
            this.out += rep[0];
            this.i += rep[0].length;
          } else {
            // RE2 reads a brace that starts no repetition as a literal; `u` mode needs it escaped.
            this.out += '\\{';
            this.i++;
          }
          break;
        }
        case '}':
        case ']':
          this.out += '\\' + c;
          this.i++;
          break;
        default: {
          const cp = src.codePointAt(this.i) ?? 0;
          const ch = String.fromCodePoint(cp);
          this.out += ch;
          this.i += ch.length;
        }
      }
    }
    return this.out;
  }

  private group(): void {
    const rest = this.src.slice(this.i);
    const named = /^\(\?P?<([A-Za-z_][A-Za-z0-9_]*)>/.exec(rest);
    if (named) {
      this.out += `(?<${named[1]}>`;
      this.i += named[0].length;
    } else if (rest.startsWith('(?:')) {
      this.out += '(?:';
      this.i += 3;
    } else if (rest.startsWith('(?')) {
      this.fail('invalid or unsupported Perl syntax `' + rest.slice(0, 3) + '`');
    } else {
      this.out += '(';
      this.i++;
    }
  }

  /** An escape at `this.i` (a backslash); returns its JavaScript form. */
  private escape(inClass: boolean): string {
    const src = this.src;
    const e = src[this.i + 1];
    if (e === undefined) this.fail('trailing backslash at end of expression');
    this.i += 2;
    if (/[0-7]/.test(e)) {
      // RE2: octal with up to three digits; a single non-zero digit would be a backreference.
      const m = /^[0-7]{0,2}/.exec(src.slice(this.i))?.[0] ?? '';
      if (e !== '0' && m === '') this.fail(`invalid escape sequence: \`\\${e}\``);
      this.i += m.length;
      return `\\u{${parseInt(e + m, 8).toString(16)}}`;
    }
    switch (e) {
      case 'a':
        return '\\x07';
      case 'f':
      case 'n':
      case 'r':
      case 't':
      case 'v':
      case 'd':
      case 'D':
      case 'w':
      case 'W':
        return '\\' + e;
      case 's':
        // RE2's \s is [\t\n\f\r ]; JavaScript's also matches \v and Unicode spaces.
        return inClass ? '\\t\\n\\f\\r ' : '[\\t\\n\\f\\r ]';
      case 'S':
        return inClass ? '\\S' : '[^\\t\\n\\f\\r ]';
      case 'b':
      case 'B':
        if (inClass) this.fail(`invalid escape sequence: \`\\${e}\``);
        return '\\' + e;
      case 'A':
        if (inClass) this.fail('invalid escape sequence: `\\A`');
        return '(?<![\\s\\S])';
      case 'z':
        if (inClass) this.fail('invalid escape sequence: `\\z`');
        return '(?![\\s\\S])';
      case 'x': {
        const m = /^(?:\{([0-9a-fA-F]{1,6})\}|([0-9a-fA-F]{2}))/.exec(src.slice(this.i));
        if (!m) this.fail('invalid escape sequence: `\\x`');
        this.i += m[0].length;
        return `\\u{${(m[1] ?? m[2]).toLowerCase()}}`;
      }
      case 'p':
      case 'P':
        return this.unicodeClass(e);
      case 'Q': {
        const close = src.indexOf('\\E', this.i);
        const text = close < 0 ? src.slice(this.i) : src.slice(this.i, close);
        this.i = close < 0 ? src.length : close + 2;
        return Array.from(text, (ch) => (JS_SYNTAX.includes(ch) || ch === '-' ? '\\' + ch : ch)).join('');
      }
    }
    const code = e.charCodeAt(0);
    const isWordChar = /[A-Za-z0-9_]/.test(e);
    if (code >= 0x80 || isWordChar) this.fail(`invalid escape sequence: \`\\${e}\``);
    // RE2 lets any ASCII punctuation be escaped; `u` mode only syntax characters (and - in classes).
    return JS_SYNTAX.includes(e) || (inClass && e === '-') ? '\\' + e : e;
  }

  private unicodeClass(e: string): string {
    const src = this.src;
    let name: string;
    if (src[this.i] === '{') {
      const close = src.indexOf('}', this.i);
      if (close < 0) this.fail('invalid character class range');
      name = src.slice(this.i + 1, close);
      this.i = close + 1;
    } else {
      name = src[this.i] ?? '';
      this.i++;
    }
    let negate = e === 'P';
    if (name.startsWith('^')) {
      negate = !negate;
      name = name.slice(1);
    }
    if (!/^[A-Za-z_]+$/.test(name)) this.fail(`invalid character class range: \`\\${e}{${name}}\``);
    // One- and two-letter names are general categories; longer ones are scripts (\p{Greek}).
    const prop = name === 'Any' ? 'Any' : name.length <= 2 ? name : `Script=${name}`;
    const js = `\\${negate ? 'P' : 'p'}{${prop}}`;
    try {
      new RegExp(js, 'u');
    } catch {
      this.fail(`invalid character class range: \`\\${e}{${name}}\``);
    }
    return js;
  }

  private charClass(): void {
    const src = this.src;
    this.i++;
    this.out += '[';
    if (src[this.i] === '^') {
      this.out += '^';
      this.i++;
    }
    let first = true;
    for (;;) {
      if (this.i >= src.length) this.fail('missing closing ]');
      const c = src[this.i];
      if (c === ']' && !first) break;
      first = false;
      if (c === '[' && src[this.i + 1] === ':') {
        const m = /^\[:(\^?)([a-z]+):\]/.exec(src.slice(this.i));
        const set = m ? POSIX_CLASSES[m[2]] : undefined;
        if (!m || set === undefined) this.fail('invalid character class range');
        if (m[1] === '^') this.fail('negated POSIX classes are not supported');
        this.out += set;
        this.i += m[0].length;
        continue;
      }
      if (c === '\\') {
        this.out += this.escape(true);
        continue;
      }
      if (c === '[' || c === ']') this.out += '\\' + c;
      else this.out += c;
      this.i++;
    }
    this.i++;
    this.out += ']';
  }
}

const cache = new Map<string, RegExp>();
const CACHE_LIMIT = 200;

/** A global, `u`-mode RegExp for a Go pattern; throws FuncError on bad or unsupported syntax. */
export function compileGoRegex(pattern: string): RegExp {
  const hit = cache.get(pattern);
  if (hit) return hit;
  const t = new Translator(pattern);
  const source = t.run();
  let re: RegExp;
  try {
    re = new RegExp(source, 'gu' + t.flags);
  } catch (e) {
    throw new FuncError(`error parsing regexp: ${errorMessage(e)}`);
  }
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(pattern, re);
  return re;
}

export function regexTest(re: RegExp, s: string): boolean {
  re.lastIndex = 0;
  return re.test(s);
}

/** Go's Regexp.Expand for one match: $1, ${1}, $name, ${name}, $$. */
function expand(template: string, m: RegExpExecArray): string {
  let out = '';
  let i = 0;
  while (i < template.length) {
    const dollar = template.indexOf('$', i);
    if (dollar < 0) {
      out += template.slice(i);
      break;
    }
    out += template.slice(i, dollar);
    i = dollar + 1;
    if (template[i] === '$') {
      out += '$';
      i++;
      continue;
    }
    const ref = /^(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))/.exec(template.slice(i));
    if (!ref) {
      out += '$'; // malformed: the dollar is literal text
      continue;
    }
    i += ref[0].length;
    const name = ref[1] ?? ref[2];
    if (/^[0-9]+$/.test(name)) out += m[Number(name)] ?? '';
    else out += m.groups?.[name] ?? '';
  }
  return out;
}

/**
 * Regexp.ReplaceAllString. `limit` caps the result length: the replacement can multiply the
 * input, and the check runs before each piece is appended.
 */
export function regexReplaceAll(re: RegExp, s: string, template: string, limit: number, onLimit: () => never): string {
  const parts: string[] = [];
  let size = 0;
  const add = (piece: string): void => {
    size += piece.length;
    if (size > limit) onLimit();
    parts.push(piece);
  };
  let lastMatchEnd = 0;
  let searchPos = 0;
  while (searchPos <= s.length) {
    re.lastIndex = searchPos;
    const m = re.exec(s);
    if (!m) break;
    const start = m.index;
    const end = start + m[0].length;
    add(s.slice(lastMatchEnd, start));
    // An empty match right after the previous match is not replaced (Go's rule).
    if (end > lastMatchEnd || start === 0) add(expand(template, m));
    lastMatchEnd = end;
    const width = s.codePointAt(searchPos) !== undefined && (s.codePointAt(searchPos) ?? 0) > 0xffff ? 2 : 1;
    if (searchPos + width > end) searchPos += width;
    else if (searchPos + 1 > end) searchPos++;
    else searchPos = end;
  }
  add(s.slice(lastMatchEnd));
  return parts.join('');
}
