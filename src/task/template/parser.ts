/**
 * Recursive-descent parser over the token list, after Go's text/template/parse/parse.go: same
 * grammar, same checks (functions and variables must be defined when used, `break`/`continue`
 * only inside `range`), messages in Go's words. Errors are TemplateErrors pointing at the token
 * at fault, or at the `{{` of the construct that lacks something (a missing `{{end}}`).
 */

import type { TemplateError } from '../../errors';
import type { Command, Node, Operand, ParsedTemplate, Pipeline, RangeNode, TemplateNode, VariableDecl } from './ast';
import { goQuote } from './gostr';
import { Lexer, type Token, type TokenKind } from './lexer';
import type { SourceText } from './source';
import { LiteralError, parseNumberLiteral, unquoteChar, unquoteString } from './strconv';

/** `{{end}}` and `{{else}}` end a list; they are markers, not nodes. */
interface EndMarker {
  readonly kind: 'end';
  readonly pos: number;
}
interface ElseMarker {
  readonly kind: 'else';
  readonly pos: number;
  /** `{{else if ...}}` / `{{else with ...}}`: the keyword is left for the nested control to read. */
  readonly chained: 'if' | 'with' | null;
}
type ListItem = Node | EndMarker | ElseMarker;

interface ControlParts {
  pipe: Pipeline;
  list: Node[];
  elseList: Node[] | null;
}

interface ParsedList {
  nodes: Node[];
  terminator: EndMarker | ElseMarker;
}

/** Nesting of parentheses and control structures; bounded so deep input fails cleanly, not by stack overflow. */
const MAX_DEPTH = 200;

const OPERAND_START: ReadonlySet<TokenKind> = new Set<TokenKind>([
  'bool',
  'charConstant',
  'dot',
  'field',
  'identifier',
  'number',
  'nil',
  'rawString',
  'string',
  'variable',
  'leftParen',
]);

/** Go's item.String(): how a token appears in "unexpected ..." messages. */
function describe(tok: Token): string {
  switch (tok.kind) {
    case 'eof':
      return 'EOF';
    case 'keyword':
    case 'dot':
    case 'nil':
      return `<${tok.val}>`;
    default: {
      const chars = Array.from(tok.val);
      return chars.length > 10 ? goQuote(chars.slice(0, 10).join('')) + '...' : goQuote(tok.val);
    }
  }
}

class Parser {
  /** Lookahead: up to two tokens read from the lexer and not yet consumed. */
  private ahead0: Token | null = null;
  private ahead1: Token | null = null;
  /** The offset of the current action's `{{` until its `}}` is read; -1 between actions. */
  private actionOpen = -1;
  /** Variables in scope, innermost last; `$` is always defined. */
  private vars: string[] = ['$'];
  private rangeDepth = 0;
  private depth = 0;
  private readonly defines = new Map<string, readonly Node[]>();

  constructor(
    private readonly lexer: Lexer,
    private readonly source: SourceText,
    private readonly isFunction: (name: string) => boolean,
  ) {}

  parse(): ParsedTemplate {
    const root: Node[] = [];
    for (;;) {
      const tok = this.peek();
      if (tok.kind === 'eof') break;
      if (tok.kind === 'leftDelim') {
        const after = this.peekAt(1);
        if (after.kind === 'keyword' && after.val === 'define') {
          this.skip(2);
          this.definition(tok.pos);
          continue;
        }
      }
      const item = this.textOrAction();
      if (item.kind === 'end' || item.kind === 'else') throw this.error(item.pos, `unexpected {{${item.kind}}}`);
      root.push(item);
    }
    return { root, defines: this.defines };
  }

  // --- tokens ---

  /**
   * A parse error inside an action that never closes is reported as the unclosed action: since
   * actions may span lines, `{{ .x` followed by more YAML would otherwise be blamed on whatever
   * YAML comes next (Go says `illegal number syntax: "-"` for a following `- cmd:`).
   */
  private error(pos: number, reason: string): TemplateError {
    const open = this.actionOpen;
    if (open >= 0 && this.isUnclosed(open)) return this.source.error(open, 'unclosed action');
    return this.source.error(pos, reason);
  }

  /** Reads ahead to the end of the action at `open`: true if it never ends. */
  private isUnclosed(open: number): boolean {
    this.actionOpen = -1; // runs once, on the way out with an error
    const pending = [this.ahead0, this.ahead1];
    let brace = -1;
    for (;;) {
      const tok = pending.shift() ?? this.lexer.next();
      if (tok === null) continue;
      if (tok.kind === 'rightDelim' || tok.kind === 'eof') return false;
      if (tok.kind === 'char' && tok.val === '{') {
        // `{{` inside an action (outside a string) is the next action starting.
        if (brace === tok.pos - 1) return true;
        brace = tok.pos;
      }
      if (tok.kind !== 'error') continue;
      if (tok.val === 'unclosed action') return true;
      // The text after an unclosed action often fails to lex (`- cmd:` reads as `-`, `cmd`, `:`);
      // then the source decides: no `}}` before the next `{{`.
      const text = this.source.text;
      const close = text.indexOf('}}', open + 2);
      const reopen = text.indexOf('{{', open + 2);
      return close < 0 || (reopen >= 0 && reopen < close);
    }
  }

  /** The next token, or the one after it (k = 1), without consuming or reporting it. */
  private peekAt(k: 0 | 1): Token {
    if (this.ahead0 === null) this.ahead0 = this.lexer.next();
    if (k === 0) return this.ahead0;
    if (this.ahead1 === null) this.ahead1 = this.lexer.next();
    return this.ahead1;
  }

  private peek(): Token {
    const tok = this.peekAt(0);
    if (tok.kind === 'error') throw this.error(tok.pos, tok.val);
    return tok;
  }

  private skip(n: 1 | 2): void {
    if (this.ahead0) this.consumed(this.ahead0);
    if (n === 2 && this.ahead1) this.consumed(this.ahead1);
    this.ahead0 = n === 1 ? this.ahead1 : null;
    this.ahead1 = null;
  }

  private consumed(tok: Token): void {
    if (tok.kind === 'leftDelim') this.actionOpen = tok.pos;
    else if (tok.kind === 'rightDelim') this.actionOpen = -1;
  }

  private next(): Token {
    const tok = this.peek();
    if (tok.kind !== 'eof') this.skip(1);
    return tok;
  }

  private unexpected(tok: Token, context: string): TemplateError {
    return this.error(tok.pos, `unexpected ${describe(tok)} in ${context}`);
  }

  private expectRightDelim(context: string): void {
    const tok = this.next();
    if (tok.kind !== 'rightDelim') throw this.unexpected(tok, context);
  }

  private enter(pos: number, what: string): void {
    if (++this.depth > MAX_DEPTH) throw this.error(pos, `max ${what} depth exceeded`);
  }

  // --- lists and actions ---

  private textOrAction(): ListItem {
    const tok = this.next();
    if (tok.kind === 'text') return { kind: 'text', pos: tok.pos, text: tok.val };
    if (tok.kind === 'leftDelim') return this.action(tok.pos);
    throw this.unexpected(tok, 'input');
  }

  /** Nodes up to `{{end}}` or `{{else}}`; `owner` names the construct in the missing-end error. */
  private list(owner: string, ownerPos: number): ParsedList {
    const nodes: Node[] = [];
    for (;;) {
      if (this.peek().kind === 'eof') throw this.error(ownerPos, `unexpected EOF: missing {{end}} for {{${owner}}}`);
      const item = this.textOrAction();
      if (item.kind === 'end' || item.kind === 'else') return { nodes, terminator: item };
      nodes.push(item);
    }
  }

  private action(open: number): ListItem {
    const tok = this.peek();
    if (tok.kind === 'keyword') {
      switch (tok.val) {
        case 'if':
        case 'with':
          this.skip(1);
          return this.branch(tok.val, open);
        case 'range':
          this.skip(1);
          return this.range(open);
        case 'else':
          this.skip(1);
          return this.elseMarker(open);
        case 'end':
          this.skip(1);
          this.expectRightDelim('end');
          return { kind: 'end', pos: open };
        case 'break':
        case 'continue':
          this.skip(1);
          this.expectRightDelim(`{{${tok.val}}}`);
          if (this.rangeDepth === 0) throw this.error(open, `{{${tok.val}}} outside {{range}}`);
          return { kind: tok.val, pos: open };
        case 'template':
          this.skip(1);
          return this.templateCall(open);
        case 'block':
          this.skip(1);
          return this.block(open);
      }
    }
    // Variables declared by a plain action stay in scope until the enclosing {{end}}.
    return { kind: 'action', pos: open, pipe: this.pipeline('command', 'rightDelim', open) };
  }

  private elseMarker(open: number): ElseMarker {
    const tok = this.peek();
    if (tok.kind === 'keyword' && (tok.val === 'if' || tok.val === 'with')) {
      return { kind: 'else', pos: open, chained: tok.val };
    }
    this.expectRightDelim('else');
    return { kind: 'else', pos: open, chained: null };
  }

  private control(context: 'if' | 'with' | 'range', open: number): ControlParts {
    this.enter(open, 'nesting');
    const outer = this.vars.length;
    const pipe = this.pipeline(context, 'rightDelim', open);
    const scope = this.vars.length;
    if (context === 'range') this.rangeDepth++;
    const body = this.list(context, open);
    if (context === 'range') this.rangeDepth--;
    // Variables declared in the body are not visible in the else branch.
    this.vars.length = scope;
    let elseList: Node[] | null = null;
    const term = body.terminator;
    if (term.kind === 'else') {
      if (term.chained !== null && term.chained === context) {
        // {{if a}}x{{else if b}}y{{end}} is {{if a}}x{{else}}{{if b}}y{{end}}{{end}}: the nested
        // control consumes the one {{end}}.
        this.skip(1);
        elseList = [this.branch(term.chained, term.pos)];
      } else {
        if (term.chained !== null) throw this.unexpected(this.peek(), 'input');
        const rest = this.list(context, open);
        if (rest.terminator.kind === 'else') throw this.error(rest.terminator.pos, 'expected end; found {{else}}');
        elseList = rest.nodes;
      }
    }
    this.vars.length = outer;
    this.depth--;
    return { pipe, list: body.nodes, elseList };
  }

  private branch(kind: 'if' | 'with', open: number): Node {
    const { pipe, list, elseList } = this.control(kind, open);
    return { kind, pos: open, pipe, list, elseList };
  }

  private range(open: number): RangeNode {
    const { pipe, list, elseList } = this.control('range', open);
    return { kind: 'range', pos: open, pipe, list, elseList };
  }

  private templateName(context: string): string {
    const tok = this.next();
    if (tok.kind !== 'string' && tok.kind !== 'rawString') throw this.unexpected(tok, context);
    return this.unquote(tok);
  }

  private templateCall(open: number): TemplateNode {
    const name = this.templateName('template clause');
    if (this.peek().kind === 'rightDelim') {
      this.skip(1);
      return { kind: 'template', pos: open, name, pipe: null };
    }
    return { kind: 'template', pos: open, name, pipe: this.pipeline('template clause', 'rightDelim', open) };
  }

  /** `{{block "name" pipeline}}body{{end}}`: defines "name" and calls it in place. */
  private block(open: number): TemplateNode {
    const name = this.templateName('block clause');
    const pipe = this.pipeline('block clause', 'rightDelim', open);
    this.definitionBody(name, open, 'block');
    return { kind: 'template', pos: open, name, pipe };
  }

  /** `{{define "name"}}body{{end}}`, at top level only; the `define` keyword is consumed. */
  private definition(open: number): void {
    const name = this.templateName('define clause');
    this.expectRightDelim('define clause');
    this.definitionBody(name, open, 'define');
  }

  private definitionBody(name: string, open: number, owner: 'define' | 'block'): void {
    // A definition is a template of its own: it sees only `$`, and no enclosing range.
    const savedVars = this.vars;
    const savedRange = this.rangeDepth;
    this.vars = ['$'];
    this.rangeDepth = 0;
    const body = this.list(owner, open);
    if (body.terminator.kind !== 'end') {
      throw this.error(body.terminator.pos, `unexpected {{else}} in ${owner} clause`);
    }
    this.vars = savedVars;
    this.rangeDepth = savedRange;
    const existing = this.defines.get(name);
    if (existing && !isEmptyList(existing) && !isEmptyList(body.nodes)) {
      throw this.error(open, `template: multiple definition of template "${name}"`);
    }
    if (!existing || isEmptyList(existing)) this.defines.set(name, body.nodes);
  }

  // --- pipelines ---

  private pipeline(context: string, end: 'rightDelim' | 'rightParen', open: number): Pipeline {
    const start = this.peek();
    const decl: VariableDecl[] = [];
    let isAssign = false;
    for (;;) {
      const v = this.peek();
      if (v.kind !== 'variable') break;
      const after = this.peekAt(1);
      if (after.kind === 'declare' || after.kind === 'assign') {
        this.skip(2);
        decl.push({ pos: v.pos, name: v.val });
        isAssign = after.kind === 'assign';
        for (const d of decl) {
          if (!isAssign) this.vars.push(d.name);
          else if (!this.vars.includes(d.name)) throw this.error(d.pos, `undefined variable "${d.name}"`);
        }
        break;
      }
      if (after.kind === 'char' && after.val === ',') {
        if (context !== 'range' || decl.length > 0) throw this.error(v.pos, `too many declarations in ${context}`);
        this.skip(2);
        decl.push({ pos: v.pos, name: v.val });
        const nx = this.peek();
        if (nx.kind !== 'variable') throw this.error(nx.pos, 'range can only initialize variables');
        continue;
      }
      if (decl.length > 0) throw this.error(after.pos, 'range can only initialize variables');
      break;
    }
    const cmds: Command[] = [];
    for (;;) {
      const tok = this.peek();
      if (tok.kind === end) {
        this.skip(1);
        break;
      }
      if (!OPERAND_START.has(tok.kind)) throw this.unexpected(tok, context);
      cmds.push(this.command());
    }
    const pipe: Pipeline = { pos: start.pos, decl, isAssign, cmds };
    this.checkPipeline(pipe, context, open);
    return pipe;
  }

  private checkPipeline(pipe: Pipeline, context: string, open: number): void {
    if (pipe.cmds.length === 0) throw this.error(open, `missing value for ${context}`);
    for (let k = 1; k < pipe.cmds.length; k++) {
      const first = pipe.cmds[k].args[0];
      switch (first.kind) {
        case 'bool':
        case 'dot':
        case 'nil':
        case 'number':
        case 'string':
          throw this.error(pipe.cmds[k].pos, `non executable command in pipeline stage ${k + 1}`);
      }
    }
  }

  private command(): Command {
    const pos = this.peek().pos;
    const args: Operand[] = [];
    for (;;) {
      const op = this.operand();
      if (op) args.push(op);
      const tok = this.peek();
      if (tok.kind === 'rightDelim' || tok.kind === 'rightParen') break;
      if (tok.kind === 'pipe') {
        this.skip(1);
        break;
      }
      // Operands are separated by spaces; anything else glued to an operand is an error.
      if (op && tok.spaced) continue;
      throw this.unexpected(tok, 'operand');
    }
    if (args.length === 0) throw this.error(pos, 'empty command');
    return { pos, args };
  }

  private operand(): Operand | null {
    const node = this.term();
    if (!node) return null;
    // Fields and variables have taken their own `.x.y` already; this is `(pipeline).x.y`.
    const tok = this.peek();
    if (tok.kind !== 'field' || tok.spaced) return node;
    switch (node.kind) {
      case 'bool':
      case 'string':
      case 'number':
      case 'nil':
      case 'dot':
        throw this.error(tok.pos, `unexpected . after term ${goQuote(this.source.text.slice(node.pos, tok.pos))}`);
      default:
        return { kind: 'chain', pos: node.pos, node, idents: this.fieldChain([]) };
    }
  }

  /** Appends the field names that follow without a space: `.a.b` after `$x` or `.x`. */
  private fieldChain(idents: string[]): string[] {
    for (;;) {
      const tok = this.peek();
      if (tok.kind !== 'field' || tok.spaced) return idents;
      idents.push(tok.val.slice(1));
      this.skip(1);
    }
  }

  private term(): Operand | null {
    const tok = this.peek();
    switch (tok.kind) {
      case 'identifier':
        this.skip(1);
        if (!this.isFunction(tok.val)) throw this.error(tok.pos, `function "${tok.val}" not defined`);
        return { kind: 'identifier', pos: tok.pos, name: tok.val };
      case 'dot':
        this.skip(1);
        return { kind: 'dot', pos: tok.pos };
      case 'nil':
        this.skip(1);
        return { kind: 'nil', pos: tok.pos };
      case 'variable':
        this.skip(1);
        if (!this.vars.includes(tok.val)) throw this.error(tok.pos, `undefined variable "${tok.val}"`);
        return { kind: 'variable', pos: tok.pos, name: tok.val, idents: this.fieldChain([]) };
      case 'field':
        this.skip(1);
        return { kind: 'field', pos: tok.pos, idents: this.fieldChain([tok.val.slice(1)]) };
      case 'bool':
        this.skip(1);
        return { kind: 'bool', pos: tok.pos, value: tok.val === 'true' };
      case 'number':
        this.skip(1);
        return this.number(tok);
      case 'charConstant':
        this.skip(1);
        return { kind: 'number', pos: tok.pos, value: this.literal(tok, unquoteChar), text: tok.val };
      case 'string':
      case 'rawString':
        this.skip(1);
        return { kind: 'string', pos: tok.pos, value: this.unquote(tok) };
      case 'leftParen': {
        this.skip(1);
        this.enter(tok.pos, 'expression');
        const pipe = this.pipeline('parenthesized pipeline', 'rightParen', tok.pos);
        this.depth--;
        return { kind: 'pipeline', pos: tok.pos, pipe };
      }
      default:
        return null;
    }
  }

  private number(tok: Token): Operand {
    if (tok.val.endsWith('i')) throw this.error(tok.pos, `complex numbers are not supported: ${tok.val}`);
    const lit = parseNumberLiteral(tok.val);
    if (!lit) throw this.error(tok.pos, `illegal number syntax: "${tok.val}"`);
    return { kind: 'number', pos: tok.pos, value: lit.value, text: tok.val };
  }

  private unquote(tok: Token): string {
    return this.literal(tok, unquoteString);
  }

  private literal<T>(tok: Token, read: (raw: string) => T): T {
    try {
      return read(tok.val);
    } catch (e) {
      if (e instanceof LiteralError) throw this.error(tok.pos, e.message);
      throw e;
    }
  }
}

/** Go's IsEmptyTree: only whitespace text (comments are already gone). */
function isEmptyList(nodes: readonly Node[]): boolean {
  return nodes.every((n) => n.kind === 'text' && n.text.trim() === '');
}

/** Parses a template. `isFunction` says which identifiers name functions. */
export function parse(source: SourceText, isFunction: (name: string) => boolean): ParsedTemplate {
  return new Parser(new Lexer(source.text), source, isFunction).parse();
}
