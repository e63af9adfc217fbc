/**
 * Every function a template may call: the text/template builtins and the Sprig subset Kiln
 * supports. Deliberately absent: env, expandenv and anything else that would read the host.
 */

import { BUILTINS } from './builtins';
import type { FuncSpec } from './runtime';
import { SPRIG_DATA } from './sprig-data';
import { SPRIG_STRINGS } from './sprig-strings';

/** The three sets do not overlap. */
export const FUNCTIONS: ReadonlyMap<string, FuncSpec> = new Map<string, FuncSpec>([
  ...SPRIG_STRINGS,
  ...SPRIG_DATA,
  ...BUILTINS,
]);
