/**
 * The lexer: one linear pass over the source producing tokens with offsets, following Go's
 * text/template/parse/lex.go. Trim markers (`{{- ` and ` -}}`) and comments are resolved here, so
 * the parser never sees them. Lexing stops at the first error, which becomes an `error` token:
 * the parser reports it when it reaches it, so an earlier parse error wins, as in Go.
 */

import { describeRune } from './gostr';

export type TokenKind =
  | 'text'
  | 'leftDelim'
  | 'rightDelim'
  | 'leftParen'
  | 'rightParen'
  | 'pipe'
  | 'declare' // :=
  | 'assign' // =
  | 'char' // any other printable ASCII character, e.g. ','
  | 'string'
  | 'rawString'
  | 'charConstant'
  | 'number'
  | 'bool'
  | 'nil'
  | 'dot'
  | 'field' // .Name (val keeps the dot)
  | 'variable' // $ or $name (val keeps the $)
  | 'identifier'
  | 'keyword'
  | 'eof'
  | 'error'; // val is the message

export interface Token {
  readonly kind: TokenKind;
  /** Offset of the token in the source (for `error`, where the problem is). */
  readonly pos: number;
  readonly val: string;
  /** Whitespace separates this token from the previous one inside the action. */
  readonly spaced: boolean;
}

const KEYWORDS: ReadonlySet<string> = new Set([
  'block',
  'break',
  'continue',
  'define',
  'else',
  'end',
  'if',
  'range',
  'template',
  'with',
]);

const SPACE = 0x20;
const TAB = 0x09;
const CR = 0x0d;
const LF = 0x0a;
const DASH = 0x2d;
const BRACE_CLOSE = 0x7d;

function isSpace(c: number): boolean {
  return c === SPACE || c === TAB || c === CR || c === LF;
}

const LETTER_OR_DIGIT = /^[\p{L}\p{Nd}]$/u;

function isAlphaNumeric(cp: number): boolean {
  if (cp < 0x80) {
    return cp === 0x5f || (cp >= 0x30 && cp <= 0x39) || (cp >= 0x41 && cp <= 0x5a) || (cp >= 0x61 && cp <= 0x7a);
  }
  return LETTER_OR_DIGIT.test(String.fromCodePoint(cp));
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/**
 * A pull lexer: `next()` scans only as far as the next token. Tokens are consumed as they are
 * produced, so they die young instead of all surviving until the parse ends, which on large task
 * files saves much of the garbage collector's work.
 */
export class Lexer {
  /** The token the current step produced. */
  private out: Token | null = null;
  private pos = 0;
  /** A `{{` found by the last text step, to be returned after the text before it. */
  private pendingOpen = -1;
  /** Inside an action: the offset of its `{{`; -1 between actions. */
  private actionOpen = -1;
  private readonly parens: number[] = [];
  private spaced = false;
  /** The `eof` or `error` token, returned again on every later call. */
  private final: Token | null = null;

  constructor(private readonly src: string) {}

  next(): Token {
    if (this.final) return this.final;
    this.out = null;
    while (this.out === null) {
      if (this.pendingOpen >= 0) {
        this.push('leftDelim', this.pendingOpen, '{{');
        this.actionOpen = this.pendingOpen;
        this.pendingOpen = -1;
        this.parens.length = 0;
      } else if (this.actionOpen >= 0) this.actionStep();
      else this.textStep();
    }
    return this.out;
  }

  /** Text up to the next action or comment, or the end of input. */
  private textStep(): void {
    const src = this.src;
    const pos = this.pos;
    if (pos >= src.length) {
      this.finish('eof', src.length, '');
      return;
    }
    const open = src.indexOf('{{', pos);
    if (open < 0) {
      this.push('text', pos, src.slice(pos));
      this.pos = src.length;
      return;
    }
    const trimBefore = src.charCodeAt(open + 2) === DASH && isSpace(src.charCodeAt(open + 3));
    let textEnd = open;
    if (trimBefore) while (textEnd > pos && isSpace(src.charCodeAt(textEnd - 1))) textEnd--;
    const inside = open + (trimBefore ? 4 : 2);
    if (src.startsWith('/*', inside)) {
      const after = this.comment(open, inside);
      if (after < 0) return;
      this.pos = after;
    } else {
      this.pendingOpen = open;
      this.pos = inside;
    }
    if (textEnd > pos) this.push('text', pos, src.slice(pos, textEnd));
  }

  /** One token inside an action; the right delimiter ends the action. */
  private actionStep(): void {
    const src = this.src;
    let i = this.pos;
    for (;;) {
      const delim = this.rightDelimAt(i);
      if (delim > 0) {
        if (this.parens.length > 0) {
          this.fail(this.parens[this.parens.length - 1], 'unclosed left paren');
          return;
        }
        this.push('rightDelim', delim === 4 ? i + 2 : i, '}}');
        this.pos = delim === 4 ? this.skipSpace(i + 4) : i + 2;
        this.actionOpen = -1;
        return;
      }
      if (i >= src.length) {
        this.fail(this.actionOpen, 'unclosed action');
        return;
      }
      if (!isSpace(src.charCodeAt(i))) break;
      this.spaced = true;
      i++;
    }
    const next = this.token(i, src.charCodeAt(i));
    if (next >= 0) this.pos = next;
  }

  /** Lexes the token at `i`; returns the offset after it, or -1 on error. */
  private token(i: number, c: number): number {
    const src = this.src;
    switch (c) {
      case 0x3d: // =
        this.push('assign', i, '=');
        return i + 1;
      case 0x3a: // :
        if (src.charCodeAt(i + 1) !== 0x3d) return this.fail(i, 'expected :=');
        this.push('declare', i, ':=');
        return i + 2;
      case 0x7c: // |
        this.push('pipe', i, '|');
        return i + 1;
      case 0x22: // "
        return this.quoted(i, 0x22, 'string', 'unterminated quoted string');
      case 0x27: // '
        return this.quoted(i, 0x27, 'charConstant', 'unterminated character constant');
      case 0x60: {
        // raw string
        const close = src.indexOf('`', i + 1);
        if (close < 0) return this.fail(i, 'unterminated raw quoted string');
        this.push('rawString', i, src.slice(i, close + 1));
        return close + 1;
      }
      case 0x24: // $
        return this.fieldOrVariable(i, 'variable');
      case 0x2e: // .
        return isDigit(src.charCodeAt(i + 1)) ? this.number(i) : this.fieldOrVariable(i, 'field');
      case 0x28: // (
        this.parens.push(i);
        this.push('leftParen', i, '(');
        return i + 1;
      case 0x29: // )
        if (this.parens.pop() === undefined) return this.fail(i, 'unexpected right paren');
        this.push('rightParen', i, ')');
        return i + 1;
      default:
        return this.other(i, c);
    }
  }

  private push(kind: TokenKind, pos: number, val: string): void {
    this.out = { kind, pos, val, spaced: this.spaced };
    this.spaced = false;
  }

  private finish(kind: 'eof' | 'error', pos: number, val: string): void {
    this.final = { kind, pos, val, spaced: this.spaced };
    this.out = this.final;
  }

  private fail(pos: number, message: string): number {
    this.finish('error', pos, message);
    return -1;
  }

  /** Length of the right delimiter at `i`: 4 for ` -}}`, 2 for `}}`, 0 if there is none. */
  private rightDelimAt(i: number): number {
    const src = this.src;
    if (isSpace(src.charCodeAt(i)) && src.charCodeAt(i + 1) === DASH && src.startsWith('}}', i + 2)) return 4;
    return src.startsWith('}}', i) ? 2 : 0;
  }

  private skipSpace(i: number): number {
    while (i < this.src.length && isSpace(this.src.charCodeAt(i))) i++;
    return i;
  }

  /** Skips a comment; returns the offset after it (-1 on error, which finishes the lexer). */
  private comment(open: number, inside: number): number {
    const close = this.src.indexOf('*/', inside + 2);
    if (close < 0) return this.fail(open, 'unclosed comment');
    const delim = this.rightDelimAt(close + 2);
    if (delim === 0) return this.fail(open, 'comment ends before closing delimiter');
    const after = close + 2 + delim;
    return delim === 4 ? this.skipSpace(after) : after;
  }

  private other(i: number, c: number): number {
    if (c === 0x2b || c === DASH || isDigit(c)) return this.number(i);
    const cp = this.src.codePointAt(i) ?? c;
    if (isAlphaNumeric(cp)) return this.identifier(i);
    if (c < 0x7f && c >= 0x20) {
      this.push('char', i, String.fromCharCode(c));
      return i + 1;
    }
    return this.fail(i, `unrecognized character in action: ${describeRune(cp)}`);
  }

  /** Go's atTerminator: what may follow an identifier, field or variable. */
  private atTerminator(i: number): boolean {
    if (i >= this.src.length) return true;
    const c = this.src.charCodeAt(i);
    if (isSpace(c)) return true;
    switch (c) {
      case 0x2e: // .
      case 0x2c: // ,
      case 0x7c: // |
      case 0x3a: // :
      case 0x29: // )
      case 0x28: // (
        return true;
    }
    return c === BRACE_CLOSE && this.src.charCodeAt(i + 1) === BRACE_CLOSE;
  }

  private scanAlphaNumeric(i: number): number {
    const src = this.src;
    while (i < src.length) {
      const cp = src.codePointAt(i) ?? 0;
      if (!isAlphaNumeric(cp)) break;
      i += cp > 0xffff ? 2 : 1;
    }
    return i;
  }

  private badCharacter(start: number, at: number): number {
    return this.fail(start, `bad character ${describeRune(this.src.codePointAt(at) ?? 0)}`);
  }

  private fieldOrVariable(i: number, kind: 'field' | 'variable'): number {
    if (this.atTerminator(i + 1)) {
      if (kind === 'variable') this.push('variable', i, '$');
      else this.push('dot', i, '.');
      return i + 1;
    }
    const end = this.scanAlphaNumeric(i + 1);
    if (!this.atTerminator(end)) return this.badCharacter(i, end);
    this.push(kind, i, this.src.slice(i, end));
    return end;
  }

  private identifier(i: number): number {
    const end = this.scanAlphaNumeric(i);
    if (!this.atTerminator(end)) return this.badCharacter(i, end);
    const word = this.src.slice(i, end);
    if (KEYWORDS.has(word)) this.push('keyword', i, word);
    else if (word === 'true' || word === 'false') this.push('bool', i, word);
    else if (word === 'nil') this.push('nil', i, word);
    else this.push('identifier', i, word);
    return end;
  }

  private quoted(i: number, quote: number, kind: TokenKind, unterminated: string): number {
    const src = this.src;
    let j = i + 1;
    for (;;) {
      if (j >= src.length) return this.fail(i, unterminated);
      const c = src.charCodeAt(j);
      if (c === 0x5c) {
        j++;
        if (j >= src.length || src.charCodeAt(j) === LF) return this.fail(i, unterminated);
      } else if (c === LF) {
        return this.fail(i, unterminated);
      } else if (c === quote) {
        break;
      }
      j++;
    }
    this.push(kind, i, src.slice(i, j + 1));
    return j + 1;
  }

  /** Go's scanNumber: permissive; the parser validates the text. */
  private scanNumber(i: number): number {
    const src = this.src;
    const accept = (set: string): boolean => {
      if (i < src.length && set.includes(src[i])) {
        i++;
        return true;
      }
      return false;
    };
    const acceptRun = (set: string): void => {
      while (i < src.length && set.includes(src[i])) i++;
    };
    accept('+-');
    let digits = '0123456789_';
    if (accept('0')) {
      if (accept('xX')) digits = '0123456789abcdefABCDEF_';
      else if (accept('oO')) digits = '01234567_';
      else if (accept('bB')) digits = '01_';
    }
    acceptRun(digits);
    if (accept('.')) acceptRun(digits);
    if (digits.length === 11 && accept('eE')) {
      accept('+-');
      acceptRun('0123456789_');
    }
    if (digits.length === 23 && accept('pP')) {
      accept('+-');
      acceptRun('0123456789_');
    }
    accept('i');
    return i;
  }

  private number(i: number): number {
    let end = this.scanNumber(i);
    if (end < this.src.length && isAlphaNumeric(this.src.codePointAt(end) ?? 0)) {
      return this.fail(i, `bad number syntax: "${this.src.slice(i, end + 1)}"`);
    }
    const sign = this.src.charCodeAt(end);
    if (sign === 0x2b || sign === DASH) {
      // Go reads `1+2i` as a complex constant; anything else glued to a sign is malformed.
      end = this.scanNumber(end);
      if (this.src[end - 1] !== 'i') return this.fail(i, `bad number syntax: "${this.src.slice(i, end)}"`);
    }
    this.push('number', i, this.src.slice(i, end));
    return end;
  }
}

/** All tokens of a template (for tests and tools); the last is `eof`, or `error`. */
export function lex(src: string): Token[] {
  const lexer = new Lexer(src);
  const tokens: Token[] = [];
  for (;;) {
    const tok = lexer.next();
    tokens.push(tok);
    if (tok.kind === 'eof' || tok.kind === 'error') return tokens;
  }
}
