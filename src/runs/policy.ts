import type { StepConfinement } from '../backend/types';
import type { Plan } from '../domain/plan';
import { KilnError } from '../errors';

/**
 * What a task may ask of the host. The Docker socket is root on the host (RELIABILITY.md rule 10),
 * so a shared service confines steps:
 * - `trusted`: what ACR task files may do (privileged steps, the host's network, the Docker
 *   socket when the worker offers it). `kiln run` on one's own machine uses it.
 * - `restricted`: none of those; step containers drop every capability and may not gain
 *   privileges. `kiln serve` uses it unless the server says otherwise; an admin may mark a saved
 *   task `trusted`.
 * Resource limits (memory, CPUs, processes per step) apply under either policy.
 */

export const POLICIES = ['trusted', 'restricted'] as const;
export type Policy = (typeof POLICIES)[number];

/** Per-step limits, as the API and the CLI take them. */
export interface StepLimits {
  /** Bytes of memory per step (no swap). */
  memoryBytes?: number;
  /** CPUs per step, e.g. 1.5. */
  cpus?: number;
  /** Processes per step container. */
  pids?: number;
}

/** One thing a task asks that the policy refuses, with the task key that asks it. */
export interface PolicyViolation {
  /** `steps[2].privileged`, `networks[0].driver`... */
  key: string;
  message: string;
}

/** The task asks for something its policy refuses; `violations` names each key. */
export class PolicyDeniedError extends KilnError {
  constructor(readonly violations: readonly PolicyViolation[]) {
    super('forbidden', violations.map((v) => `${v.key}: ${v.message}`).join('; '));
  }
}

const DENIED = "denied by the server's restricted policy";

/** What `plan` asks that `policy` refuses; empty for `trusted`. */
export function policyViolations(plan: Plan, policy: Policy): PolicyViolation[] {
  if (policy === 'trusted') return [];
  const found: PolicyViolation[] = [];
  const network = (value: string | undefined, key: string): void => {
    if (value === 'host') found.push({ key, message: `the host's network is ${DENIED}` });
    else if (value?.startsWith('container:')) found.push({ key, message: `joining another container's network is ${DENIED}` });
  };
  plan.networks.forEach((n, i) => {
    if (n.name === 'host' || n.driver === 'host') found.push({ key: `networks[${i}]`, message: `the host's network is ${DENIED}` });
  });
  for (const step of plan.steps) {
    const at = `steps[${step.index}]`;
    if (step.kind === 'cmd') {
      if (step.privileged) found.push({ key: `${at}.privileged`, message: `privileged steps are ${DENIED}` });
      network(step.network, `${at}.network`);
    } else if (step.kind === 'build') {
      network(step.network, `${at}.build --network`);
    }
  }
  return found;
}

/** Throws PolicyDeniedError when `plan` asks what `policy` refuses. */
export function checkPolicy(plan: Plan, policy: Policy): void {
  const violations = policyViolations(plan, policy);
  if (violations.length > 0) throw new PolicyDeniedError(violations);
}

/** How the backend confines a run's steps under `policy` and `limits`. */
export function confinementOf(policy: Policy, limits: StepLimits = {}): StepConfinement {
  const confinement: StepConfinement = { restricted: policy === 'restricted' };
  if (limits.memoryBytes !== undefined) confinement.memoryBytes = limits.memoryBytes;
  if (limits.cpus !== undefined) confinement.nanoCpus = Math.round(limits.cpus * 1e9);
  if (limits.pids !== undefined) confinement.pids = limits.pids;
  return confinement;
}

const UNITS: Readonly<Record<string, number>> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** Docker's memory notation (`512m`, `2g`, `1048576`) in bytes; at least 6 MiB (Docker's floor). */
export function parseMemory(text: string): number {
  const m = /^(\d{1,12})([bkmg]?)$/i.exec(text.trim());
  if (!m) throw new KilnError('invalid_input', `memory "${text}" is not a size like 512m or 2g`);
  const bytes = Number(m[1]) * (UNITS[m[2].toLowerCase()] ?? 1);
  if (bytes < 6 * 1024 ** 2) throw new KilnError('invalid_input', `memory "${text}" is below Docker's 6 MiB minimum`);
  return bytes;
}
