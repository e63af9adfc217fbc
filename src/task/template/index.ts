/**
 * Go text/template with Sprig functions, as Kiln renders task files: `renderTemplate(source,
 * data)` lexes, parses and executes in one call. Errors are TemplateErrors with the 1-based line
 * and column in `source`. A missing map key renders empty and comes back as a warning (an error
 * when `strict`) at the `{{` of the action that looked it up, when its value is used: printed or
 * passed to a function. Only testing it (`if`, `with`, `range`, `and`/`or`/`not`, `eq`/`ne`, `default`,
 * `empty`, `coalesce`, `ternary`) is not reported, so `{{ .Values.tag | default "latest" }}` is
 * clean even in strict mode.
 */

import { TemplateError } from '../../errors';
import { OffsetMap } from '../source-map';
import { Executor } from './exec';
import { FUNCTIONS } from './funcs';
import { parse } from './parser';
import { SourceText } from './source';

export interface TemplateOptions {
  /** A missing map key / field is an error instead of rendering empty with a warning. */
  strict?: boolean;
  /** Output cap in bytes (default 4 MiB); exceeding it throws TemplateError. */
  maxOutputBytes?: number;
  /** Cap on evaluation steps (range iterations + function calls + node evaluations; default 1_000_000); exceeding it throws. */
  maxSteps?: number;
  /** Clock for `now` (default () => new Date()). */
  now?: () => Date;
  /** Also return `map`, from offsets in the rendered text back to offsets in `source`. */
  sourceMap?: boolean;
}

export interface TemplateWarning {
  line: number;
  col: number;
  message: string;
}

export interface RenderResult {
  text: string;
  warnings: TemplateWarning[];
  /**
   * With `sourceMap`: template text maps one to one to where it was written; the output of an
   * action maps as a whole to the action's `{{`.
   */
  map?: OffsetMap;
}

const DEFAULT_MAX_OUTPUT_BYTES = 4 * 1024 * 1024;
const DEFAULT_MAX_STEPS = 1_000_000;

function isStackOverflow(e: unknown): e is RangeError {
  return e instanceof RangeError && /call stack/i.test(e.message);
}

export function renderTemplate(source: string, data: unknown, options: TemplateOptions = {}): RenderResult {
  const text = new SourceText(source);
  try {
    const tree = parse(text, (name) => FUNCTIONS.has(name));
    const map = options.sourceMap ? new OffsetMap() : null;
    const result = new Executor(tree, text, {
      strict: options.strict ?? false,
      maxOutputBytes: options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES,
      maxSteps: options.maxSteps ?? DEFAULT_MAX_STEPS,
      now: options.now ?? (() => new Date()),
      map,
    }).run(data);
    const warnings = result.warnings.map((w) => ({ ...text.position(w.pos), message: w.message }));
    return map ? { text: result.text, warnings, map } : { text: result.text, warnings };
  } catch (e) {
    // Nesting is bounded in the parser and in template calls; this is the backstop.
    if (isStackOverflow(e)) throw new TemplateError('template nesting is too deep', { line: 1, col: 1 }, { cause: e });
    throw e;
  }
}
