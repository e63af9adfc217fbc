/** The pure converters of the Docker backend, table-tested without a daemon. */
import {
  authConfigFor,
  canJoinSandbox,
  confinementHostConfig,
  containerName,
  dockerConfigJson,
  joinSandbox,
  networkName,
  normalizeContextPath,
  pushTarget,
  registryConfig,
  resolveNetwork,
  runLabels,
  safeName,
  secretVolumeName,
  toBuildOptions,
  toCreateOptions,
  toPortConfig,
  workspaceContextDir,
} from '../../../src/backend/docker/convert';
import { BackendError, type RegistryLogin, type RunEnvironment, type StepConfinement } from '../../../src/backend/types';
import { buildStep, cmdStep } from './fixtures';

const DOCKER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

const env: RunEnvironment = {
  runId: 'r1',
  defaultNetwork: 'kiln-r1',
  networks: { backend: 'kiln-r1-backend' },
  workspaceVolume: 'kiln-r1-workspace',
  homeVolume: 'kiln-r1-home',
  secretVolumes: { creds: 'kiln-r1-secret-creds' },
  registryLogins: [],
  dockerSocket: false,
  confinement: { restricted: false },
};

const logins: RegistryLogin[] = [
  { registry: 'myreg.azurecr.io', username: 'u1', password: 'p1' },
  { registry: 'https://index.docker.io/v1/', username: 'hub', password: 'hubpw' },
];

describe('names', () => {
  test.each([
    // [runId, stepId, attempt]: valid, readable and distinct names
    ['r1', 'build', 1],
    ['r1', 'build', 2],
    ['r1', 'acb_step_0', 1],
    ['run with spaces/and:colons', 'step', 1],
    ['-leading-dash', 'x', 3],
    ['a'.repeat(300), 'b'.repeat(300), 1],
  ])('containerName(%s, %s, %d) is a valid Docker name', (runId, stepId, attempt) => {
    const name = containerName(runId, stepId, attempt);
    expect(name).toMatch(DOCKER_NAME);
    expect(name.length).toBeLessThanOrEqual(110);
    expect(name.startsWith('kiln-')).toBe(true);
  });

  test('container names differ for every run/step/attempt, also when sanitising makes ids look alike', () => {
    const names = [
      containerName('r1', 'a', 1),
      containerName('r1', 'a', 2),
      containerName('r1', 'b', 1),
      containerName('r2', 'a', 1),
      containerName('r1', 'a b', 1),
      containerName('r1', 'a_b', 1),
      containerName('r-a', 'b', 1),
      containerName('r', 'a-b', 1),
    ];
    expect(new Set(names).size).toBe(names.length);
    expect(containerName('r1', 'a', 1)).toBe(containerName('r1', 'a', 1));
  });

  test.each([
    // [raw, expected]: valid names stay as they are; others get sanitised plus a hash
    ['kiln-r1', 'kiln-r1'],
    ['kiln-r1-my.net_1', 'kiln-r1-my.net_1'],
  ])('safeName(%s) = %s', (raw, expected) => {
    expect(safeName(raw)).toBe(expected);
  });

  test('safeName sanitises, and two raw names that sanitise alike stay apart', () => {
    expect(safeName('kiln-r/1')).toMatch(/^kiln-r_1-[0-9a-f]{8}$/);
    expect(safeName('kiln-r/1')).not.toBe(safeName('kiln-r:1'));
    expect(safeName('_x')).toMatch(DOCKER_NAME);
  });

  test('network and volume names', () => {
    expect(networkName('r1')).toBe('kiln-r1');
    expect(networkName('r1', 'backend')).toBe('kiln-r1-backend');
    expect(secretVolumeName('r1', 'creds')).toBe('kiln-r1-secret-creds');
  });

  test('labels', () => {
    expect(runLabels('r1')).toEqual({ 'kiln.run': 'r1' });
    expect(runLabels('r1', { stepId: 's', attempt: 2 })).toEqual({ 'kiln.run': 'r1', 'kiln.step': 's', 'kiln.attempt': '2' });
  });
});

describe('registry credentials', () => {
  test.each([
    // [image, expected authconfig]
    ['myreg.azurecr.io/app:1', { username: 'u1', password: 'p1', serveraddress: 'myreg.azurecr.io' }],
    ['MyReg.AzureCR.io/app:1', { username: 'u1', password: 'p1', serveraddress: 'myreg.azurecr.io' }],
    ['busybox', { username: 'hub', password: 'hubpw', serveraddress: 'https://index.docker.io/v1/' }],
    ['docker.io/library/node:20', { username: 'hub', password: 'hubpw', serveraddress: 'https://index.docker.io/v1/' }],
    ['127.0.0.1:5000/app:1', {}], // anonymous: empty credentials, still sent
  ])('authConfigFor(%s)', (image, expected) => {
    expect(authConfigFor(image, logins)).toEqual(expected);
  });

  test('dockerConfigJson is what `docker login` writes', () => {
    const config = JSON.parse(dockerConfigJson(logins)) as { auths: Record<string, { auth: string }> };
    expect(Object.keys(config.auths)).toEqual(['myreg.azurecr.io', 'https://index.docker.io/v1/']);
    expect(Buffer.from(config.auths['myreg.azurecr.io']?.auth ?? '', 'base64').toString()).toBe('u1:p1');
    expect(JSON.parse(dockerConfigJson([]))).toEqual({ auths: {} });
  });

  test('registryConfig keys every login by server address', () => {
    expect(registryConfig(logins)).toEqual({
      'myreg.azurecr.io': { username: 'u1', password: 'p1', serveraddress: 'myreg.azurecr.io' },
      'https://index.docker.io/v1/': { username: 'hub', password: 'hubpw', serveraddress: 'https://index.docker.io/v1/' },
    });
  });
});

describe('toCreateOptions', () => {
  test('a plain step: image, args, env with HOME, workspace and home mounts, the run network with the step id as alias', () => {
    const { name, spec } = toCreateOptions(env, cmdStep({ id: 'test', args: ['go', 'test', './...'], env: ['A=1'] }), 2);
    expect(name).toBe(containerName('r1', 'test', 2));
    expect(spec).toEqual({
      Image: 'docker.io/library/busybox:latest',
      Cmd: ['go', 'test', './...'],
      Hostname: 'test',
      Env: ['A=1', 'HOME=/acb/home'],
      WorkingDir: '/workspace',
      Labels: { 'kiln.run': 'r1', 'kiln.step': 'test', 'kiln.attempt': '2' },
      AttachStdin: false,
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
      OpenStdin: false,
      HostConfig: {
        Mounts: [
          { Type: 'volume', Source: 'kiln-r1-workspace', Target: '/workspace' },
          { Type: 'volume', Source: 'kiln-r1-home', Target: '/acb/home' },
        ],
        NetworkMode: 'kiln-r1',
        Privileged: false,
        Init: true,
        AutoRemove: false,
      },
      NetworkingConfig: { EndpointsConfig: { 'kiln-r1': { Aliases: ['test'] } } },
    });
  });

  test.each([
    // [what, step overrides, env overrides, expected fragment of the spec]
    ['no args: the image CMD', { args: [] }, {}, { Cmd: undefined }],
    ['entryPoint', { entryPoint: 'sh', args: ['-c', 'true'] }, {}, { Entrypoint: ['sh'], Cmd: ['-c', 'true'] }],
    ['the step sets HOME', { env: ['HOME=/root', 'B=2'] }, {}, { Env: ['HOME=/root', 'B=2'] }],
    ['working directory kept from the image', { disableWorkingDirectoryOverride: true }, {}, { WorkingDir: undefined }],
    ['user', { user: '1000:1000' }, {}, { User: '1000:1000' }],
    ['a task network', { network: 'backend' }, {}, { HostConfig: expect.objectContaining({ NetworkMode: 'kiln-r1-backend' }) }],
    ['a network the run did not create', { network: 'shared-net' }, {}, { NetworkingConfig: { EndpointsConfig: { 'shared-net': { Aliases: ['step'] } } } }],
    ['host network: no alias, no host name', { network: 'host' }, {}, { NetworkingConfig: undefined, Hostname: undefined, HostConfig: expect.objectContaining({ NetworkMode: 'host' }) }],
    ['the default bridge: no alias, the step id as host name', {}, { defaultNetwork: 'bridge' }, { NetworkingConfig: undefined, Hostname: 'step', HostConfig: expect.objectContaining({ NetworkMode: 'bridge' }) }],
    ['an id too long for a host name', { id: 'a'.repeat(64) }, {}, { Hostname: undefined }],
    ['privileged', { privileged: true }, {}, { HostConfig: expect.objectContaining({ Privileged: true }) }],
    ['cpus', { cpus: '1.5' }, {}, { HostConfig: expect.objectContaining({ NanoCpus: 1_500_000_000 }) }],
    ['isolation', { isolation: 'default' }, {}, { HostConfig: expect.objectContaining({ Isolation: 'default' }) }],
    [
      'a secret volume, read-only',
      { volumeMounts: [{ name: 'creds', mountPath: '/run/creds' }] },
      {},
      { HostConfig: expect.objectContaining({ Mounts: expect.arrayContaining([{ Type: 'volume', Source: 'kiln-r1-secret-creds', Target: '/run/creds', ReadOnly: true }]) }) },
    ],
    [
      'the docker socket',
      {},
      { dockerSocket: true },
      { HostConfig: expect.objectContaining({ Mounts: expect.arrayContaining([{ Type: 'bind', Source: '/var/run/docker.sock', Target: '/var/run/docker.sock' }]) }) },
    ],
    [
      'ports and expose',
      { ports: ['8080:80'], expose: ['9000'] },
      {},
      {
        ExposedPorts: { '80/tcp': {}, '9000/tcp': {} },
        HostConfig: expect.objectContaining({ PortBindings: { '80/tcp': [{ HostIp: '', HostPort: '8080' }] } }),
      },
    ],
  ])('%s', (_what, overrides, envOverrides, expected) => {
    const { spec } = toCreateOptions({ ...env, ...envOverrides }, cmdStep(overrides), 1);
    for (const [key, value] of Object.entries(expected)) expect((spec as unknown as Record<string, unknown>)[key]).toEqual(value);
  });

  test.each([
    // [what, step overrides, message]
    ['an undeclared volume', { volumeMounts: [{ name: 'nope', mountPath: '/x' }] }, 'mounts volume "nope"'],
    ['bad cpus', { cpus: 'lots' }, 'invalid cpus "lots"'],
    ['bad port', { ports: ['http'] }, 'invalid port "http"'],
  ])('refuses %s', (_what, overrides, message) => {
    expect(() => toCreateOptions(env, cmdStep(overrides), 1)).toThrow(message);
    expect(() => toCreateOptions(env, cmdStep(overrides), 1)).toThrow(BackendError);
  });
});

describe('warm network sandboxes', () => {
  const bridge = { ...env, defaultNetwork: 'bridge' };

  test.each([
    // [what, step overrides, env, can join]
    ['a step on the default bridge', {}, bridge, true],
    ['a step naming the bridge', { network: 'bridge' }, env, true],
    ['a network of the run own', {}, env, false],
    ['the host network', { network: 'host' }, bridge, false],
    ['no network', { network: 'none' }, bridge, false],
    ['published ports', { ports: ['8080:80'] }, bridge, false],
    ['exposed ports', { expose: ['9000'] }, bridge, false],
  ])('%s', (_what, overrides, where, expected) => {
    expect(canJoinSandbox(toCreateOptions(where, cmdStep(overrides), 1).spec)).toBe(expected);
  });

  test('joining: the sandbox network namespace, no host name of its own, the sandbox id as a label; the rest as it was', () => {
    const { spec } = toCreateOptions(bridge, cmdStep({ id: 'build-it' }), 2);
    const joined = joinSandbox(spec, 'abc123');
    expect(joined.HostConfig.NetworkMode).toBe('container:abc123');
    expect(joined.Hostname).toBeUndefined();
    expect(joined.Labels).toEqual({ ...spec.Labels, 'kiln.netns': 'abc123' });
    expect({ ...joined, Hostname: spec.Hostname, Labels: spec.Labels, HostConfig: { ...joined.HostConfig, NetworkMode: 'bridge' } }).toEqual(spec);
    expect(spec.Hostname).toBe('build-it');
  });
});

describe('confinement', () => {
  const MiB = 1024 * 1024;
  const base = { Privileged: false, Init: true, AutoRemove: false, NetworkMode: 'kiln-r1' };
  const none = { CapDrop: undefined, SecurityOpt: undefined, Memory: undefined, MemorySwap: undefined, PidsLimit: undefined, NanoCpus: undefined };
  const locked = { CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'] };

  test.each([
    // [what, confinement, step overrides, expected HostConfig fields (undefined: not set)]
    ['not restricted, no limits: as before', { restricted: false }, {}, { ...base, ...none }],
    ['not restricted, privileged: as the step asks', { restricted: false }, { privileged: true }, { ...base, ...none, Privileged: true }],
    ['restricted: no capabilities, no new privileges, still an init', { restricted: true }, {}, { ...base, ...none, ...locked }],
    ['restricted forces privileged off', { restricted: true }, { privileged: true }, { ...base, ...none, ...locked, Privileged: false }],
    [
      'limits apply without restriction too; memory has no swap',
      { restricted: false, memoryBytes: 512 * MiB, pids: 256, nanoCpus: 2e9 },
      {},
      { ...base, ...none, Memory: 512 * MiB, MemorySwap: 512 * MiB, PidsLimit: 256, NanoCpus: 2e9 },
    ],
    [
      'restricted with limits',
      { restricted: true, memoryBytes: 32 * MiB, pids: 64 },
      {},
      { ...base, ...locked, Memory: 32 * MiB, MemorySwap: 32 * MiB, PidsLimit: 64, NanoCpus: undefined },
    ],
    ['a step asking fewer cpus than the limit keeps its own', { restricted: true, nanoCpus: 2e9 }, { cpus: '0.5' }, { NanoCpus: 5e8 }],
    ['a step asking more cpus than the limit gets the limit', { restricted: true, nanoCpus: 2e9 }, { cpus: '4' }, { NanoCpus: 2e9 }],
    ['the step\'s cpus without a cpu limit', { restricted: true }, { cpus: '1.5' }, { NanoCpus: 1.5e9 }],
    ['a cpu limit, the step asking nothing', { restricted: false, nanoCpus: 1e9 }, {}, { NanoCpus: 1e9 }],
  ] as [string, StepConfinement, Parameters<typeof cmdStep>[0], Record<string, unknown>][])('%s', (_what, confinement, overrides, expected) => {
    const { spec } = toCreateOptions({ ...env, confinement }, cmdStep(overrides), 1);
    const host = spec.HostConfig as unknown as Record<string, unknown>;
    for (const [key, value] of Object.entries(expected)) expect([key, host[key]]).toEqual([key, value]);
  });

  test('the mounts, network and everything else are the same restricted or not', () => {
    const step = cmdStep({ args: ['true'], user: '1000', ports: ['8080:80'] });
    const open = toCreateOptions(env, step, 1).spec;
    const restricted = toCreateOptions({ ...env, confinement: { restricted: true } }, step, 1).spec;
    expect(restricted).toEqual({ ...open, HostConfig: { ...open.HostConfig, CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'] } });
  });

  test.each([
    // [what, confinement]: the server's configuration at fault, refused before any engine call
    ['memory below Docker\'s 6 MiB floor', { restricted: true, memoryBytes: 1024 }],
    ['fractional memory', { restricted: true, memoryBytes: 64 * MiB + 0.5 }],
    ['no processes', { restricted: true, pids: 0 }],
    ['cpus below 0.01', { restricted: true, nanoCpus: 1000 }],
  ] as [string, StepConfinement][])('refuses %s', (_what, confinement) => {
    expect(() => confinementHostConfig(confinement, undefined)).toThrow('invalid step confinement');
    expect(() => toCreateOptions({ ...env, confinement }, cmdStep(), 1)).toThrow(expect.objectContaining({ infrastructure: true }));
    expect(() => toBuildOptions(buildStep(), [], { ...env, confinement })).toThrow(BackendError);
  });
});

describe('toPortConfig', () => {
  test.each([
    // [ports, expose, exposed ports, bindings]
    [['8080:80'], [], ['80/tcp'], { '80/tcp': [{ HostIp: '', HostPort: '8080' }] }],
    [['9090'], [], ['9090/tcp'], { '9090/tcp': [{ HostIp: '', HostPort: '' }] }],
    [['127.0.0.1:8080:80/udp'], [], ['80/udp'], { '80/udp': [{ HostIp: '127.0.0.1', HostPort: '8080' }] }],
    [['127.0.0.1::80'], [], ['80/tcp'], { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] }],
    [['[::1]:8080:80'], [], ['80/tcp'], { '80/tcp': [{ HostIp: '::1', HostPort: '8080' }] }],
    [
      ['8000-8001:80-81'],
      [],
      ['80/tcp', '81/tcp'],
      { '80/tcp': [{ HostIp: '', HostPort: '8000' }], '81/tcp': [{ HostIp: '', HostPort: '8001' }] },
    ],
    [['8000-8010:80'], [], ['80/tcp'], { '80/tcp': [{ HostIp: '', HostPort: '8000-8010' }] }],
    [[], ['80', '53/udp', '7000-7001'], ['80/tcp', '53/udp', '7000/tcp', '7001/tcp'], {}],
  ])('ports %j expose %j', (ports, expose, exposed, bindings) => {
    const config = toPortConfig(ports, expose);
    expect(Object.keys(config.exposed)).toEqual(exposed);
    expect(config.bindings).toEqual(bindings);
  });

  test.each([['0:80'], ['80:70000'], ['1:2:3:4'], ['8000-8002:80-81'], ['80/icmp'], ['[::1]80']])('refuses %s', (port) => {
    expect(() => toPortConfig([port], [])).toThrow(BackendError);
  });
});

describe('toBuildOptions', () => {
  test('every build option', () => {
    const step = buildStep({
      tags: ['myreg.azurecr.io/app:1', 'myreg.azurecr.io/app:latest'],
      dockerfile: './docker/Dockerfile',
      buildArgs: [{ name: 'A', value: '1' }, { name: 'FROM_ENV' }, { name: 'MISSING' }, { name: 'A', value: '2' }],
      env: ['FROM_ENV=from the env'],
      target: 'final',
      noCache: true,
      pull: true,
      labels: [{ name: 'org.opencontainers.image.source', value: 'https://x' }],
      platform: 'linux/amd64',
      network: 'backend',
      cacheFrom: ['myreg.azurecr.io/app:cache'],
    });
    expect(toBuildOptions(step, logins, env)).toEqual({
      query: {
        t: ['myreg.azurecr.io/app:1', 'myreg.azurecr.io/app:latest'],
        dockerfile: 'docker/Dockerfile',
        buildargs: { A: '2', FROM_ENV: 'from the env' },
        labels: { 'org.opencontainers.image.source': 'https://x' },
        nocache: true,
        pull: true,
        rm: true,
        forcerm: true,
        networkmode: 'kiln-r1-backend',
        target: 'final',
        platform: 'linux/amd64',
        cachefrom: '["myreg.azurecr.io/app:cache"]',
      },
      registryConfig: registryConfig(logins),
    });
  });

  test.each([
    // [what, confinement, expected limits in the query (undefined: not sent)]
    ['no limits', { restricted: true }, { memory: undefined, memswap: undefined, cpuperiod: undefined, cpuquota: undefined }],
    ['memory, without swap', { restricted: false, memoryBytes: 32 * 1024 * 1024 }, { memory: 33554432, memswap: 33554432, cpuquota: undefined }],
    ['cpus as a CFS quota', { restricted: true, nanoCpus: 1.5e9 }, { memory: undefined, cpuperiod: 100000, cpuquota: 150000 }],
    ['the smallest cpu limit', { restricted: true, nanoCpus: 1e7 }, { cpuperiod: 100000, cpuquota: 1000 }],
    ['pids: the build API has no such limit', { restricted: true, pids: 64 }, { memory: undefined, cpuquota: undefined }],
  ] as [string, StepConfinement, Record<string, unknown>][])('limits: %s', (_what, confinement, expected) => {
    const query = toBuildOptions(buildStep(), [], { ...env, confinement }).query as unknown as Record<string, unknown>;
    for (const [key, value] of Object.entries(expected)) expect([key, query[key]]).toEqual([key, value]);
    expect(Object.keys(query).filter((k) => /pid/i.test(k))).toEqual([]);
  });

  test.each([
    // [what, step overrides, expected fragment of the query]
    ['defaults', {}, { dockerfile: 'Dockerfile', nocache: false, pull: false, networkmode: 'kiln-r1', buildargs: {}, t: [] }],
    ['cache disabled', { cache: false }, { nocache: true }],
    ['host network', { network: 'host' }, { networkmode: 'host' }],
  ])('%s', (_what, overrides, expected) => {
    expect(toBuildOptions(buildStep(overrides), [], env).query).toMatchObject(expected);
    expect(toBuildOptions(buildStep(overrides), [], env).query).not.toHaveProperty('target');
  });
});

describe('paths and references', () => {
  test.each([
    ['Dockerfile', 'Dockerfile'],
    ['./Dockerfile', 'Dockerfile'],
    ['docker//Dockerfile', 'docker/Dockerfile'],
    ['a/../b/Dockerfile', 'b/Dockerfile'],
    ['.', ''],
    ['dir/', 'dir'],
  ])('normalizeContextPath(%s) = %s', (path, expected) => {
    expect(normalizeContextPath(path)).toBe(expected);
  });

  test.each([['../x'], ['/etc/passwd'], ['a/../../x']])('normalizeContextPath refuses %s', (path) => {
    expect(() => normalizeContextPath(path)).toThrow('outside the build context');
  });

  test.each([
    ['.', '/workspace'],
    ['app', '/workspace/app'],
    ['./app/', '/workspace/app'],
    ['/workspace/app', '/workspace/app'],
    ['/workspace', '/workspace'],
  ])('workspaceContextDir(%s) = %s', (path, expected) => {
    expect(workspaceContextDir(path)).toBe(expected);
  });

  test.each([
    ['127.0.0.1:5000/app:1', { name: '127.0.0.1:5000/app', tag: '1' }],
    ['127.0.0.1:5000/team/app', { name: '127.0.0.1:5000/team/app', tag: 'latest' }],
    ['docker.io/library/busybox:1.36', { name: 'docker.io/library/busybox', tag: '1.36' }],
  ])('pushTarget(%s)', (image, expected) => {
    expect(pushTarget(image)).toEqual(expected);
  });

  test('a digest-only reference cannot be pushed', () => {
    expect(() => pushTarget(`127.0.0.1:5000/app@sha256:${'a'.repeat(64)}`)).toThrow('names a digest');
  });

  test('resolveNetwork', () => {
    expect(resolveNetwork(env, undefined)).toBe('kiln-r1');
    expect(resolveNetwork(env, 'backend')).toBe('kiln-r1-backend');
    expect(resolveNetwork(env, 'bridge')).toBe('bridge');
  });
});
