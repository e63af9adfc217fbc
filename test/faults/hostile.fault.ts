import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { anchorSupport } from '../../src/backend/docker/helper';
import { docker } from '../helpers/docker';
import { freePort } from '../integration/helpers';
import { makeTar, type TarEntry } from '../source/helpers/files';
import { PWNED, record, Rig } from './rig';

/**
 * Hostile input against a server that does not allow private sources (the default): S5
 * (malicious context tars), S6 (git injection and SSRF), S7 (a step reaching the host's
 * services). Every input is refused at the API (4xx) or its run fails before anything leaves the
 * workspace or connects; a listener standing in for a private service counts connections.
 */

let rig: Rig;
let trap: Server;
let trapPort = 0;
const trapped: Socket[] = [];

beforeAll(async () => {
  rig = new Rig();
  await rig.startRedis();
  await rig.startApi([], { privateSources: false });
  rig.startWorker();
  trapPort = await freePort();
  trap = createServer((socket) => {
    trapped.push(socket);
    socket.destroy();
  });
  await new Promise<void>((resolve) => trap.listen(trapPort, '127.0.0.1', resolve));
}, 60_000);

afterAll(async () => {
  await new Promise<void>((resolve) => trap.close(() => resolve()));
  await rig.close();
});

const TASK = 'version: v1.1.0\nsteps:\n  - cmd: busybox ls /workspace\n';

/** POST /v1/runs with a context URL, timed. */
async function withContext(context: string): Promise<{ status: number; ms: number; runId?: string; detail: string }> {
  const start = performance.now();
  const res = await rig.submit(TASK, { context });
  const ms = performance.now() - start;
  const body = res.body as { detail?: string };
  return { status: res.status, ms, runId: res.runId, detail: body.detail ?? '' };
}

it('S6: refuses option injection, transports and private destinations in context URLs; nothing runs, nothing connects', async () => {
  const cases: [string, string][] = [
    ['--upload-pack=touch /tmp/pwned', 'option-like URL'],
    ['ext::sh -c touch% /tmp/pwned', 'ext:: transport'],
    ['https://example.com/r.git#-c PROTOCOL.ALLOW=always', 'option-like ref'],
    ['file:///etc', 'file URL'],
    [`http://127.0.0.1:${trapPort}/repo.git#main`, 'loopback git URL'],
    [`http://127.0.0.1:${trapPort}/context.tar.gz`, 'loopback tar URL'],
    ['http://169.254.169.254/latest/context.tar.gz', 'link-local (metadata) tar URL'],
    ['http://10.0.0.1/repo.git', 'private git URL'],
  ];
  for (const [url, what] of cases) {
    const answer = await withContext(url);
    if (answer.status === 202) {
      // Accepted as a URL: the worker refuses it before connecting.
      const run = await rig.waitFinal(answer.runId as string, 60_000);
      expect([what, run.status]).toEqual([what, 'Failed']);
      expect([what, run.error ?? '']).toEqual([what, expect.stringMatching(/private|loopback|link-local|not allowed|refused|scheme/i)]);
      record({ case: 'S6', measure: `${what}: refused by the worker`, value: run.status, target: 'Failed, no connection', ok: true });
    } else {
      expect([what, answer.status]).toEqual([what, 400]);
      record({ case: 'S6', measure: `${what}: refused at the API`, value: `${answer.status} in ${answer.ms.toFixed(0)} ms`, target: '4xx < 100 ms', ok: answer.ms < 100 });
      expect(answer.ms).toBeLessThan(100);
    }
  }
  expect(trapped).toHaveLength(0);
  expect(existsSync(PWNED)).toBe(false);
  await rig.oracles();
}, 240_000);

it('S5: fails runs whose uploaded context tar escapes the workspace, writing nothing outside it', async () => {
  const marker = `kiln-s5-${randomBytes(4).toString('hex')}`;
  const outside = [`/tmp/${marker}`, `/${marker}`, `/etc/${marker}`];
  const tars: [string, TarEntry[]][] = [
    ['dot-dot entry', [{ name: `../../../../tmp/${marker}`, content: 'x' }]],
    ['absolute entry', [{ name: `/tmp/${marker}`, content: 'x' }]],
    ['symlink to /etc, then a file through it', [{ name: 'etc', type: 'symlink', linkname: '/etc' }, { name: `etc/${marker}`, content: 'x' }]],
    ['hard link to /etc/shadow', [{ name: 'shadow', type: 'link', linkname: '/etc/shadow' }]],
    ['symlink to a sibling directory (CVE-2025-59343)', [{ name: 'evil', type: 'symlink', linkname: `../${marker}` }, { name: `evil/x`, content: 'x' }]],
    ['device node', [{ name: 'null', type: 'character-device', devmajor: 1, devminor: 3 }]],
  ];
  for (const [what, entries] of tars) {
    const form = new FormData();
    form.set('task', TASK);
    form.set('context', new Blob([await makeTar(entries)]), 'context.tar');
    const start = performance.now();
    const res = await fetch(`${rig.url}/v1/runs`, { method: 'POST', headers: { authorization: `Bearer ${rig.token}` }, body: form });
    const body = (await res.json()) as { runId?: string; detail?: string };
    if (res.status === 202 && body.runId) {
      rig.accepted.add(body.runId);
      const run = await rig.waitFinal(body.runId, 60_000);
      const ms = performance.now() - start;
      expect([what, run.status]).toEqual([what, 'Failed']);
      // Refused for what it is, not for something else on the way.
      expect([what, run.error ?? '']).toEqual([what, expect.stringMatching(/outside|absolute|"\.\."|not allowed|type|link/i)]);
      record({ case: 'S5', measure: `${what}: run ended`, value: `${run.status} in ${(ms / 1000).toFixed(1)} s`, target: 'Failed, nothing outside, <= 5 s', ok: ms <= 5000 });
    } else {
      expect([what, res.status >= 400 && res.status < 500]).toEqual([what, true]);
      record({ case: 'S5', measure: `${what}: refused at the API`, value: String(res.status), target: '4xx', ok: true });
    }
    for (const path of outside) expect([what, path, existsSync(path)]).toEqual([what, path, false]);
  }
  await rig.oracles();
}, 240_000);

it("S7: a step cannot reach the host's services on loopback, nor be privileged", async () => {
  const bridge = await docker.getNetwork('bridge').inspect();
  const gateway = (bridge as { IPAM?: { Config?: { Gateway?: string }[] } }).IPAM?.Config?.[0]?.Gateway ?? '172.17.0.1';
  const ports = [rig.redisPort, rig.apiPort, trapPort];
  const probes = ports.map((p) => `busybox nc -z -w 2 ${gateway} ${p} && echo open-${p} || echo closed-${p}`).join('; ');
  const { status, runId } = await rig.submit(`version: v1.1.0\nsteps:\n  - id: probe\n    cmd: busybox sh -c "${probes}"\n`);
  expect(status).toBe(202);
  const run = await rig.waitFinal(runId as string, 60_000);
  expect(run.status).toBe('Succeeded');
  const log = String((await rig.call<string>('GET', `/v1/runs/${runId}/logs`)).body);
  for (const p of ports) expect(log).toContain(`closed-${p}`);
  record({ case: 'S7', measure: `host services (Redis, API, a trap) from a step via ${gateway}`, value: ports.map((p) => (log.includes(`closed-${p}`) ? 'closed' : 'OPEN')).join(', '), target: 'all closed', ok: ports.every((p) => log.includes(`closed-${p}`)) });
  const privileged = await rig.submit('version: v1.1.0\nsteps:\n  - cmd: busybox id\n    privileged: true\n');
  expect(privileged.status).toBe(403);
  record({ case: 'S7', measure: 'privileged step on the restricted server', value: String(privileged.status), target: '403', ok: privileged.status === 403 });
  await rig.oracles();
}, 120_000);

it('S7: a fork bomb in a step and in a build RUN stops at the process limit; the runs fail with the reason and the host recovers', async () => {
  const hostProcesses = (): number => readdirSync('/proc').filter((name) => /^\d+$/.test(name)).length;
  const before = hostProcesses();
  // Far more forks than the server's 1,024 processes per step; busybox sh gives up at the first that fails.
  const bomb = 'n=0; for i in $(seq 3000); do sleep 60 & n=$((n+1)); [ $((n % 128)) = 0 ] && echo forked $n; done';
  const dockerfile = `FROM busybox\nRUN ${bomb}\n`;
  const steps: Record<string, string> = { step: `  - id: bomb\n    cmd: ${JSON.stringify(`busybox sh -c '${bomb}'`)}\n` };
  const support = anchorSupport(await docker.info());
  if ('arch' in support) {
    steps.build = `  - id: dockerfile\n    cmd: ${JSON.stringify(`busybox sh -c "echo ${Buffer.from(dockerfile).toString('base64')} | base64 -d > Dockerfile"`)}\n  - id: bomb\n    build: -t kiln-fault/fork-bomb:${process.pid} --no-cache .\n`;
  } else {
    record({ case: 'S7', measure: 'fork bomb in a build', value: `not run: this engine (${support.unsupported}) cannot limit builds`, target: "Failed, can't fork", ok: false });
  }
  for (const [where, step] of Object.entries(steps)) {
    const { status, runId } = await rig.submit(`version: v1.1.0\nsteps:\n${step}`);
    expect(status).toBe(202);
    const run = await rig.waitFinal(runId as string, 90_000);
    const log = String((await rig.call<string>('GET', `/v1/runs/${runId}/logs`)).body);
    const bombStep = run.steps.find((s) => s.id === 'bomb');
    expect(run.status).toBe('Failed');
    expect(bombStep?.status).toBe('Failed');
    expect(log).toContain("can't fork");
    // It got near the limit (the limit, not memory or anything else, stopped it).
    const forked = Math.max(0, ...[...log.matchAll(/forked (\d+)/g)].map((m) => Number(m[1])));
    expect(forked).toBeGreaterThanOrEqual(896);
    expect(forked).toBeLessThan(1024);
    // The host's process count is back near where it was within 30 s of the run's end.
    const ended = Date.now();
    await rig.until('the host to shed the bomb\'s processes', 30_000, async () => hostProcesses() < before + 100);
    record({ case: 'S7', measure: `fork bomb in a ${where} (1,024 processes per step)`, value: `run ${run.status}, "can't fork" after ${forked}+ forks; host processes back to ${hostProcesses()} (from ${before}) ${((Date.now() - ended) / 1000).toFixed(1)} s after`, target: "Failed, can't fork; recovers in <= 30 s", ok: true });
  }
  await rig.oracles();
}, 240_000);
