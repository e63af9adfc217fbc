/**
 * The parse tree, after Go's text/template/parse. Every node carries `pos`, the offset in the
 * source of the construct an error about it should point at: for control structures and actions
 * the `{{`, for operands their first character.
 */

import { goQuote } from './gostr';

export interface TextNode {
  readonly kind: 'text';
  readonly pos: number;
  readonly text: string;
}

/** `{{pipeline}}`: prints the pipeline's value unless the pipeline declares variables. */
export interface ActionNode {
  readonly kind: 'action';
  readonly pos: number;
  readonly pipe: Pipeline;
}

/** `if` and `with` differ only in whether the body sees the value as dot. */
export interface BranchNode {
  readonly kind: 'if' | 'with';
  readonly pos: number;
  readonly pipe: Pipeline;
  readonly list: readonly Node[];
  readonly elseList: readonly Node[] | null;
}

export interface RangeNode {
  readonly kind: 'range';
  readonly pos: number;
  readonly pipe: Pipeline;
  readonly list: readonly Node[];
  readonly elseList: readonly Node[] | null;
}

/** `{{template "name" pipeline}}`, also what `{{block}}` leaves in place. */
export interface TemplateNode {
  readonly kind: 'template';
  readonly pos: number;
  readonly name: string;
  readonly pipe: Pipeline | null;
}

export interface LoopControlNode {
  readonly kind: 'break' | 'continue';
  readonly pos: number;
}

export type Node = TextNode | ActionNode | BranchNode | RangeNode | TemplateNode | LoopControlNode;

export interface VariableDecl {
  readonly pos: number;
  readonly name: string;
}

/** `$x := a | b c`: commands run left to right, each receiving the previous value as its last argument. */
export interface Pipeline {
  readonly pos: number;
  readonly decl: readonly VariableDecl[];
  /** `=` rather than `:=`: the variables already exist in an enclosing scope. */
  readonly isAssign: boolean;
  readonly cmds: readonly Command[];
}

export interface Command {
  readonly pos: number;
  /** Never empty; the first operand decides what the command is (function call, field, value). */
  readonly args: readonly Operand[];
}

/** `.A.B`: fields of dot. */
export interface FieldOperand {
  readonly kind: 'field';
  readonly pos: number;
  readonly idents: readonly string[];
}

/** `$x.A.B` (`idents` empty for plain `$x`). */
export interface VariableOperand {
  readonly kind: 'variable';
  readonly pos: number;
  readonly name: string;
  readonly idents: readonly string[];
}

/** `(pipeline).A.B` */
export interface ChainOperand {
  readonly kind: 'chain';
  readonly pos: number;
  readonly node: Operand;
  readonly idents: readonly string[];
}

export interface IdentifierOperand {
  readonly kind: 'identifier';
  readonly pos: number;
  readonly name: string;
}

export interface PipelineOperand {
  readonly kind: 'pipeline';
  readonly pos: number;
  readonly pipe: Pipeline;
}

export interface DotOperand {
  readonly kind: 'dot';
  readonly pos: number;
}

export interface NilOperand {
  readonly kind: 'nil';
  readonly pos: number;
}

export interface BoolOperand {
  readonly kind: 'bool';
  readonly pos: number;
  readonly value: boolean;
}

export interface NumberOperand {
  readonly kind: 'number';
  readonly pos: number;
  readonly value: number;
  /** The literal as written, for messages. */
  readonly text: string;
}

export interface StringOperand {
  readonly kind: 'string';
  readonly pos: number;
  readonly value: string;
}

export type Operand =
  | FieldOperand
  | VariableOperand
  | ChainOperand
  | IdentifierOperand
  | PipelineOperand
  | DotOperand
  | NilOperand
  | BoolOperand
  | NumberOperand
  | StringOperand;

export interface ParsedTemplate {
  readonly root: readonly Node[];
  /** Templates from `{{define}}` and `{{block}}`. */
  readonly defines: ReadonlyMap<string, readonly Node[]>;
}

export function assertNever(x: never): never {
  throw new Error(`unexpected node ${JSON.stringify(x)}`);
}

function fields(idents: readonly string[]): string {
  return idents.map((f) => '.' + f).join('');
}

/** Go-like source text of an operand, for messages such as `can't give argument to non-function`. */
export function operandText(op: Operand): string {
  switch (op.kind) {
    case 'field':
      return fields(op.idents);
    case 'variable':
      return op.name + fields(op.idents);
    case 'chain':
      return operandText(op.node) + fields(op.idents);
    case 'identifier':
      return op.name;
    case 'pipeline':
      return '(' + pipelineText(op.pipe) + ')';
    case 'dot':
      return '.';
    case 'nil':
      return 'nil';
    case 'bool':
      return String(op.value);
    case 'number':
      return op.text;
    case 'string':
      return goQuote(op.value);
    default:
      return assertNever(op);
  }
}

export function pipelineText(pipe: Pipeline): string {
  const decl = pipe.decl.length ? pipe.decl.map((d) => d.name).join(', ') + (pipe.isAssign ? ' = ' : ' := ') : '';
  return decl + pipe.cmds.map((c) => c.args.map(operandText).join(' ')).join(' | ');
}
