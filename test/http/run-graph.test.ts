import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { FakeBackend } from '../../src/backend/fake';
import { consoleDir, packageRoot } from '../../src/bin/package-root';
import type { Plan } from '../../src/domain/plan';
import type { StepResult } from '../../src/domain/run-result';
import { fastClock } from '../../src/runtime';
import { executeRun } from '../../src/runs/execute';
import type { RunProgress } from '../../src/runs/store';
import { executeClaimedRun } from '../../src/runs/worker-run';
import { prepareText } from '../helpers/prepare';
import { startApi, type Harness } from './helpers';

/**
 * Every step table carries the graph the console draws: each step's kind and the ids it waits
 * for, wherever the table is made (the runtime's result for `kiln run` and the worker, the
 * worker's live table, a run whose context could not be fetched). One diamond: a build, two
 * commands after it, a push after both.
 */

const DIAMOND = `version: v1.1.0
steps:
  - id: a
    build: -t 127.0.0.1:5000/app:1 .
  - id: b
    when: [a]
    cmd: busybox echo b
  - id: c
    when: [a]
    cmd: busybox echo c
  - id: d
    when: [b, c]
    push: [127.0.0.1:5000/app:1]
`;

const GRAPH = [
  ['a', 'build', []],
  ['b', 'cmd', ['a']],
  ['c', 'cmd', ['a']],
  ['d', 'push', ['b', 'c']],
];

const graphOf = (steps: readonly StepResult[]): unknown[] => steps.map((s) => [s.id, s.kind, s.dependsOn]);

async function diamond(): Promise<Plan> {
  const prepared = await prepareText('acb.yaml', DIAMOND);
  if (!prepared.plan) throw new Error(JSON.stringify(prepared.diagnostics));
  return prepared.plan;
}

function fake(): FakeBackend {
  const clock = fastClock(100);
  return new FakeBackend({ now: clock.now, sleep: clock.sleep });
}

describe('the step graph in step results', () => {
  it('is in the result of kiln run (executeRun), each step with its kind and dependencies', async () => {
    const result = await executeRun({ runId: 'k1', backend: fake(), plan: await diamond(), registryLogins: [], secrets: [], dockerSocket: false, clock: fastClock(100) });
    expect(result.status).toBe('Succeeded');
    expect(graphOf(result.steps)).toEqual(GRAPH);
  });

  it('is in the steps of a run whose context could not be fetched', async () => {
    const result = await executeRun({
      runId: 'k2',
      backend: fake(),
      plan: await diamond(),
      // Plain http is refused before anything is fetched.
      context: { kind: 'tar', url: 'http://127.0.0.1:9/context.tar' },
      registryLogins: [],
      secrets: [],
      dockerSocket: false,
    });
    expect(result.status).toBe('Failed');
    expect(result.steps.map((s) => s.status)).toEqual(['Skipped', 'Skipped', 'Skipped', 'Skipped']);
    expect(graphOf(result.steps)).toEqual(GRAPH);
  });

  describe('on a worker', () => {
    let api: Harness;
    beforeAll(async () => {
      api = await startApi('graph');
    });
    afterAll(async () => {
      await api.close();
    });

    it('is in the live table from its first write, and in the run the API shows', async () => {
      const submitted = await api.request('POST', '/v1/runs', { role: 'runner', json: { task: DIAMOND } });
      expect(submitted.status).toBe(202);
      const { runId } = (await submitted.json()) as { runId: string };
      const claim = await api.store.claim(runId, 'test-worker');
      if (!('token' in claim)) throw new Error('not claimed');
      const written: StepResult[][] = [];
      const outcome = await executeClaimedRun({
        claim,
        store: {
          progress: (c, progress: RunProgress) => {
            if (progress.steps) written.push(progress.steps);
            return api.store.progress(c, progress);
          },
          finish: (c, result) => api.store.finish(c, result),
        },
        logs: api.store.logs,
        backend: fake(),
        uploadsDir: api.uploadsDir,
        network: { allowSchemes: ['https'] },
        signal: new AbortController().signal,
        logger: pino({ level: 'silent' }),
        dockerSocket: false,
        progressIntervalMs: 1,
      });
      expect(outcome).toMatchObject({ outcome: 'finished', result: { status: 'Succeeded' } });
      expect(written.length).toBeGreaterThan(0);
      // Steps not started yet are in the table too, with their place in the graph.
      expect(written[0]?.some((s) => s.status === 'Queued')).toBe(true);
      for (const table of written) expect(graphOf(table)).toEqual(GRAPH);
      const run = (await (await api.request('GET', `/v1/runs/${runId}`, { role: 'reader' })).json()) as { steps: StepResult[] };
      expect(graphOf(run.steps)).toEqual(GRAPH);
    });
  });
});

describe('packageRoot (where the service finds dist/web)', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'kiln-pkg-'));
    for (const dir of ['src/bin', 'dist/src/bin']) mkdirSync(join(root, dir), { recursive: true });
    // The build leaves a copy of package.json in dist/ (src/cli imports it).
    writeFileSync(join(root, 'package.json'), '{"name":"kiln"}');
    writeFileSync(join(root, 'dist', 'package.json'), '{"name":"kiln"}');
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('is the same from the sources (ts-jest) and from the build', () => {
    expect(packageRoot(join(root, 'src', 'bin'))).toBe(root);
    expect(packageRoot(join(root, 'dist', 'src', 'bin'))).toBe(root);
    expect(consoleDir(root)).toBe(join(root, 'dist', 'web'));
  });

  it("is this checkout's root by default", () => {
    expect(packageRoot()).toBe(join(__dirname, '..', '..'));
  });
});
