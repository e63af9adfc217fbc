/**
 * Typed errors. Every error Kiln raises on purpose is a KilnError with a stable `code`, the fields a
 * caller needs to act on it, and the `cause` it wraps. Anything else thrown is wrapped once by
 * `coerceError` at the boundary that catches it.
 */

export type ErrorCode =
  | 'invalid_input' // the user's input is wrong: a task file, a flag, a value
  | 'template' // the task's template failed to parse or execute
  | 'invalid_reference' // an image reference does not follow the grammar
  | 'backend' // a container engine call failed
  | 'not_found'
  | 'forbidden' // the server's policy does not allow what was asked
  | 'internal';

export class KilnError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A position in a text the user wrote; both 1-based. */
export interface Position {
  line: number;
  col: number;
}

/** One problem found in a task file, reported as `FILE:LINE:COL: path: message`. */
export interface Diagnostic extends Position {
  severity: 'error' | 'warning';
  /** The file the user wrote (the task file, or a values or alias source file). */
  file: string;
  /** Where in the task the problem is, e.g. `steps[2].when`; empty for text-level problems. */
  path: string;
  message: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  const where = d.path ? `${d.path}: ` : '';
  const prefix = d.severity === 'warning' ? 'warning: ' : '';
  return `${d.file}:${d.line}:${d.col}: ${prefix}${where}${d.message}`;
}

/** Raised when a task (or its inputs) has one or more errors; carries every diagnostic found. */
export class TaskInvalidError extends KilnError {
  readonly diagnostics: readonly Diagnostic[];

  constructor(diagnostics: readonly Diagnostic[], options?: { cause?: unknown }) {
    const errors = diagnostics.filter((d) => d.severity === 'error');
    super('invalid_input', errors.map(formatDiagnostic).join('\n') || 'invalid task', options);
    this.diagnostics = diagnostics;
  }
}

/** A template that cannot be parsed or executed; `line`/`col` point into the template text. */
export class TemplateError extends KilnError implements Position {
  readonly line: number;
  readonly col: number;
  /** The message without the position, for callers that format positions themselves. */
  readonly reason: string;

  constructor(reason: string, at: Position, options?: { cause?: unknown }) {
    super('template', `${at.line}:${at.col}: ${reason}`, options);
    this.line = at.line;
    this.col = at.col;
    this.reason = reason;
  }
}

/** An image reference that does not follow the Distribution reference grammar. */
export class InvalidReferenceError extends KilnError {
  readonly reference: string;

  constructor(reference: string, reason: string) {
    super('invalid_reference', `invalid image reference "${reference}": ${reason}`);
    this.reference = reference;
  }
}

/** The message of anything thrown (an Error's message, else its text). */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Wraps anything thrown into a KilnError, once. */
export function coerceError(thrown: unknown): KilnError {
  if (thrown instanceof KilnError) return thrown;
  if (thrown instanceof Error) return new KilnError('internal', thrown.message, { cause: thrown });
  return new KilnError('internal', String(thrown));
}
