/**
 * The contract between the executor and the functions it calls. Functions never see template
 * positions: they throw FuncError (reported as `error calling NAME: ...` at the call) or
 * LimitError (reported as is), and the executor turns either into a positioned TemplateError.
 */

import type { GoMap, Missing } from './values';

/** A function failed on its arguments, like a Go template function returning an error. */
export class FuncError extends Error {
  override readonly name = 'FuncError';
}

/** A resource cap was reached (output size, steps, time); never wrapped in `error calling`. */
export class LimitError extends Error {
  override readonly name = 'LimitError';
}

/**
 * A string builder that refuses to grow past `limit` UTF-16 units. Every value a function
 * formats goes through one, so a cyclic or exponentially shared structure fails fast instead of
 * exhausting memory. (UTF-16 units never exceed UTF-8 bytes, so the limit is never stricter
 * than the output cap it mirrors.)
 */
export class Sink {
  private readonly parts: string[] = [];
  private size = 0;

  constructor(private readonly limit: number) {}

  get length(): number {
    return this.size;
  }

  write(s: string): void {
    this.reserve(s.length);
    this.parts.push(s);
  }

  repeat(ch: string, count: number): void {
    if (count <= 0) return;
    this.reserve(count * ch.length);
    this.parts.push(ch.repeat(count));
  }

  toString(): string {
    return this.parts.join('');
  }

  private reserve(n: number): void {
    this.size += n;
    if (this.size > this.limit) throw new LimitError(`value exceeds the output limit of ${this.limit} bytes`);
  }
}

/** What a function may ask of the executor. */
export interface FuncContext {
  /** The output cap; no single value may be longer. */
  readonly maxBytes: number;
  now(): Date;
  /** Counts work that is not a node evaluation (e.g. the elements `until` creates), before doing it. */
  chargeSteps(n: number): void;
  /** Throws LimitError if a value of `n` units would exceed the output cap; call before allocating. */
  ensureSize(n: number): void;
  /** The value of a lookup of `key` that found nothing; reported if it is ever used. */
  missing(key: string): Missing;
  newSink(): Sink;
  /** Runs backtracking-prone work (regular expressions) under the render's time budget. */
  guarded<T>(work: () => T): T;
}

/**
 * How the executor converts an argument before the call, mirroring Go's conversion to the
 * parameter type. A nil argument becomes the zero value for string/int/float/bool (Go would
 * refuse it; we accept it because a missing key is reported on its own, as a warning).
 */
export type ParamType = 'any' | 'string' | 'int' | 'float' | 'bool' | 'map' | 'time';

export type ParamValue<T extends ParamType> = T extends 'string'
  ? string
  : T extends 'int' | 'float'
    ? number
    : T extends 'bool'
      ? boolean
      : T extends 'map'
        ? GoMap | null
        : T extends 'time'
          ? Date
          : unknown;

export type ParamValues<P extends readonly ParamType[]> = { [K in keyof P]: P[K] extends ParamType ? ParamValue<P[K]> : never };

export interface FuncSpec {
  readonly params: readonly ParamType[];
  /** Type of the arguments after `params`, for a variadic function. */
  readonly variadic?: ParamType;
  /** `and`/`or`: the executor evaluates arguments one by one and stops at the deciding one. */
  readonly shortCircuit?: 'and' | 'or';
  /**
   * The function tests its arguments rather than using them (`default`, `empty`, `eq`...): a
   * missing key passed to it is not reported, and reaches it as the Missing itself for `any`
   * parameters, so that a function returning an argument passes the Missing on.
   */
  readonly tolerant?: boolean;
  /** Receives arguments already converted to `params` / `variadic`. */
  readonly call: (args: unknown[], ctx: FuncContext) => unknown;
}

/** A function with a fixed parameter list. */
export function fixed<const P extends readonly ParamType[]>(
  params: P,
  fn: (args: ParamValues<P>, ctx: FuncContext) => unknown,
): FuncSpec {
  // The executor converts every argument to its declared type before `call`.
  return { params, call: (args, ctx) => fn(args as unknown as ParamValues<P>, ctx) };
}

/** A function with fixed leading parameters and any number of trailing ones of type `rest`. */
export function variadic<const P extends readonly ParamType[], const R extends ParamType>(
  params: P,
  rest: R,
  fn: (args: ParamValues<P>, more: ParamValue<R>[], ctx: FuncContext) => unknown,
): FuncSpec {
  return {
    params,
    variadic: rest,
    call: (args, ctx) =>
      fn(args.slice(0, params.length) as unknown as ParamValues<P>, args.slice(params.length) as ParamValue<R>[], ctx),
  };
}

/** Marks a function as testing rather than using its arguments (see FuncSpec.tolerant). */
export function tolerant(spec: FuncSpec): FuncSpec {
  return { ...spec, tolerant: true };
}
