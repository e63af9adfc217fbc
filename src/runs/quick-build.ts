import { parseImageRef } from '../domain/image-ref';

/** The file name a quick build's diagnostics are reported against. */
export const QUICK_BUILD_FILE = '<quick build>';

export interface QuickBuildOptions {
  tags: readonly string[];
  /** The Dockerfile, relative to the context. */
  file?: string;
  /** `NAME=VALUE` each. */
  buildArgs: readonly string[];
  target?: string;
  push: boolean;
  /** The run registry: a tag without a registry gets it. */
  registry?: string;
}

/**
 * The quick build as a task: build, then push what was built (unless `push` is false). Throws
 * InvalidReferenceError for a tag that is not an image reference.
 */
export function quickBuildTask(options: QuickBuildOptions): string {
  const tags = options.tags.map((tag) => withRegistry(tag, options.registry));
  const words = [...tags.flatMap((t) => ['-t', t])];
  if (options.file) words.push('-f', options.file);
  for (const arg of options.buildArgs) words.push('--build-arg', arg);
  if (options.target) words.push('--target', options.target);
  words.push('.');
  // The text goes through the template engine: keep any "{{" literal.
  const literal = (s: string): string => JSON.stringify(s).replace(/\{\{/g, '{{ "{{" }}');
  const lines = ['version: v1.0.0', 'steps:', '  - id: build', `    build: ${literal(words.map(shellQuote).join(' '))}`];
  if (options.push && tags.length > 0) lines.push('  - id: push', '    push:', ...tags.map((t) => `      - ${literal(t)}`));
  return lines.join('\n') + '\n';
}

/** A tag without a registry gets the run registry, as ACR does. */
function withRegistry(tag: string, registry: string | undefined): string {
  if (!registry) return tag;
  const first = tag.split('/')[0];
  const hasRegistry = tag.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (hasRegistry) return tag;
  parseImageRef(tag); // reject a bad reference here, with the tag as the user wrote it
  return `${registry}/${tag}`;
}

function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'"'"'`)}'`;
}
