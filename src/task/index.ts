export { loadTask, sniffVersion, DEFAULT_MAX_TASK_BYTES, SECRET_PLACEHOLDER, type LoadTaskOptions, type LoadedTask } from './load';
export { preprocessAliases, BUILTIN_ALIASES } from './alias';
export { renderTemplate } from './template';
export { formatPath, type DataPath } from './issues';
export { readValuesFile, parseSetFlags, mergeValues } from './values';
export { makeAliasSourceLoader } from './alias-sources';
