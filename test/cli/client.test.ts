import { createReadStream, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';
import { KilnClient } from '../../src/cli/client/api';
import type { RunDocument } from '../../src/domain/run-record';
import { KilnError } from '../../src/errors';
import type { SavedTask } from '../../src/runs/store';
import type { TaskTriggers } from '../../src/domain/trigger';
import { startHarness, startProxy, tempDir, TIMER_NEXT, waitFor, type Harness } from './client-harness';

/**
 * The client commands end to end, in process, against the real API app over the real Redis
 * store. The test plays the worker (claim, log lines, finish) so the client follows a live run.
 */

jest.setTimeout(30_000);

let h: Harness;
beforeAll(async () => {
  h = await startHarness('e2e');
});
afterAll(async () => {
  await h.close();
});

const TASK = 'version: v1.1.0\nsteps:\n  - id: hello\n    cmd: busybox echo hello\n  - id: world\n    cmd: busybox echo world\n';
const STEPS = ['hello', 'world'];

function taskFile(text = TASK): string {
  const dir = tempDir({ 'acb.yaml': text });
  return join(dir, 'acb.yaml');
}

/** The entries of an uploaded context (a tar, gzipped or not) with their text. */
async function tarEntries(path: string): Promise<Record<string, string>> {
  const entries: Record<string, string> = {};
  const reader = extract();
  const done = (async () => {
    for await (const entry of reader) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      entries[entry.header.name] = entry.header.type === 'directory' ? '<dir>' : Buffer.concat(chunks).toString('utf8');
    }
  })();
  createReadStream(path).pipe(createGunzip()).pipe(reader);
  await done;
  return entries;
}

describe('kiln run --server', () => {
  it('follows the log live to Succeeded, then prints the summary; exit 0', async () => {
    const file = taskFile();
    const kiln = h.start(['run', '--server', h.url, '-f', file]);
    const runId = await h.nextRun();
    const claim = await h.claim(runId, STEPS);
    await h.log(runId, [['hello', 'hello'], ['hello', 'second line']]);
    // Live: the first lines are on the screen while the run is still going.
    await waitFor(() => kiln.stdout().includes('hello | second line'), 'the first lines to be printed');
    await h.log(runId, [['world', 'world']]);
    await h.finish(claim, 'Succeeded', STEPS);
    const r = await kiln.done;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines.slice(0, 4)).toEqual([`kiln: run ${runId} queued on ${h.url}`, 'hello | hello', 'hello | second line', 'world | world']);
    expect(r.stdout).toMatch(/\nSTEP +STATUS +EXIT +DURATION +ATTEMPTS\nhello +Succeeded +0 /);
    expect(r.stdout).toContain(`run ${runId}: Succeeded in `);
  });

  it('exits 1 when the run Failed; with --output json the final run document is on stdout and the log on stderr', async () => {
    const kiln = h.start(['run', '--server', h.url, '-f', taskFile(), '-o', 'json']);
    const runId = await h.nextRun();
    const claim = await h.claim(runId, STEPS);
    await h.log(runId, [['hello', 'oops']]);
    await h.finish(claim, 'Failed', STEPS);
    const r = await kiln.done;
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('hello | oops\n');
    const doc = JSON.parse(r.stdout) as RunDocument;
    expect(doc).toMatchObject({ runId, status: 'Failed', task: null, trigger: { type: 'Manual', by: 'cli-admin' } });
    expect(doc.steps.map((s) => [s.id, s.status, s.exitCode])).toEqual([
      ['hello', 'Failed', 1],
      ['world', 'Failed', 1],
    ]);
  });

  it('exits 2 for an invalid task, with the same FILE:LINE:COL lines as kiln validate', async () => {
    const file = taskFile('steps:\n  - cmd: busybox echo hi\n    when: ["nope"]\n  - push: ["Bad:tag"]\n');
    const before = h.queue.enqueued.length;
    const local = await h.kiln(['validate', '-f', file]);
    const remote = await h.kiln(['run', '--server', h.url, '-f', file]);
    expect(local.code).toBe(2);
    expect(remote).toEqual({ code: 2, stdout: '', stderr: local.stderr });
    expect(remote.stderr.trim().split('\n')).toEqual([
      `${file}:3:12: steps[0].when[0]: "nope" does not exist (steps may only wait on earlier steps)`,
      `${file}:4:12: steps[1].push[0]: invalid image reference "Bad:tag": repository name must be lowercase`,
    ]);
    expect(h.queue.enqueued.length).toBe(before);
  });

  it("prints the task's warnings as kiln validate does, in the user's file", async () => {
    const file = taskFile('version: v1.1.0\nsteps:\n  - cmd: busybox echo hi\n    colour: blue\n');
    const local = await h.kiln(['validate', '-f', file]);
    const remote = await h.kiln(['run', '--server', h.url, '-f', file, '--no-wait']);
    await h.nextRun();
    expect(local.stderr).toBe(`${file}:4:5: warning: steps[0].colour: unknown key "colour" is ignored\n`);
    expect(remote.code).toBe(0);
    expect(remote.stderr).toBe(local.stderr);
  });

  it('--no-wait prints the run id (json: runId and status) and leaves the run queued', async () => {
    const text = await h.kiln(['run', '--server', h.url, '-f', taskFile(), '--no-wait']);
    const runId = await h.nextRun();
    expect(text).toEqual({ code: 0, stdout: `${runId}\n`, stderr: '' });
    const json = await h.kiln(['run', '--server', h.url, '-f', taskFile(), '--no-wait', '-o', 'json']);
    const second = await h.nextRun();
    expect(JSON.parse(json.stdout)).toEqual({ runId: second, status: 'Queued' });
    expect((await h.store.get(runId))?.status).toBe('Queued');
  });

  it('--no-logs waits for the outcome without printing the log', async () => {
    const kiln = h.start(['run', '--server', h.url, '-f', taskFile(), '--no-logs']);
    const runId = await h.nextRun();
    const claim = await h.claim(runId, STEPS);
    await h.log(runId, [['hello', 'not to be printed']]);
    await h.finish(claim, 'Succeeded', STEPS);
    const r = await kiln.done;
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('not to be printed');
    expect(r.stdout).toContain(`run ${runId}: Succeeded in `);
    expect(r.stderr).toBe(`kiln: run ${runId} queued on ${h.url}\n`);
  });

  it('sends --values, --set, --secret and --registry with the run', async () => {
    const dir = tempDir({
      'acb.yaml': 'version: v1.1.0\nsecrets:\n  - id: pw\nsteps:\n  - cmd: busybox echo {{.Values.a}} {{.Values.b}}\n',
      'values.yaml': 'a: from-file\nb: from-file\n',
    });
    const r = await h.kiln(['run', '--server', h.url, '-f', join(dir, 'acb.yaml'), '--values', join(dir, 'values.yaml'), '--set', 'b=from-set', '--secret', 'pw=hunter2', '--registry', 'reg.example:5000', '--no-wait']);
    expect(r.code).toBe(0);
    const runId = await h.nextRun();
    const claim = await h.store.claim(runId, 'test-worker');
    if (!('token' in claim)) throw new Error('claim refused');
    expect(claim.request).toMatchObject({ values: { a: 'from-file', b: 'from-file' }, set: { b: 'from-set' }, registry: 'reg.example:5000' });
    expect(claim.secrets.secrets).toEqual({ pw: 'hunter2' });
  });

  it('uploads a local context directory as a gzipped tar, .dockerignore applied', async () => {
    const context = tempDir({
      'app/main.sh': 'echo main\n',
      'README.md': 'read me\n',
      'secret.key': 'do not upload\n',
      'logs/today.log': 'noise\n',
      '.dockerignore': 'secret.key\nlogs\n',
    });
    const r = await h.kiln(['run', '--server', h.url, '-f', taskFile(), context, '--no-wait']);
    expect(r.code).toBe(0);
    const runId = await h.nextRun();
    const claim = await h.store.claim(runId, 'test-worker');
    if (!('token' in claim)) throw new Error('claim refused');
    const source = claim.request.source;
    if (source.kind !== 'upload') throw new Error(`expected an upload, got ${JSON.stringify(source)}`);
    expect(readdirSync(h.uploadsDir)).toContain(`${source.uploadId}.tar`);
    const entries = await tarEntries(join(h.uploadsDir, `${source.uploadId}.tar`));
    expect(entries).toEqual({ '.dockerignore': 'secret.key\nlogs\n', 'README.md': 'read me\n', app: '<dir>', 'app/main.sh': 'echo main\n' });
  });

  it('sends a URL context as a URL, and refuses a context directory that does not exist before sending anything', async () => {
    const r = await h.kiln(['run', '--server', h.url, '-f', taskFile(), 'https://git.example/repo.git#main', '--no-wait']);
    expect(r.code).toBe(0);
    const runId = await h.nextRun();
    const claim = await h.store.claim(runId, 'test-worker');
    if (!('token' in claim)) throw new Error('claim refused');
    expect(claim.request.source).toEqual({ kind: 'url', url: 'https://git.example/repo.git#main' });

    const before = h.queue.enqueued.length;
    const missing = await h.kiln(['run', '--server', h.url, '-f', taskFile(), '/nonexistent/ctx']);
    expect(missing).toEqual({ code: 2, stdout: '', stderr: 'kiln: context directory "/nonexistent/ctx" does not exist\n' });
    expect(h.queue.enqueued.length).toBe(before);
  });

  it('a context that fails while it is packed fails the command with that error, not as a server error', async () => {
    const client = new KilnClient({ server: h.url, token: h.tokens.runner });
    const failing = (async function* () {
      yield Buffer.from('the first bytes');
      throw new KilnError('invalid_input', 'cannot pack context "/ctx": EACCES: permission denied, open \'secret.key\'');
    })();
    const sent = client.submitRun({ task: TASK, upload: { filename: 'context.tar.gz', contentType: 'application/gzip', content: failing } });
    await expect(sent).rejects.toThrow(new KilnError('invalid_input', 'cannot pack context "/ctx": EACCES: permission denied, open \'secret.key\''));
    await expect(sent).rejects.toBeInstanceOf(KilnError);
  });

  it('refuses the flags that only a local run has', async () => {
    const r = await h.kiln(['run', '--server', h.url, '-f', taskFile(), '--max-parallel', '2']);
    expect(r).toEqual({ code: 2, stdout: '', stderr: 'kiln: --max-parallel applies to local runs only, not with --server\n' });
    const noServer = await h.kiln(['run', '-f', taskFile(), '--no-wait']);
    expect(noServer).toEqual({ code: 2, stdout: '', stderr: 'kiln: --no-wait needs --server\n' });
  });

  it('first Ctrl-C cancels the run on the server and keeps following it to its end (exit 1)', async () => {
    const kiln = h.start(['run', '--server', h.url, '-f', taskFile()]);
    const runId = await h.nextRun();
    const claim = await h.claim(runId, STEPS);
    await h.log(runId, [['hello', 'working']]);
    await waitFor(() => kiln.stdout().includes('hello | working'), 'the log line');
    kiln.interrupt();
    await waitFor(() => h.store.cancelRequested(runId), 'the cancel to reach the server');
    await h.log(runId, [['hello', 'stopping']]);
    await h.finish(claim, 'Canceled', STEPS);
    const r = await kiln.done;
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('hello | stopping\n');
    expect(r.stdout).toContain(`run ${runId}: Canceled in `);
    expect(r.stderr).toContain(`kiln: canceling run ${runId} on the server (Ctrl-C again to stop following)\n`);
  });

  it('a second Ctrl-C stops following at once: exit 130', async () => {
    const kiln = h.start(['run', '--server', h.url, '-f', taskFile()]);
    const runId = await h.nextRun();
    await h.claim(runId, STEPS);
    await h.log(runId, [['hello', 'working']]);
    await waitFor(() => kiln.stdout().includes('hello | working'), 'the log line');
    kiln.interrupt();
    await waitFor(() => h.store.cancelRequested(runId), 'the cancel to reach the server');
    kiln.interrupt();
    const r = await kiln.done;
    expect(r.code).toBe(130);
    expect((await h.store.get(runId))?.status).toBe('Running');
  });

  it('Ctrl-C on a run still queued cancels it and ends at once, without waiting for the log stream', async () => {
    // A quiet stream only notices a run that ended without a log after a heartbeat: make it long.
    const slow = await startHarness('queued', { heartbeatMs: 60_000 });
    try {
      const kiln = slow.start(['run', '--server', slow.url, '-f', taskFile()]);
      const runId = await slow.nextRun();
      await waitFor(() => kiln.stdout().includes('queued on'), 'the client to follow');
      const started = Date.now();
      kiln.interrupt();
      const r = await kiln.done;
      expect(Date.now() - started).toBeLessThan(5000);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`kiln: run ${runId}: canceled\n`);
      expect(r.stdout).toContain(`run ${runId}: Canceled in -`);
      expect((await slow.store.get(runId))?.status).toBe('Canceled');
    } finally {
      await slow.close();
    }
  }, 15_000);

  it('follows through dropped connections without losing or repeating a line', async () => {
    const proxy = await startProxy(h.url);
    try {
      const kiln = h.start(['run', '--server', proxy.url, '-f', taskFile()]);
      const runId = await h.nextRun();
      const claim = await h.claim(runId, STEPS);
      const batch = (from: number, to: number): [string, string][] => Array.from({ length: to - from }, (_, i) => ['hello', `line ${from + i}`]);
      await h.log(runId, batch(0, 50));
      await waitFor(() => kiln.stdout().includes('hello | line 49\n'), 'the first batch');
      const connectionsBefore = proxy.connections();
      expect(proxy.dropAll()).toBeGreaterThan(0);
      await h.log(runId, batch(50, 100));
      await waitFor(() => kiln.stdout().includes('hello | line 99\n'), 'the second batch, after reconnecting');
      proxy.dropAll();
      await h.log(runId, batch(100, 150));
      await h.finish(claim, 'Succeeded', STEPS);
      const r = await kiln.done;
      expect(r.code).toBe(0);
      const printed = r.stdout.split('\n').filter((l) => l.startsWith('hello | '));
      expect(printed).toEqual(batch(0, 150).map(([, line]) => `hello | ${line}`));
      expect(r.stderr).toContain(`kiln: lost the log stream of run ${runId} (`);
      expect(proxy.connections()).toBeGreaterThan(connectionsBefore);
    } finally {
      await proxy.close();
    }
  });
});

describe('kiln build --server', () => {
  it('sends the quick build with its context uploaded', async () => {
    const context = tempDir({ Dockerfile: 'FROM busybox\nCOPY . /src\n', 'a.txt': 'a\n', 'Dockerfile.dockerignore': 'a.txt\n' });
    const r = await h.kiln(['build', '--server', h.url, '-t', 'hello:1', '--build-arg', 'X=1', '--no-push', context, '--no-wait']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const runId = await h.nextRun();
    const claim = await h.store.claim(runId, 'test-worker');
    if (!('token' in claim)) throw new Error('claim refused');
    expect(claim.request.taskText).toContain('-t 127.0.0.1:5000/hello:1 --build-arg X=1 .');
    expect(claim.request.taskText).not.toContain('push:');
    const source = claim.request.source;
    if (source.kind !== 'upload') throw new Error(`expected an upload, got ${JSON.stringify(source)}`);
    // The Dockerfile's own ignore file applies, as for a local build.
    expect(Object.keys(await tarEntries(join(h.uploadsDir, `${source.uploadId}.tar`))).sort()).toEqual(['Dockerfile', 'Dockerfile.dockerignore']);
  });

  it('exits 2 with the server\'s reason for a bad tag', async () => {
    const context = tempDir({ Dockerfile: 'FROM busybox\n' });
    const r = await h.kiln(['build', '--server', h.url, '-t', 'Bad:Tag', context]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`kiln: server ${h.url}: 400 Bad Request: invalid image reference "Bad:Tag": repository name must be lowercase\n`);
  });
});

describe('kiln runs', () => {
  it('lists, shows and cancels runs', async () => {
    const a = await h.kiln(['run', '--server', h.url, '-f', taskFile(), '--no-wait']);
    const first = await h.nextRun();
    const b = await h.kiln(['run', '--server', h.url, '-f', taskFile(), '--no-wait']);
    const second = await h.nextRun();
    expect([a.code, b.code]).toEqual([0, 0]);
    const claim = await h.claim(first, STEPS);
    await h.finish(claim, 'Succeeded', STEPS);

    const list = await h.kiln(['runs', 'list', '--limit', '2']);
    expect(list.code).toBe(0);
    const rows = list.stdout.trimEnd().split('\n');
    expect(rows[0]).toMatch(/^RUN +STATUS +TASK +TRIGGER +CREATED \(UTC\) +DURATION$/);
    expect(rows[1]).toMatch(new RegExp(`^${second} +Queued +- +Manual +\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d +-$`));
    expect(rows[2]).toMatch(new RegExp(`^${first} +Succeeded +- +Manual +\\S+ \\S+ +\\d+\\.\\ds$`));
    expect(list.stderr).toMatch(/^kiln: more runs: add --cursor \d+\n$/);

    const json = await h.kiln(['runs', 'list', '--status', 'Succeeded', '-o', 'json']);
    const page = JSON.parse(json.stdout) as { items: RunDocument[] };
    expect(page.items.map((r) => r.status)).toEqual(page.items.map(() => 'Succeeded'));
    expect(page.items.map((r) => r.runId)).toContain(first);

    const show = await h.kiln(['runs', 'show', first]);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(new RegExp(`^run +${first}\nstatus +Succeeded\n`));
    expect(show.stdout).toContain('worker    test-worker (attempt 1)');
    expect(show.stdout).toMatch(/\nhello +Succeeded +0 /);
    const showJson = await h.kiln(['runs', 'show', first, '-o', 'json']);
    expect((JSON.parse(showJson.stdout) as RunDocument).runId).toBe(first);

    const cancel = await h.kiln(['runs', 'cancel', second]);
    expect(cancel).toEqual({ code: 0, stdout: `run ${second} canceled\n`, stderr: '' });
    expect((await h.store.get(second))?.status).toBe('Canceled');
    const again = await h.kiln(['runs', 'cancel', second]);
    expect(again).toEqual({ code: 1, stdout: '', stderr: `kiln: server ${h.url}: 409 Conflict: run ${second} already ended Canceled\n` });

    const missing = await h.kiln(['runs', 'show', 'k999999']);
    expect(missing).toEqual({ code: 1, stdout: '', stderr: `kiln: server ${h.url}: 404 Not Found: no run k999999\n` });
  });

  it('prints the log of a run, and follows it with --follow', async () => {
    await h.kiln(['run', '--server', h.url, '-f', taskFile(), '--no-wait']);
    const runId = await h.nextRun();
    const claim = await h.claim(runId, STEPS);
    await h.log(runId, [['hello', 'one'], ['world', 'two']]);
    const sofar = await h.kiln(['runs', 'logs', runId]);
    expect(sofar).toEqual({ code: 0, stdout: 'hello | one\nworld | two\n', stderr: '' });

    const follow = h.start(['runs', 'logs', runId, '--follow', '-o', 'json']);
    await waitFor(() => follow.stdout().includes('"two"'), 'the lines so far');
    await h.log(runId, [['world', 'three']]);
    await h.finish(claim, 'Succeeded', STEPS);
    const r = await follow.done;
    expect(r.code).toBe(0);
    const events = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.map((e) => e.line ?? e.status)).toEqual(['one', 'two', 'three', 'Succeeded']);
  });
});

describe('kiln task', () => {
  it('creates, lists, shows, updates, runs and deletes a saved task', async () => {
    const file = taskFile();
    const create = await h.kiln(['task', 'create', 'nightly', '-f', file, '--secret', 'pw=s3cret', '--timeout', '900']);
    expect(create).toEqual({ code: 0, stdout: 'task nightly saved\n', stderr: '' });
    const exists = await h.kiln(['task', 'create', 'nightly', '-f', file]);
    expect(exists.code).toBe(1);
    expect(exists.stderr).toContain('409 Conflict');

    const list = await h.kiln(['task', 'list']);
    expect(list.stdout.split('\n')[0]).toMatch(/^NAME +STATUS +TASK +CONTEXT +TRIGGERS +UPDATED \(UTC\)$/);
    expect(list.stdout.split('\n')[1]).toMatch(/^nightly +Enabled +\(inline\) +- +baseImage +\d{4}-/);

    const show = await h.kiln(['task', 'show', 'nightly']);
    expect(show.stdout).toContain('timeout      900s\n');
    expect(show.stdout).toContain('secrets      pw\n');
    expect(show.stdout).not.toContain('s3cret');
    expect(show.stdout.endsWith(TASK)).toBe(true);

    const update = await h.kiln(['task', 'update', 'nightly', '--timeout', '600', '--disabled']);
    expect(update).toEqual({ code: 0, stdout: 'task nightly updated\n', stderr: '' });
    const updated = JSON.parse((await h.kiln(['task', 'show', 'nightly', '-o', 'json'])).stdout) as SavedTask;
    expect(updated).toMatchObject({ name: 'nightly', timeout: 600, status: 'Disabled', task: TASK, secretIds: ['pw'] });
    expect((await h.store.tasks.secretsOf('nightly')).secrets).toEqual({ pw: 's3cret' });

    const disabled = await h.kiln(['task', 'run', 'nightly']);
    expect(disabled).toEqual({ code: 1, stdout: '', stderr: `kiln: server ${h.url}: 409 Conflict: task nightly is disabled\n` });
    await h.kiln(['task', 'update', 'nightly', '--enabled']);

    const run = h.start(['task', 'run', 'nightly', '--set', 'x=1']);
    const runId = await h.nextRun();
    const claim = await h.claim(runId, STEPS);
    expect(claim.request).toMatchObject({ taskName: 'nightly', set: { x: '1' }, timeout: 600 });
    expect(claim.secrets.secrets).toEqual({ pw: 's3cret' });
    await h.log(runId, [['hello', 'from the saved task']]);
    await h.finish(claim, 'Succeeded', STEPS);
    const ran = await run.done;
    expect(ran.code).toBe(0);
    expect(ran.stdout).toContain('hello | from the saved task\n');
    const byTask = JSON.parse((await h.kiln(['runs', 'list', '--task', 'nightly', '-o', 'json'])).stdout) as { items: RunDocument[] };
    expect(byTask.items.map((r) => [r.runId, r.task])).toEqual([[runId, 'nightly']]);

    const context = tempDir({ 'input.txt': 'uploaded for one run\n' });
    const uploaded = await h.kiln(['task', 'run', 'nightly', '--context', context, '--no-wait', '-o', 'json']);
    const uploadedRun = await h.nextRun();
    expect(JSON.parse(uploaded.stdout)).toEqual({ runId: uploadedRun, status: 'Queued' });
    const uploadClaim = await h.store.claim(uploadedRun, 'test-worker');
    if (!('token' in uploadClaim) || uploadClaim.request.source.kind !== 'upload') throw new Error('expected an uploaded context');
    expect(await tarEntries(join(h.uploadsDir, `${uploadClaim.request.source.uploadId}.tar`))).toEqual({ 'input.txt': 'uploaded for one run\n' });

    const del = await h.kiln(['task', 'delete', 'nightly']);
    expect(del).toEqual({ code: 0, stdout: 'task nightly deleted\n', stderr: '' });
    const gone = await h.kiln(['task', 'show', 'nightly']);
    expect(gone).toEqual({ code: 1, stdout: '', stderr: `kiln: server ${h.url}: 404 Not Found: no task nightly\n` });
  });

  it('exits 2 with located diagnostics for an invalid task', async () => {
    const file = taskFile('steps:\n  - push: ["Bad:tag"]\n');
    const r = await h.kiln(['task', 'create', 'broken', '-f', file]);
    expect(r).toEqual({ code: 2, stdout: '', stderr: `${file}:2:12: steps[0].push[0]: invalid image reference "Bad:tag": repository name must be lowercase\n` });
  });
});

describe('kiln task triggers', () => {
  const CONTEXT = 'https://example.com/org/web.git#main';
  const SECRET = 'webhook-secret-for-web-0123';
  const saved = async (name: string): Promise<SavedTask> => JSON.parse((await h.kiln(['task', 'show', name, '-o', 'json'])).stdout) as SavedTask;

  it('creates a task with trigger flags, shows them, and updates only what the flags name', async () => {
    const create = await h.kiln(
      ['task', 'create', 'web', '--context', CONTEXT, '--context-file', 'acb.yaml', '--pull-request-trigger-enabled', '--exclude-path', 'docs/**', '--webhook-secret', '--git-poll-interval', '60', '--base-image-trigger-type', 'All'],
      { env: { KILN_WEBHOOK_SECRET: SECRET } },
    );
    expect(create).toEqual({ code: 0, stdout: 'task web saved\n', stderr: '' });
    const created = await saved('web');
    expect(created.triggers).toEqual({
      source: { enabled: true, events: ['commit', 'pullrequest'], branch: 'main', paths: { include: ['**'], exclude: ['docs/**'] }, pollInterval: 60 },
      baseImage: { enabled: true, type: 'All', pollInterval: 0 },
      timers: [],
    });
    expect(created.webhookSecretSet).toBe(true);
    expect(JSON.stringify(created)).not.toContain(SECRET);
    expect(await h.store.tasks.webhookSecretOf('web')).toBe(SECRET);

    const show = await h.kiln(['task', 'show', 'web']);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain(
      [
        'source trigger  on: commit, pullrequest',
        'branch          main',
        'paths           include **; exclude docs/**',
        'git poll        every 60s',
        `webhook         POST ${h.url}/v1/tasks/web/hooks/{github|gitlab|gitea|bitbucket|generic}`,
        'webhook secret  set',
        'base image      on: All',
        'image poll      off (registry notifications only)',
        'timers          -',
      ].join('\n') + '\n',
    );
    expect(show.stdout).not.toContain(SECRET);

    const update = await h.kiln(['task', 'update', 'web', '--commit-trigger-enabled', 'false', '--branch', 'release/*', '--base-image-poll-interval', '300']);
    expect(update).toEqual({ code: 0, stdout: 'task web updated\n', stderr: '' });
    const updated = await saved('web');
    expect(updated.triggers).toEqual({
      source: { enabled: true, events: ['pullrequest'], branch: 'release/*', paths: { include: ['**'], exclude: ['docs/**'] }, pollInterval: 60 },
      baseImage: { enabled: true, type: 'All', pollInterval: 300 },
      timers: [],
    });
    expect(updated.webhookSecretSet).toBe(true);
    expect(await h.store.tasks.webhookSecretOf('web')).toBe(SECRET);

    // An update without trigger flags keeps the triggers as they are.
    expect((await h.kiln(['task', 'update', 'web', '--timeout', '600'])).code).toBe(0);
    expect((await saved('web')).triggers).toEqual(updated.triggers);

    // A new context: what was derived from the old one is derived again; the rest stays.
    expect((await h.kiln(['task', 'update', 'web', '--context', 'https://example.com/org/web.git#dev:app', '--branch', 'dev'])).code).toBe(0);
    expect((await saved('web')).triggers.source).toEqual({ enabled: true, events: ['pullrequest'], branch: 'dev', paths: { include: ['app/**'], exclude: ['docs/**'] }, pollInterval: 60 });

    expect((await h.kiln(['task', 'update', 'web', '--pull-request-trigger-enabled=false', '--base-image-trigger-enabled', 'false'])).code).toBe(0);
    const off = await h.kiln(['task', 'show', 'web']);
    expect(off.stdout).toContain('source trigger  off\n');
    expect(off.stdout).toContain('base image      off\n');
    expect(off.stdout).not.toMatch(/^webhook +POST/m);
    expect(JSON.parse((await h.kiln(['task', 'list', '-o', 'json'])).stdout)).toEqual([expect.objectContaining({ name: 'web' })]);
    expect((await h.kiln(['task', 'list'])).stdout.split('\n')[1]).toMatch(/^web +Enabled +acb\.yaml +https:\/\/example\.com\/org\/web\.git#dev:app +- +\d{4}-/);
    await h.kiln(['task', 'delete', 'web']);
  });

  it('exits 2 for trigger flags it cannot send, and for triggers the server refuses', async () => {
    const file = taskFile();
    const bool = await h.kiln(['task', 'create', 'bad', '-f', file, '--commit-trigger-enabled', 'yes']);
    expect(bool.code).toBe(2);
    expect(bool.stderr).toContain("error: option '--commit-trigger-enabled [bool]' argument 'yes' is invalid. must be true or false (or no value, for true)\n");
    const secret = await h.kiln(['task', 'create', 'bad', '-f', file, '--webhook-secret', 'short']);
    expect(secret).toEqual({ code: 2, stdout: '', stderr: 'kiln: the webhook secret must have 16 to 256 characters, not 5\n' });
    // No git context: the server refuses a source trigger.
    const refused = await h.kiln(['task', 'create', 'bad', '-f', file, '--commit-trigger-enabled']);
    expect(refused).toEqual({
      code: 2,
      stdout: '',
      stderr: `kiln: server ${h.url}: 400 Bad Request: triggers.source.enabled: a source trigger needs a git context (--context https://host/repo.git#branch)\n`,
    });
    expect((await h.kiln(['task', 'show', 'bad'])).code).toBe(1);
  });

  it('sets timers with --schedule, and adds, changes, lists and removes them with kiln task timer', async () => {
    const file = taskFile();
    const create = await h.kiln(['task', 'create', 'nightly-timers', '-f', file, '--schedule', '0 3 * * *', '--schedule', '30 * * * *', '--timezone', 'Europe/Paris']);
    expect(create).toEqual({ code: 0, stdout: 'task nightly-timers saved\n', stderr: '' });
    const timers = (): Promise<TaskTriggers['timers']> => saved('nightly-timers').then((t) => t.triggers.timers);
    expect(await timers()).toEqual([
      { name: 't1', schedule: '0 3 * * *', timezone: 'Europe/Paris', enabled: true },
      { name: 't2', schedule: '30 * * * *', timezone: 'Europe/Paris', enabled: true },
    ]);

    const add = await h.kiln(['task', 'timer', 'add', 'nightly-timers', '--timer-name', 'weekly', '--schedule', '0 4 * * 1', '--disabled']);
    expect(add).toEqual({ code: 0, stdout: 'timer weekly added to task nightly-timers\n', stderr: '' });
    const again = await h.kiln(['task', 'timer', 'add', 'nightly-timers', '--timer-name', 'weekly', '--schedule', '0 5 * * 1']);
    expect(again).toEqual({ code: 1, stdout: '', stderr: 'kiln: task nightly-timers already has a timer weekly (change it with kiln task timer update)\n' });

    const change = await h.kiln(['task', 'timer', 'update', 'nightly-timers', '--timer-name', 't1', '--schedule', '15 3 * * *', '-o', 'json']);
    expect(change.code).toBe(0);
    expect(JSON.parse(change.stdout)).toEqual({ name: 't1', schedule: '15 3 * * *', timezone: 'Europe/Paris', enabled: true });
    const missing = await h.kiln(['task', 'timer', 'update', 'nightly-timers', '--timer-name', 'nope', '--enabled']);
    expect(missing).toEqual({ code: 1, stdout: '', stderr: 'kiln: task nightly-timers has no timer nope (add it with kiln task timer add)\n' });
    const badCron = await h.kiln(['task', 'timer', 'update', 'nightly-timers', '--timer-name', 't2', '--schedule', 'not a cron']);
    expect(badCron.code).toBe(2);
    expect(badCron.stderr).toMatch(new RegExp(`^kiln: server ${h.url}: 400 Bad Request: timer t2: .+\n$`));

    // --schedule on an update sets t1 and keeps the rest, weekly's `enabled` included.
    expect((await h.kiln(['task', 'update', 'nightly-timers', '--schedule', '0 2 * * *'])).code).toBe(0);
    const list = await h.kiln(['task', 'timer', 'list', 'nightly-timers']);
    expect(list).toEqual({
      code: 0,
      stdout:
        'NAME    SCHEDULE    TIMEZONE      ENABLED  NEXT (UTC)\n' +
        `t1      0 2 * * *   Europe/Paris  yes      ${TIMER_NEXT.slice(0, 19).replace('T', ' ')}\n` +
        `t2      30 * * * *  Europe/Paris  yes      ${TIMER_NEXT.slice(0, 19).replace('T', ' ')}\n` +
        'weekly  0 4 * * 1   UTC           no       -\n',
      stderr: '',
    });
    expect(JSON.parse((await h.kiln(['task', 'timer', 'list', 'nightly-timers', '-o', 'json'])).stdout)).toEqual({
      items: [
        { name: 't1', schedule: '0 2 * * *', timezone: 'Europe/Paris', enabled: true, next: TIMER_NEXT },
        { name: 't2', schedule: '30 * * * *', timezone: 'Europe/Paris', enabled: true, next: TIMER_NEXT },
        { name: 'weekly', schedule: '0 4 * * 1', timezone: 'UTC', enabled: false, next: null },
      ],
    });

    expect(await h.kiln(['task', 'timer', 'remove', 'nightly-timers', '--timer-name', 't2'])).toEqual({ code: 0, stdout: 'timer t2 removed from task nightly-timers\n', stderr: '' });
    expect(await h.kiln(['task', 'timer', 'remove', 'nightly-timers', '--timer-name', 't2'])).toEqual({
      code: 1,
      stdout: '',
      stderr: `kiln: server ${h.url}: 404 Not Found: task nightly-timers has no timer t2\n`,
    });
    expect((await timers()).map((t) => t.name)).toEqual(['t1', 'weekly']);
    await h.kiln(['task', 'delete', 'nightly-timers']);
  });

  it('shows what a task builds from and pushes, and which tasks build from an image', async () => {
    expect((await h.kiln(['task', 'create', 'app', '-f', taskFile()])).code).toBe(0);
    const digest = `sha256:${'b'.repeat(64)}`;
    const image = (repository: string, tag: string, d = ''): { registry: string; repository: string; tag: string; digest: string; reference: string } => ({
      registry: '127.0.0.1:5000',
      repository,
      tag,
      digest: d,
      reference: `127.0.0.1:5000/${repository}:${tag}`,
    });
    await h.triggers.dependencies.record('app', 'k42', [{ image: image('app', 'k42'), 'runtime-dependency': image('base', '1', digest), 'buildtime-dependency': [image('builder', '2')] }], new Date());

    const deps = await h.kiln(['task', 'dependencies', 'app']);
    expect(deps.code).toBe(0);
    expect(deps.stdout.split('\n')).toEqual([
      expect.stringMatching(/^IMAGE +KIND +DIGEST +RUN$/),
      expect.stringMatching(new RegExp(`^127\\.0\\.0\\.1:5000/base:1 +runtime +${digest} +k42$`)),
      expect.stringMatching(/^127\.0\.0\.1:5000\/builder:2 +buildtime +- +k42$/),
      '',
      'OUTPUT',
      '127.0.0.1:5000/app:k42',
      '',
    ]);
    const json = JSON.parse((await h.kiln(['task', 'dependencies', 'app', '-o', 'json'])).stdout) as { task: string; outputs: string[] };
    expect(json).toMatchObject({ task: 'app', outputs: ['127.0.0.1:5000/app:k42'] });

    const dependents = await h.kiln(['task', 'dependents', '--image', '127.0.0.1:5000/base:1']);
    expect(dependents.code).toBe(0);
    expect(dependents.stdout).toMatch(new RegExp(`^TASK +KIND +DIGEST +RUN\napp +runtime +${digest} +k42\n$`));
    expect(JSON.parse((await h.kiln(['task', 'dependents', '--image', '127.0.0.1:5000/base:1', '-o', 'json'])).stdout)).toMatchObject({
      image: '127.0.0.1:5000/base:1',
      dependents: [{ task: 'app', kind: 'runtime', digest, runId: 'k42' }],
    });
    expect(await h.kiln(['task', 'dependencies', 'nope'])).toEqual({ code: 1, stdout: '', stderr: `kiln: server ${h.url}: 404 Not Found: no task nope\n` });
    await h.kiln(['task', 'delete', 'app']);
  });

  it('lists the trigger decisions, filtered, a page at a time', async () => {
    await h.triggers.decisions.append({ source: 'webhook', task: 'events-web', action: 'ignored', reason: 'branch feature/x does not match main', details: { provider: 'github' } });
    await h.triggers.decisions.append({ source: 'timer', task: 'events-web', action: 'started', runId: 'k9', reason: 'timer t1', details: {} });
    await h.triggers.decisions.append({ source: 'registry', action: 'ignored', reason: 'no task depends on it', details: {} });

    const all = await h.kiln(['triggers', 'events', '--task', 'events-web']);
    expect(all.code).toBe(0);
    const rows = all.stdout.trimEnd().split('\n');
    expect(rows[0]).toMatch(/^AT \(UTC\) +SOURCE +TASK +ACTION +RUN +REASON$/);
    expect(rows.slice(1)).toEqual([
      expect.stringMatching(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +timer +events-web +started +k9 +timer t1$/),
      expect.stringMatching(/ +webhook +events-web +ignored +- +branch feature\/x does not match main$/),
    ]);

    const page = await h.kiln(['triggers', 'events', '--task', 'events-web', '--limit', '1']);
    expect(page.stdout.trimEnd().split('\n')).toHaveLength(2);
    const cursor = /^kiln: more events: add --cursor (\S+)\n$/.exec(page.stderr)?.[1];
    expect(cursor).toBeDefined();
    const next = JSON.parse((await h.kiln(['triggers', 'events', '--task', 'events-web', '--cursor', String(cursor), '-o', 'json'])).stdout) as { items: { reason: string }[] };
    expect(next.items.map((e) => e.reason)).toEqual(['branch feature/x does not match main']);

    const filtered = JSON.parse((await h.kiln(['triggers', 'events', '--source', 'registry', '--action', 'ignored', '-o', 'json'])).stdout) as { items: { source: string }[] };
    expect(filtered.items.map((e) => e.source)).toEqual(['registry']);
    const bad = await h.kiln(['triggers', 'events', '--source', 'github']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("error: option '--source <source>' argument 'github' is invalid. Allowed choices are webhook, registry, poll, timer.");
  });
});

describe('kiln token and authentication', () => {
  it('creates a token that works, lists it, and revokes it', async () => {
    const created = await h.kiln(['token', 'create', '--role', 'reader', '--name', 'ci']);
    expect(created.code).toBe(0);
    const token = created.stdout.trim();
    expect(token).toMatch(/^kiln_/);
    expect(created.stderr).toMatch(/^kiln: token t[0-9a-f]+ \(reader, "ci"\): keep it now, it is not shown again\n$/);

    const asReader = await h.kiln(['runs', 'list'], { env: { KILN_TOKEN: token } });
    expect(asReader.code).toBe(0);
    const forbidden = await h.kiln(['run', '--server', h.url, '-f', taskFile(), '--no-wait', '--token', token]);
    expect(forbidden).toEqual({ code: 1, stdout: '', stderr: `kiln: server ${h.url}: 403 Forbidden: this needs the runner role; the token has reader\n` });

    const list = JSON.parse((await h.kiln(['token', 'list', '-o', 'json'])).stdout) as { id: string; name: string }[];
    const id = list.find((t) => t.name === 'ci')?.id;
    expect(id).toBeDefined();
    expect(await h.kiln(['token', 'delete', String(id)])).toEqual({ code: 0, stdout: `token ${id} revoked\n`, stderr: '' });
    const revoked = await h.kiln(['runs', 'list'], { env: { KILN_TOKEN: token } });
    expect(revoked.code).toBe(1);
  });

  it('a wrong token: one line naming the server and the reason, exit 1', async () => {
    const r = await h.kiln(['runs', 'list', '--token', 'not-a-token']);
    expect(r).toEqual({ code: 1, stdout: '', stderr: `kiln: server ${h.url}: 401 Unauthorized: the token is not valid\n` });
  });

  it('a server that is not there: one line, exit 1; no server at all: exit 2', async () => {
    const proxy = await startProxy(h.url);
    const url = proxy.url;
    await proxy.close();
    const r = await h.kiln(['runs', 'list', '--server', url]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`kiln: server ${url}: cannot connect: connect ECONNREFUSED ${url.replace('http://', '')}\n`);
    const none = await h.kiln(['runs', 'list'], { env: { KILN_SERVER: '' } });
    expect(none).toEqual({ code: 2, stdout: '', stderr: 'kiln: no server: pass --server URL or set KILN_SERVER\n' });
  });
});

