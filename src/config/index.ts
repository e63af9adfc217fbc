/**
 * Configuration from the environment, read once at start-up. Flags override these where a
 * command has a flag for the same thing.
 */
export interface Config {
  /** Default registry login server for `$Registry` / `.Run.Registry`. */
  registry: string;
  logLevel: string;
  /** Image aliases for the first word of `cmd` steps; empty unless configured. */
  imageAliases: Readonly<Record<string, string>>;
}

export class ConfigError extends Error {}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return {
    registry: env.KILN_REGISTRY ?? '',
    logLevel: env.KILN_LOG_LEVEL ?? 'info',
    imageAliases: parseImageAliases(env.KILN_IMAGE_ALIASES),
  };
}

/** `KILN_IMAGE_ALIASES` is a JSON object of alias -> image, e.g. `{"bash": "127.0.0.1:5000/bash:5"}`. */
function parseImageAliases(text: string | undefined): Record<string, string> {
  if (!text) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ConfigError('KILN_IMAGE_ALIASES must be a JSON object of alias names to images');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed) || Object.values(parsed).some((v) => typeof v !== 'string')) {
    throw new ConfigError('KILN_IMAGE_ALIASES must be a JSON object of alias names to images');
  }
  return parsed as Record<string, string>;
}
