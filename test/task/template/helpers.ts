import { TemplateError } from '../../../src/errors';
import { renderTemplate, type TemplateOptions } from '../../../src/task/template';

/** The rendered text; fails the test if rendering produced warnings it did not expect. */
export function render(source: string, data: unknown = {}, options?: TemplateOptions): string {
  const result = renderTemplate(source, data, options);
  if (result.warnings.length > 0) throw new Error(`unexpected warnings: ${JSON.stringify(result.warnings)}`);
  return result.text;
}

/** The error a render throws, reduced to what tests compare: `line:col: reason`. */
export function renderError(source: string, data: unknown = {}, options?: TemplateOptions): string {
  try {
    renderTemplate(source, data, options);
  } catch (e) {
    if (e instanceof TemplateError) return `${e.line}:${e.col}: ${e.reason}`;
    throw e;
  }
  throw new Error(`expected ${JSON.stringify(source)} to fail`);
}

/** A fixed clock: Friday 2026-11-27 08:15:00.120 UTC. */
export const NOW = new Date(Date.UTC(2026, 10, 27, 8, 15, 0, 120));
export const now = (): Date => NOW;
