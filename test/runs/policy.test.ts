import type { Plan } from '../../src/domain/plan';
import { prepareText } from '../helpers/prepare';
import { confinementOf, parseMemory, policyViolations, PolicyDeniedError, checkPolicy } from '../../src/runs/policy';

async function compileTask(text: string): Promise<Plan> {
  const prepared = await prepareText('acb.yaml', text);
  if (!prepared.plan) throw new Error(prepared.diagnostics.map((d) => d.message).join('; '));
  return prepared.plan;
}

describe('the restricted policy', () => {
  it.each([
    ['a privileged step', 'steps:\n  - cmd: busybox true\n  - cmd: busybox id\n    privileged: true\n', ['steps[1].privileged: privileged steps are denied by the server\'s restricted policy']],
    ['a step on the host network', 'steps:\n  - cmd: busybox true\n    network: host\n', ["steps[0].network: the host's network is denied by the server's restricted policy"]],
    ["a step in another container's network", 'steps:\n  - cmd: busybox true\n    network: container:db\n', ["steps[0].network: joining another container's network is denied by the server's restricted policy"]],
    ['a build on the host network', 'steps:\n  - build: --network host -t x .\n', ["steps[0].build --network: the host's network is denied by the server's restricted policy"]],
    ['a task network named host', 'networks:\n  - name: host\n    skipCreation: true\nsteps:\n  - cmd: busybox true\n', ["networks[0]: the host's network is denied by the server's restricted policy"]],
  ])('refuses %s, naming the key', async (_what, text, expected) => {
    const plan = await compileTask(text);
    expect(policyViolations(plan, 'restricted').map((v) => `${v.key}: ${v.message}`)).toEqual(expected);
    expect(policyViolations(plan, 'trusted')).toEqual([]);
    expect(() => checkPolicy(plan, 'restricted')).toThrow(PolicyDeniedError);
  });

  it('allows an ordinary task', async () => {
    const plan = await compileTask('steps:\n  - build: -t x .\n  - cmd: busybox echo hi\n    network: default\n  - push: [x]\n');
    expect(policyViolations(plan, 'restricted')).toEqual([]);
  });

  it('turns the policy and limits into the confinement of step containers', () => {
    expect(confinementOf('trusted')).toEqual({ restricted: false });
    expect(confinementOf('restricted', { memoryBytes: 512 * 1024 ** 2, cpus: 1.5, pids: 256 })).toEqual({ restricted: true, memoryBytes: 512 * 1024 ** 2, nanoCpus: 1_500_000_000, pids: 256 });
  });

  it.each([
    ['512m', 512 * 1024 ** 2],
    ['2g', 2 * 1024 ** 3],
    ['2G', 2 * 1024 ** 3],
    ['10485760', 10 * 1024 ** 2],
    ['8192k', 8 * 1024 ** 2],
  ])('reads memory %s', (text, bytes) => {
    expect(parseMemory(text)).toBe(bytes);
  });

  it.each(['', '1x', '-1g', '1.5g', '1m', 'lots'])('refuses memory %p', (text) => {
    expect(() => parseMemory(text)).toThrow(/memory/);
  });
});
