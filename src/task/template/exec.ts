/**
 * The evaluator: walks the parse tree after Go's text/template/exec.go. Output is collected as
 * chunks and joined once. Variables live on one stack, as in Go: a block remembers the stack
 * height on entry and truncates back to it on exit, and `$x = v` updates the nearest `$x`.
 *
 * Resource bounds, each an error rather than a hang or an out-of-memory:
 * - steps: every node evaluated, range iteration and function call counts one (plus what
 *   functions charge, e.g. the elements `until` creates), up to `maxSteps`;
 * - output: at most `maxOutputBytes` bytes, and no single value longer than that;
 * - work: the strings functions return may total at most WORK_FACTOR times the output cap,
 *   so a loop that keeps copying a large string stops early;
 * - time: regular expressions share a time budget (JavaScript's engine backtracks);
 * - depth: nested template calls stop at MAX_TEMPLATE_DEPTH.
 */

import { createContext, Script, type Context } from 'node:vm';
import type { TemplateError } from '../../errors';
import type { OffsetMap } from '../source-map';
import {
  assertNever,
  operandText,
  type ChainOperand,
  type FieldOperand,
  type IdentifierOperand,
  type Node,
  type Operand,
  type ParsedTemplate,
  type Pipeline,
  type RangeNode,
  type VariableOperand,
} from './ast';
import { FUNCTIONS } from './funcs';
import { formatValue } from './printf';
import { FuncError, LimitError, Sink, type FuncContext, type FuncSpec, type ParamType } from './runtime';
import type { SourceText } from './source';
import { Missing, getEntry, importData, isInt, isMap, isNil, newMap, sortedKeys, truth, typeName } from './values';

export interface ExecOptions {
  readonly strict: boolean;
  readonly maxOutputBytes: number;
  readonly maxSteps: number;
  readonly now: () => Date;
  /** Records where each piece of output came from: text is copied, action output generated. */
  readonly map: OffsetMap | null;
}

/** A warning at an offset in the source; the caller turns offsets into lines and columns. */
export interface ExecWarning {
  readonly pos: number;
  readonly message: string;
}

export interface ExecResult {
  readonly text: string;
  readonly warnings: readonly ExecWarning[];
}

const MAX_TEMPLATE_DEPTH = 100;
const WORK_FACTOR = 32;
const MIN_WORK_BYTES = 1 << 20;
const REGEX_BUDGET_MS = 500;

/** The absence of a piped-in value (distinct from a piped-in nil). */
const NO_FINAL: unique symbol = Symbol('no final value');
/** The value piped into a command from the previous one, or NO_FINAL for the first command. */
type Final = unknown;

/** What a walked node asks of the enclosing range. */
type Flow = 'normal' | 'break' | 'continue';

interface Variable {
  readonly name: string;
  value: unknown;
}

/**
 * A vm context whose only global runs the current piece of guarded work: `runInContext` with a
 * timeout interrupts even a regular expression stuck in catastrophic backtracking.
 */
interface Sandbox {
  readonly context: Context;
  readonly script: Script;
  work: (() => void) | null;
}

let sandbox: Sandbox | null = null;

function runWithTimeout(work: () => void, timeoutMs: number): void {
  if (!sandbox) {
    const box: Sandbox = {
      context: createContext(Object.create(null)),
      script: new Script('run()'),
      work: null,
    };
    box.context.run = () => box.work?.();
    sandbox = box;
  }
  sandbox.work = work;
  try {
    sandbox.script.runInContext(sandbox.context, { timeout: Math.max(1, Math.floor(timeoutMs)) });
  } finally {
    sandbox.work = null;
  }
}

/** The timeout error may come from the vm realm, so it is recognised by its code, not its class. */
function isTimeout(e: unknown): boolean {
  return typeof e === 'object' && e !== null && 'code' in e && e.code === 'ERR_SCRIPT_EXECUTION_TIMEOUT';
}

export class Executor implements FuncContext {
  readonly maxBytes: number;
  private readonly chunks: string[] = [];
  private outBytes = 0;
  private vars: Variable[] = [];
  private steps = 0;
  private workBytes = 0;
  private readonly workLimit: number;
  private templateDepth = 0;
  /** The `{{` of the action being evaluated: where a missing key is reported. */
  private actionPos = 0;
  private regexMs = 0;
  private readonly warnings = new Map<string, ExecWarning>();

  constructor(
    private readonly tmpl: ParsedTemplate,
    private readonly source: SourceText,
    private readonly opts: ExecOptions,
  ) {
    this.maxBytes = opts.maxOutputBytes;
    this.workLimit = Math.max(MIN_WORK_BYTES, WORK_FACTOR * opts.maxOutputBytes);
  }

  run(data: unknown): ExecResult {
    let root: unknown;
    try {
      root = importData(data);
    } catch (e) {
      if (e instanceof RangeError) throw this.error(0, e.message);
      throw e;
    }
    // No data behaves as an empty map, so `.Values` reports a missing key rather than a nil pointer.
    const dot = isNil(root) ? newMap() : root;
    this.vars = [{ name: '$', value: dot }];
    this.walkList(dot, this.tmpl.root);
    const warnings = [...this.warnings.values()].sort((a, b) => a.pos - b.pos);
    return { text: this.chunks.join(''), warnings };
  }

  // --- FuncContext ---

  now(): Date {
    return new Date(this.opts.now().getTime());
  }

  chargeSteps(n: number): void {
    this.steps += n;
    if (this.steps > this.opts.maxSteps) throw new LimitError(this.stepsMessage());
  }

  ensureSize(n: number): void {
    if (n > this.maxBytes) throw new LimitError(`value exceeds the output limit of ${this.maxBytes} bytes`);
  }

  missing(key: string): Missing {
    return new Missing(this.actionPos, `map has no entry for key "${key}"`);
  }

  newSink(): Sink {
    return new Sink(this.maxBytes);
  }

  guarded<T>(work: () => T): T {
    const remaining = REGEX_BUDGET_MS - this.regexMs;
    const budgetMessage = `regular expressions took more than ${REGEX_BUDGET_MS} ms (catastrophic backtracking?)`;
    if (remaining <= 0) throw new LimitError(budgetMessage);
    const box: { value?: T } = {};
    const started = Date.now();
    try {
      runWithTimeout(() => {
        box.value = work();
      }, remaining);
    } catch (e) {
      if (isTimeout(e)) throw new LimitError(budgetMessage);
      throw e;
    } finally {
      this.regexMs += Date.now() - started;
    }
    return box.value as T;
  }

  // --- bookkeeping ---

  private error(pos: number, reason: string): TemplateError {
    return this.source.error(pos, reason);
  }

  private stepsMessage(): string {
    return `template evaluation exceeds the limit of ${this.opts.maxSteps} steps`;
  }

  private tick(pos: number): void {
    if (++this.steps > this.opts.maxSteps) throw this.error(pos, this.stepsMessage());
  }

  /** A missing key was used: a warning (once per place), or an error in strict mode. */
  private reportMissing(m: Missing): void {
    if (this.opts.strict) throw this.error(m.pos, m.message);
    this.warnings.set(`${m.pos}:${m.message}`, { pos: m.pos, message: m.message });
  }

  private write(s: string, pos: number): void {
    if (s.length === 0) return;
    this.outBytes += Buffer.byteLength(s, 'utf8');
    if (this.outBytes > this.maxBytes) throw this.error(pos, `template output exceeds the limit of ${this.maxBytes} bytes`);
    this.chunks.push(s);
  }

  /** Positions what a function or formatter threw; anything else is a bug and passes through. */
  private rethrow(e: unknown, pos: number, fn: string | null): never {
    if (e instanceof FuncError) throw this.error(pos, fn === null ? e.message : `error calling ${fn}: ${e.message}`);
    if (e instanceof LimitError) throw this.error(pos, e.message);
    throw e;
  }

  private charge(result: unknown, pos: number): void {
    if (typeof result !== 'string') return;
    if (result.length > this.maxBytes) throw this.error(pos, `value exceeds the output limit of ${this.maxBytes} bytes`);
    this.workBytes += result.length;
    if (this.workBytes > this.workLimit) {
      throw this.error(pos, `template builds more than ${this.workLimit} bytes of intermediate strings`);
    }
  }

  // --- variables ---

  private lookup(name: string, pos: number): Variable {
    for (let k = this.vars.length - 1; k >= 0; k--) if (this.vars[k].name === name) return this.vars[k];
    throw this.error(pos, `undefined variable: ${name}`);
  }

  // --- walking ---

  private walkList(dot: unknown, nodes: readonly Node[]): Flow {
    for (const node of nodes) {
      const flow = this.walk(dot, node);
      if (flow !== 'normal') return flow;
    }
    return 'normal';
  }

  private walk(dot: unknown, node: Node): Flow {
    this.tick(node.pos);
    if (node.kind !== 'text') this.actionPos = node.pos;
    switch (node.kind) {
      case 'text':
        this.write(node.text, node.pos);
        this.opts.map?.copy(node.pos, node.text.length);
        return 'normal';
      case 'action': {
        const value = this.evalPipeline(dot, node.pipe);
        if (node.pipe.decl.length === 0) this.print(value, node.pos);
        return 'normal';
      }
      case 'if':
      case 'with': {
        const mark = this.vars.length;
        const value = this.evalPipeline(dot, node.pipe);
        let flow: Flow = 'normal';
        if (truth(value)) flow = this.walkList(node.kind === 'with' ? value : dot, node.list);
        else if (node.elseList) flow = this.walkList(dot, node.elseList);
        this.vars.length = mark;
        return flow;
      }
      case 'range':
        this.walkRange(dot, node);
        return 'normal';
      case 'template':
        this.walkTemplate(dot, node.name, node.pipe, node.pos);
        return 'normal';
      case 'break':
      case 'continue':
        return node.kind;
      default:
        return assertNever(node);
    }
  }

  private print(value: unknown, pos: number): void {
    // Missing keys and nil print nothing (Go prints "<no value>" and "<nil>").
    if (value instanceof Missing) this.reportMissing(value);
    if (isNil(value)) return;
    let text: string;
    if (typeof value === 'string') text = value;
    // The common scalars skip the formatter (and its allocations); isInt covers what %v prints plainly.
    else if (isInt(value) || typeof value === 'boolean') text = String(value);
    else {
      try {
        text = formatValue(this.newSink(), value);
      } catch (e) {
        this.rethrow(e, pos, null);
      }
    }
    this.write(text, pos);
    this.opts.map?.generated(pos, text.length);
  }

  private walkRange(dot: unknown, node: RangeNode): void {
    const mark = this.vars.length;
    const value = this.evalPipeline(dot, node.pipe);
    const decl = node.pipe.decl;
    // The declared variables are the top of the stack; each iteration overwrites them.
    const top = this.vars.length;
    const iterate = (key: unknown, elem: unknown): Flow => {
      this.tick(node.pos);
      if (decl.length === 1) this.assign(decl[0].name, elem, node.pipe.isAssign, top - 1);
      else if (decl.length === 2) {
        this.assign(decl[0].name, key, node.pipe.isAssign, top - 2);
        this.assign(decl[1].name, elem, node.pipe.isAssign, top - 1);
      }
      const flow = this.walkList(elem, node.list);
      this.vars.length = top;
      return flow;
    };
    let ran = false;
    if (isInt(value)) {
      if (decl.length > 1) throw this.error(node.pos, `can't use ${value} to iterate over more than one variable`);
      for (let k = 0; k < value; k++) {
        ran = true;
        if (iterate(null, k) === 'break') break;
      }
    } else if (Array.isArray(value)) {
      for (let k = 0; k < value.length; k++) {
        ran = true;
        if (iterate(k, value[k]) === 'break') break;
      }
    } else if (isMap(value)) {
      for (const key of sortedKeys(value)) {
        ran = true;
        if (iterate(key, getEntry(value, key) ?? null) === 'break') break;
      }
    } else if (!isNil(value)) {
      let shown: string;
      try {
        shown = formatValue(this.newSink(), value);
      } catch (e) {
        this.rethrow(e, node.pos, null);
      }
      throw this.error(node.pos, `range can't iterate over ${shown}`);
    }
    if (!ran && node.elseList) this.walkList(dot, node.elseList);
    this.vars.length = mark;
  }

  /** Sets a range variable: the declared slot for `:=`, the nearest existing one for `=`. */
  private assign(name: string, value: unknown, isAssign: boolean, slot: number): void {
    if (isAssign) this.setVar(name, value, 0);
    else this.vars[slot].value = value;
  }

  private setVar(name: string, value: unknown, pos: number): void {
    this.lookup(name, pos).value = value;
  }

  private walkTemplate(dot: unknown, name: string, pipe: Pipeline | null, pos: number): void {
    const body = this.tmpl.defines.get(name);
    if (!body) throw this.error(pos, `template "${name}" not defined`);
    if (this.templateDepth >= MAX_TEMPLATE_DEPTH) {
      throw this.error(pos, `exceeded maximum template depth (${MAX_TEMPLATE_DEPTH})`);
    }
    const arg = pipe ? this.evalPipeline(dot, pipe) : null;
    const saved = this.vars;
    // No dynamic scoping: the called template sees only `$`, bound to its argument.
    this.vars = [{ name: '$', value: arg }];
    this.templateDepth++;
    this.walkList(arg, body);
    this.templateDepth--;
    this.vars = saved;
  }

  // --- evaluation ---

  private evalPipeline(dot: unknown, pipe: Pipeline): unknown {
    let value: Final = NO_FINAL;
    for (const cmd of pipe.cmds) {
      this.tick(cmd.pos);
      value = this.evalCommand(dot, cmd.args, value);
    }
    for (const d of pipe.decl) {
      if (pipe.isAssign) this.setVar(d.name, value, d.pos);
      else this.vars.push({ name: d.name, value });
    }
    return value;
  }

  private notAFunction(args: readonly Operand[], final: Final): void {
    if (args.length > 1 || final !== NO_FINAL) {
      throw this.error(args[0].pos, `can't give argument to non-function ${operandText(args[0])}`);
    }
  }

  private evalCommand(dot: unknown, args: readonly Operand[], final: Final): unknown {
    const first = args[0];
    switch (first.kind) {
      case 'field':
        return this.evalFieldChain(dot, first, first.idents, args, final);
      case 'chain':
        return this.evalChain(dot, first, args, final);
      case 'identifier':
        return this.evalFunction(dot, first, args, final);
      case 'pipeline':
        this.notAFunction(args, final);
        return this.evalPipeline(dot, first.pipe);
      case 'variable':
        return this.evalVariable(dot, first, args, final);
      case 'dot':
        this.notAFunction(args, final);
        return dot;
      case 'nil':
        this.notAFunction(args, final);
        throw this.error(first.pos, 'nil is not a command');
      case 'bool':
      case 'number':
      case 'string':
        this.notAFunction(args, final);
        return first.value;
      default:
        return assertNever(first);
    }
  }

  /** An operand used as an argument (no arguments of its own). */
  private evalArg(dot: unknown, op: Operand): unknown {
    this.tick(op.pos);
    switch (op.kind) {
      case 'dot':
        return dot;
      case 'nil':
        return null;
      case 'field':
        return this.evalFieldChain(dot, op, op.idents, [op], NO_FINAL);
      case 'variable':
        return this.evalVariable(dot, op, [op], NO_FINAL);
      case 'chain':
        return this.evalChain(dot, op, [op], NO_FINAL);
      case 'identifier':
        return this.evalFunction(dot, op, [op], NO_FINAL);
      case 'pipeline':
        return this.evalPipeline(dot, op.pipe);
      case 'bool':
      case 'number':
      case 'string':
        return op.value;
      default:
        return assertNever(op);
    }
  }

  private evalVariable(dot: unknown, op: VariableOperand, args: readonly Operand[], final: Final): unknown {
    const value = this.lookup(op.name, op.pos).value;
    if (op.idents.length === 0) {
      this.notAFunction(args, final);
      return value;
    }
    return this.evalFieldChain(value, op, op.idents, args, final);
  }

  private evalChain(dot: unknown, op: ChainOperand, args: readonly Operand[], final: Final): unknown {
    if (op.node.kind === 'nil') throw this.error(op.pos, `indirection through explicit nil in ${operandText(op)}`);
    return this.evalFieldChain(this.evalArg(dot, op.node), op, op.idents, args, final);
  }

  /** `.A.B.C` from `receiver`; only the last field may be given arguments (and then it is an error). */
  private evalFieldChain(
    receiver: unknown,
    op: FieldOperand | VariableOperand | ChainOperand,
    idents: readonly string[],
    args: readonly Operand[],
    final: Final,
  ): unknown {
    const last = idents.length - 1;
    for (let k = 0; k < last; k++) receiver = this.evalField(receiver, idents[k], op.pos, false);
    return this.evalField(receiver, idents[last], op.pos, args.length > 1 || final !== NO_FINAL);
  }

  private evalField(receiver: unknown, name: string, pos: number, hasArgs: boolean): unknown {
    // The first missing key of a chain stands for the whole chain.
    if (receiver instanceof Missing) return receiver;
    // Go refuses a field of nil; like a missing key it is empty, reported when used.
    if (isNil(receiver)) return new Missing(this.actionPos, `nil pointer evaluating interface {}.${name}`);
    if (!isMap(receiver)) throw this.error(pos, `can't evaluate field ${name} in type ${typeName(receiver)}`);
    if (hasArgs) throw this.error(pos, `${name} is not a method but has arguments`);
    const value = getEntry(receiver, name);
    return value === undefined ? new Missing(this.actionPos, `map has no entry for key "${name}"`) : value;
  }

  private evalFunction(dot: unknown, op: IdentifierOperand, args: readonly Operand[], final: Final): unknown {
    const spec = FUNCTIONS.get(op.name);
    // The parser rejects unknown names; this guards a tree built some other way.
    if (!spec) throw this.error(op.pos, `"${op.name}" is not a defined function`);
    this.tick(op.pos);
    const numIn = args.length - 1 + (final === NO_FINAL ? 0 : 1);
    const fixedCount = spec.params.length;
    if (spec.variadic !== undefined) {
      if (numIn < fixedCount) {
        throw this.error(op.pos, `wrong number of args for ${op.name}: want at least ${fixedCount} got ${numIn}`);
      }
    } else if (numIn !== fixedCount) {
      throw this.error(op.pos, `wrong number of args for ${op.name}: want ${fixedCount} got ${numIn}`);
    }
    if (spec.shortCircuit) return this.evalShortCircuit(dot, spec.shortCircuit, args, final);
    const argv: unknown[] = [];
    const tolerant = spec.tolerant === true;
    for (let k = 1; k < args.length; k++) {
      argv.push(this.convert(this.evalArg(dot, args[k]), paramType(spec, k - 1), args[k].pos, tolerant));
    }
    if (final !== NO_FINAL) argv.push(this.convert(final, paramType(spec, numIn - 1), op.pos, tolerant));
    let result: unknown;
    try {
      result = spec.call(argv, this);
    } catch (e) {
      this.rethrow(e, op.pos, op.name);
    }
    this.charge(result, op.pos);
    return result;
  }

  /** `and`/`or`: returns the first argument that decides the result, evaluating no further. */
  private evalShortCircuit(dot: unknown, kind: 'and' | 'or', args: readonly Operand[], final: Final): unknown {
    const stopOn = kind === 'or';
    let value: unknown = null;
    for (let k = 1; k < args.length; k++) {
      value = this.evalArg(dot, args[k]);
      if (truth(value) === stopOn) return value;
    }
    return final === NO_FINAL ? value : final;
  }

  /**
   * Go's conversion of an argument to the parameter type, with nil as the zero value. A missing
   * key is reported here unless the function only tests it; the function then sees nil (or, for
   * an `any` parameter, the Missing itself, so that it may hand it back).
   */
  private convert(value: unknown, type: ParamType, pos: number, tolerant: boolean): unknown {
    if (value instanceof Missing) {
      if (tolerant && type === 'any') return value;
      if (!tolerant) this.reportMissing(value);
      value = null;
    }
    switch (type) {
      case 'any':
        return value === undefined ? null : value;
      case 'string':
        if (typeof value === 'string') return value;
        if (isNil(value)) return '';
        throw this.wrongType(pos, 'string', value);
      case 'int':
        if (isInt(value)) return value;
        if (isNil(value)) return 0;
        throw this.wrongType(pos, 'int', value);
      case 'float':
        if (typeof value === 'number') return value;
        if (isNil(value)) return 0;
        throw this.wrongType(pos, 'float64', value);
      case 'bool':
        if (typeof value === 'boolean') return value;
        if (isNil(value)) return false;
        throw this.wrongType(pos, 'bool', value);
      case 'map':
        if (isMap(value)) return value;
        if (isNil(value)) return null;
        throw this.wrongType(pos, 'map[string]interface {}', value);
      case 'time':
        if (value instanceof Date) return value;
        throw this.wrongType(pos, 'time.Time', value);
      default:
        return assertNever(type);
    }
  }

  private wrongType(pos: number, expected: string, value: unknown): TemplateError {
    return this.error(pos, `wrong type for value; expected ${expected}; got ${typeName(value)}`);
  }
}

function paramType(spec: FuncSpec, k: number): ParamType {
  return k < spec.params.length ? spec.params[k] : (spec.variadic ?? 'any');
}
