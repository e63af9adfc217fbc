import type * as Yaml from 'yaml';

let loaded: typeof Yaml | undefined;

/**
 * The `yaml` package, loaded on first use: loading it takes ~55 ms, and most task files never
 * need it (js-yaml reads them; `yaml` only places diagnostics and reads anchors, see yaml.ts).
 */
export function yamlLib(): typeof Yaml {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  loaded ??= require('yaml') as typeof Yaml;
  return loaded;
}
