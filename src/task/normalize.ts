import {
  TASK_VERSIONS,
  compareVersions,
  type SecretSource,
  type Task,
  type TaskNetwork,
  type TaskSecret,
  type TaskStep,
  type TaskStepCommon,
  type TaskVersion,
  type TaskVolume,
  type VolumeMount,
} from '../domain/task';
import { error, warning, type Issue } from './issues';

/**
 * The semantic checks the schema cannot express, and the one place where a step's kind is
 * decided. Runs only on data that passed the schema check, so shapes and types are known.
 */

type Raw = Record<string, unknown>;

export const IMMEDIATE = '-';
export const ROOT_STEP_ID = 'acb_root';
export const DEFAULT_STEP_TIMEOUT = 600;
const V12_KEYS = ['finally', 'if', 'allowExitCodes'] as const;
const ENV_ENTRY = /^[^=\s]+=/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export interface NormalizeResult {
  /** Built even when there are errors (steps with an undecidable kind left out); see `issues`. */
  task: Task;
  issues: Issue[];
}

export function normalizeTask(raw: Raw, strict: boolean): NormalizeResult {
  const issues: Issue[] = [];
  const version = checkVersion(raw.version, issues);
  const env = checkEnv(raw.env as string[] | undefined, ['env'], issues);
  if (raw.totalTimeout !== undefined) {
    issues.push(warning(['totalTimeout'], 'is ignored: the run timeout is a run setting (kiln run --timeout)', true));
  }
  const stepTimeout = typeof raw.stepTimeout === 'number' && raw.stepTimeout > 0 ? raw.stepTimeout : DEFAULT_STEP_TIMEOUT;
  const secrets = checkSecrets((raw.secrets as Raw[] | undefined) ?? [], issues);
  const networks = checkNetworks((raw.networks as Raw[] | undefined) ?? [], issues);
  const volumes = checkVolumes((raw.volumes as Raw[] | undefined) ?? [], issues);
  const volumeNames = new Set(volumes.map((v) => v.name));
  const steps = checkSteps((raw.steps as Raw[]) ?? [], version, strict, volumeNames, issues);

  const task: Task = {
    version,
    stepTimeout,
    ...(raw.workingDirectory !== undefined ? { workingDirectory: raw.workingDirectory as string } : {}),
    env,
    secrets,
    networks,
    volumes,
    steps,
  };
  return { task, issues };
}

function checkVersion(value: unknown, issues: Issue[]): TaskVersion {
  if (value === undefined) return 'v1.0.0';
  if ((TASK_VERSIONS as readonly unknown[]).includes(value)) return value as TaskVersion;
  issues.push(error(['version'], `unsupported version "${String(value)}" (expected one of ${TASK_VERSIONS.join(', ')})`));
  return 'v1.0.0';
}

function checkEnv(entries: readonly string[] | undefined, path: (string | number)[], issues: Issue[]): string[] {
  const out: string[] = [];
  (entries ?? []).forEach((entry, i) => {
    if (ENV_ENTRY.test(entry)) out.push(entry);
    else issues.push(error([...path, i], `"${entry}" must have the form KEY=VALUE`));
  });
  return out;
}

function checkSecrets(raw: readonly Raw[], issues: Issue[]): TaskSecret[] {
  const seen = new Set<string>();
  const out: TaskSecret[] = [];
  raw.forEach((s, i) => {
    const id = s.id as string;
    if (seen.has(id)) issues.push(error(['secrets', i, 'id'], `duplicate secret id "${id}"`));
    seen.add(id);
    const sources = (['env', 'file', 'keyvault'] as const).filter((k) => s[k] !== undefined);
    if (sources.length > 1) {
      issues.push(error(['secrets', i], `secret "${id}" has more than one source (${sources.join(', ')}): keep one`));
      return;
    }
    if (s.clientID !== undefined && s.keyvault === undefined) {
      issues.push(error(['secrets', i, 'clientID'], 'is only used with keyvault', true));
    }
    let source: SecretSource = { kind: 'run' };
    if (s.env !== undefined) source = { kind: 'env', name: s.env as string };
    else if (s.file !== undefined) source = { kind: 'file', path: s.file as string };
    else if (s.keyvault !== undefined) {
      source = { kind: 'keyvault', url: s.keyvault as string, ...(s.clientID ? { clientId: s.clientID as string } : {}) };
    }
    out.push({ id, source });
  });
  return out;
}

function checkNetworks(raw: readonly Raw[], issues: Issue[]): TaskNetwork[] {
  const seen = new Set<string>();
  let defaults = 0;
  return raw.map((n, i) => {
    const name = n.name as string;
    if (seen.has(name)) issues.push(error(['networks', i, 'name'], `duplicate network "${name}"`));
    seen.add(name);
    if (n.isDefault === true && ++defaults > 1) {
      issues.push(error(['networks', i, 'isDefault'], 'only one network may be the default'));
    }
    return {
      name,
      ...(n.driver !== undefined ? { driver: n.driver as string } : {}),
      ipv6: n.ipv6 === true,
      skipCreation: n.skipCreation === true,
      isDefault: n.isDefault === true,
    };
  });
}

function checkVolumes(raw: readonly Raw[], issues: Issue[]): TaskVolume[] {
  const seen = new Set<string>();
  return raw.map((v, i) => {
    const name = v.name as string;
    if (seen.has(name)) issues.push(error(['volumes', i, 'name'], `duplicate volume "${name}"`));
    seen.add(name);
    const secret = v.secret as Record<string, string>;
    for (const [file, content] of Object.entries(secret)) {
      if (!BASE64.test(content.replace(/\s+/g, '')) || content.replace(/\s+/g, '').length % 4 !== 0) {
        issues.push(error(['volumes', i, 'secret', file], `content of "${file}" is not valid base64`));
      }
    }
    return { name, secret };
  });
}

function checkSteps(
  raw: readonly Raw[],
  version: TaskVersion,
  strict: boolean,
  volumeNames: ReadonlySet<string>,
  issues: Issue[],
): TaskStep[] {
  const v12 = compareVersions(version, 'v1.2.0') >= 0;
  const earlier = new Set<string>();
  const steps: TaskStep[] = [];
  raw.forEach((s, index) => {
    const path = ['steps', index];
    const id = s.id === undefined ? `acb_step_${index}` : (s.id as string);
    if (/\s/.test(id)) issues.push(error([...path, 'id'], `"${id}" must not contain spaces`));
    else if (id === ROOT_STEP_ID) issues.push(error([...path, 'id'], `"${ROOT_STEP_ID}" is reserved`));
    else if (earlier.has(id)) issues.push(error([...path, 'id'], `duplicate step id "${id}"`));

    const kinds = (['cmd', 'build', 'push'] as const).filter((k) => s[k] !== undefined);
    if (kinds.length > 1) {
      issues.push(error(path, `a step has exactly one of cmd, build or push; this one has ${kinds.join(' and ')}`));
    } else if (kinds.length === 0) {
      issues.push(error(path, 'a step needs one of cmd, build or push'));
    }
    const when = checkWhen(s.when as string[] | undefined, id, earlier, path, issues);
    const common = commonKeys(s, index, id, when, v12, strict, volumeNames, path, issues);
    earlier.add(id);
    if (kinds.length !== 1) return;
    const kind = kinds[0];
    if (s.volumeMounts !== undefined && kind !== 'cmd') {
      issues.push(error([...path, 'volumeMounts'], 'volume mounts are only for cmd steps', true));
    }
    switch (kind) {
      case 'cmd': {
        const cmd = (s.cmd as string).trim();
        if (!cmd) issues.push(error([...path, 'cmd'], 'must not be empty'));
        else steps.push({ ...common, kind, cmd });
        break;
      }
      case 'build': {
        const build = (s.build as string).trim();
        if (!build) issues.push(error([...path, 'build'], 'must not be empty (use "." to build the workspace)'));
        else steps.push({ ...common, kind, build });
        break;
      }
      case 'push': {
        const push = s.push as string[];
        if (push.length === 0) issues.push(error([...path, 'push'], 'must list at least one image'));
        push.forEach((image, i) => {
          if (!image.trim()) issues.push(error([...path, 'push', i], 'must not be empty'));
        });
        steps.push({ ...common, kind, push: push.map((p) => p.trim()) });
        break;
      }
      default: {
        const never: never = kind;
        throw new Error(`unknown step kind ${String(never)}`);
      }
    }
  });
  return steps;
}

function checkWhen(
  when: readonly string[] | undefined,
  id: string,
  earlier: ReadonlySet<string>,
  path: (string | number)[],
  issues: Issue[],
): string[] | undefined {
  if (when === undefined) return undefined;
  const out: string[] = [];
  when.forEach((dep, i) => {
    const at = [...path, 'when', i];
    if (dep === IMMEDIATE) {
      if (when.length > 1) issues.push(error(at, `"${IMMEDIATE}" (start at once) cannot be combined with step ids`));
    } else if (dep === id) {
      issues.push(error(at, `step "${id}" cannot wait on itself`));
    } else if (!earlier.has(dep)) {
      issues.push(error(at, `"${dep}" does not exist (steps may only wait on earlier steps)`));
    } else if (out.includes(dep)) {
      issues.push(warning(at, `"${dep}" is listed twice`));
      return;
    }
    out.push(dep);
  });
  return out;
}

function commonKeys(
  s: Raw,
  index: number,
  id: string,
  when: string[] | undefined,
  v12: boolean,
  strict: boolean,
  volumeNames: ReadonlySet<string>,
  path: (string | number)[],
  issues: Issue[],
): TaskStepCommon {
  // Every step gets the same keys in the same order (absent ones undefined): one object shape
  // for all steps keeps property access fast on 1,000-step tasks.
  const out: Record<string, unknown> = {
    index,
    id,
    when,
    timeout: s.timeout,
    startDelay: s.startDelay,
    retries: s.retries,
    retryDelay: s.retryDelay,
    retryOnErrors: s.retryOnErrors,
    repeat: s.repeat,
    ignoreErrors: s.ignoreErrors,
    detach: s.detach,
    keep: s.keep,
    env: undefined,
    workingDirectory: s.workingDirectory,
    disableWorkingDirectoryOverride: s.disableWorkingDirectoryOverride,
    entryPoint: s.entryPoint,
    user: s.user,
    privileged: s.privileged,
    expose: undefined,
    ports: undefined,
    network: s.network,
    isolation: s.isolation,
    cpus: s.cpus === undefined ? undefined : String(s.cpus),
    pull: s.pull,
    cmdDownloadRetries: s.cmdDownloadRetries,
    cmdDownloadRetryDelay: s.cmdDownloadRetryDelay,
    cache: undefined,
    volumeMounts: undefined,
    finally: undefined,
    if: undefined,
    allowExitCodes: undefined,
  };
  if (s.env !== undefined) out.env = checkEnv(s.env as string[], [...path, 'env'], issues);
  for (const key of ['expose', 'ports'] as const) {
    if (s[key] !== undefined) out[key] = (s[key] as (string | number)[]).map(String);
  }
  if (s.cache !== undefined) {
    const cache = (s.cache as string).toLowerCase();
    if (cache === 'enabled' || cache === 'disabled') out.cache = cache;
    else issues.push(error([...path, 'cache'], `must be "enabled" or "disabled", not "${String(s.cache)}"`));
  }
  if (s.volumeMounts !== undefined) out.volumeMounts = checkMounts(s.volumeMounts as Raw[], volumeNames, path, issues);

  for (const key of V12_KEYS) {
    if (s[key] === undefined) continue;
    if (!v12) {
      const message = `"${key}" needs version v1.2.0; it is ignored in this file`;
      issues.push(strict ? error([...path, key], message, true) : warning([...path, key], message, true));
      continue;
    }
    if (key === 'if') {
      const enabled = checkIf(s.if as boolean | string, [...path, 'if'], issues);
      if (enabled !== undefined) out.if = enabled;
    } else {
      out[key] = s[key];
    }
  }
  return out as unknown as TaskStepCommon;
}

/** `if:` has been rendered by the template stage; what is left must be a truth value. */
function checkIf(value: boolean | string, path: (string | number)[], issues: Issue[]): boolean | undefined {
  if (typeof value === 'boolean') return value;
  const text = value.trim().toLowerCase();
  if (text === 'true') return true;
  if (text === 'false' || text === '') return false;
  issues.push(error(path, `must render to true or false, got "${value}"`));
  return undefined;
}

function checkMounts(
  mounts: readonly Raw[],
  volumeNames: ReadonlySet<string>,
  path: (string | number)[],
  issues: Issue[],
): VolumeMount[] {
  const paths = new Set<string>();
  return mounts.map((m, i) => {
    const at = [...path, 'volumeMounts', i];
    const name = m.name as string;
    const mountPath = m.mountPath as string;
    if (!volumeNames.has(name)) issues.push(error([...at, 'name'], `no volume named "${name}" in the task's volumes`));
    if (!mountPath.startsWith('/')) issues.push(error([...at, 'mountPath'], `"${mountPath}" must be an absolute path`));
    if (paths.has(mountPath)) issues.push(error([...at, 'mountPath'], `"${mountPath}" is mounted twice`));
    paths.add(mountPath);
    return { name, mountPath };
  });
}
