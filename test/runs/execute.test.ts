import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FakeBackend } from '../../src/backend/fake';
import type { BuildContextSource, BuildOutcome, RunEnvironment, StepIo } from '../../src/backend/types';
import type { Plan, PlanBuildStep } from '../../src/domain/plan';
import { fastClock } from '../../src/runtime';
import { executeRun } from '../../src/runs/execute';
import { prepareText } from '../helpers/prepare';
import { listTar, tempDir } from '../source/helpers/files';
import { serveGitHttp, type LocalServer } from '../source/helpers/servers';

/** Records the entries of each build context it is given, instead of building. */
class ContextRecorder extends FakeBackend {
  readonly contexts: string[][] = [];

  override async buildImage(_env: RunEnvironment, step: PlanBuildStep, context: BuildContextSource, _io: StepIo): Promise<BuildOutcome> {
    if (context.kind !== 'tar') throw new Error('expected a tar context');
    this.contexts.push((await listTar(context.tar)).map((e) => e.name).sort());
    return { imageId: 'sha256:' + '0'.repeat(64), dockerfile: `FROM scratch\n# ${step.dockerfile}\n` };
  }
}

describe('executeRun with a git build context', () => {
  const tmp = tempDir();
  let server: LocalServer;

  beforeAll(async () => {
    const src = join(tmp.path, 'src');
    mkdirSync(join(src, 'dist'), { recursive: true });
    const git = (...args: string[]): string => execFileSync('git', ['-C', src, ...args], { encoding: 'utf8' });
    git('init', '--quiet', '--initial-branch=main');
    writeFileSync(join(src, 'app.Dockerfile'), 'FROM scratch\nCOPY dist /dist\n');
    writeFileSync(join(src, 'dist', 'app.js'), 'built\n');
    writeFileSync(join(src, 'notes.txt'), 'not for the image\n');
    // The general ignore file drops dist/; the Dockerfile's own ignore file wins and keeps it.
    writeFileSync(join(src, '.dockerignore'), 'dist\n');
    writeFileSync(join(src, 'app.Dockerfile.dockerignore'), 'notes.txt\n');
    git('add', '.');
    git('-c', 'user.email=t@example.com', '-c', 'user.name=t', 'commit', '--quiet', '-m', 'one');
    const repos = join(tmp.path, 'repos');
    mkdirSync(repos);
    execFileSync('git', ['clone', '--quiet', '--bare', src, join(repos, 'repo.git')]);
    server = await serveGitHttp(repos);
  });

  afterAll(async () => {
    await server.close();
    tmp.cleanup();
  });

  it("packs the checkout with the build's own ignore file, as BuildKit would", async () => {
    const prepared = await prepareText('acb.yaml', 'steps:\n  - build: -t app:1 -f app.Dockerfile https://example.invalid/repo.git#main\n');
    const plan = prepared.plan as Plan;
    // Tasks may only name https git URLs; the test's git server is plain http on loopback.
    const step = plan.steps[0] as PlanBuildStep;
    const local: Plan = { ...plan, steps: [{ ...step, context: { kind: 'git', url: `${server.url}/repo.git`, ref: 'main' } }] };
    const clock = fastClock(100);
    const backend = new ContextRecorder({ now: clock.now, sleep: clock.sleep });
    const result = await executeRun({
      runId: 'r1',
      backend,
      plan: local,
      registryLogins: [],
      secrets: [],
      dockerSocket: false,
      clock,
      network: { allowSchemes: ['http'], allowPrivateAddresses: true },
    });
    expect(result.status).toBe('Succeeded');
    expect(backend.contexts).toEqual([['.dockerignore', 'app.Dockerfile', 'app.Dockerfile.dockerignore', 'dist', 'dist/app.js']]);
  });
});
