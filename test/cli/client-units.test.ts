import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import busboy from 'busboy';
import { Command, CommanderError } from 'commander';
import { applyTriggerEdit, parseBool, readTriggerFlags, storedTriggers, taskSettings, type TriggerFlags } from '../../src/cli/client/commands';
import { encodeMultipart } from '../../src/cli/client/multipart';
import { sseEvents } from '../../src/cli/client/sse';
import {
  formatDependencies,
  formatDependentsTable,
  formatDuration,
  formatRunsTable,
  formatTable,
  formatTaskDetails,
  formatTasksTable,
  formatTime,
  formatTimersTable,
  formatTriggerEventsTable,
  makeLinePrinter,
} from '../../src/cli/client/format';
import type { RunDocument } from '../../src/domain/run-record';
import type { TaskTriggers } from '../../src/domain/trigger';
import type { SavedTask } from '../../src/runs/store';
import type { TriggersInput } from '../../src/triggers/settings';
import { sink } from '../helpers/streams';

/**
 * The pieces of the API client that need no server: the upload encoder, the SSE reader, the
 * trigger flags (as commander parses them) and the triggers they send, the tables.
 */

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

/** Parses a body with busboy (what the server uses), keeping fields and a digest of each file. */
function parseMultipart(contentType: string, body: AsyncIterable<Uint8Array>): Promise<{ fields: [string, string][]; files: { name: string; filename: string; mimeType: string; bytes: number; sha256: string }[] }> {
  return new Promise((resolve, reject) => {
    const parser = busboy({ headers: { 'content-type': contentType }, limits: { fieldSize: 8 * 1024 * 1024 } });
    const fields: [string, string][] = [];
    const files: { name: string; filename: string; mimeType: string; bytes: number; sha256: string }[] = [];
    parser.on('field', (name, value) => fields.push([name, value]));
    parser.on('file', (name, stream, info) => {
      const hash = createHash('sha256');
      let bytes = 0;
      stream.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        hash.update(chunk);
      });
      stream.on('end', () => files.push({ name, filename: info.filename ?? '', mimeType: info.mimeType, bytes, sha256: hash.digest('hex') }));
    });
    parser.on('close', () => resolve({ fields, files }));
    parser.on('error', reject);
    Readable.from(body).pipe(parser);
  });
}

/** `count` chunks of `size` bytes, generated on demand; counts how many were pulled. */
function chunks(count: number, size: number): { stream: AsyncIterable<Uint8Array>; pulled: () => number; sha256: string } {
  let pulled = 0;
  const hash = createHash('sha256');
  for (let i = 0; i < count; i++) hash.update(Buffer.alloc(size, i % 251));
  return {
    stream: (async function* () {
      for (let i = 0; i < count; i++) {
        pulled++;
        yield Buffer.alloc(size, i % 251);
      }
    })(),
    pulled: () => pulled,
    sha256: hash.digest('hex'),
  };
}

describe('encodeMultipart', () => {
  it('encodes fields first, then the file, as busboy reads them back byte for byte', async () => {
    const file = chunks(50, 64 * 1024);
    const task = 'version: v1.1.0\nsteps:\n  - cmd: busybox echo "hi" \r\n\n';
    const encoded = encodeMultipart([
      { name: 'context', filename: 'context.tar.gz', contentType: 'application/gzip', content: file.stream },
      { name: 'task', value: task },
      { name: 'values', value: JSON.stringify({ a: 'é ü' }) },
      { name: 'we"ird\nname', value: '' },
    ]);
    expect(encoded.contentType).toMatch(/^multipart\/form-data; boundary=----kiln-[0-9a-f]{32}$/);
    const parsed = await parseMultipart(encoded.contentType, encoded.body);
    expect(parsed.fields).toEqual([
      ['task', task],
      ['values', '{"a":"é ü"}'],
      ['we%22ird%0Aname', ''],
    ]);
    expect(parsed.files).toEqual([{ name: 'context', filename: 'context.tar.gz', mimeType: 'application/gzip', bytes: 50 * 64 * 1024, sha256: file.sha256 }]);
  });

  it('streams the file: it is read only as the body is consumed', async () => {
    const file = chunks(1000, 1024);
    const encoded = encodeMultipart([{ name: 'context', filename: 'c.tar', contentType: 'application/x-tar', content: file.stream }]);
    const iterator = encoded.body[Symbol.asyncIterator]();
    await iterator.next(); // the part's head
    await iterator.next(); // the first chunk
    expect(file.pulled()).toBe(1);
    await iterator.return?.();
  });

  it("ends the body with the file's error", async () => {
    const failing = (async function* () {
      yield Buffer.from('tar bytes');
      throw new Error('cannot read secret.key');
    })();
    const encoded = encodeMultipart([{ name: 'context', filename: 'c.tar', contentType: 'application/x-tar', content: failing }]);
    await expect(collect(encoded.body)).rejects.toThrow('cannot read secret.key');
  });

  it('rejects a boundary that is not allowed', () => {
    expect(() => encodeMultipart([], 'has space')).toThrow(/invalid multipart boundary/);
  });
});

describe('sseEvents', () => {
  /** The text cut at every given offset, as a network might. */
  const cut = (text: string, at: number[]): AsyncIterable<Uint8Array> =>
    (async function* () {
      const bytes = Buffer.from(text, 'utf8');
      let from = 0;
      for (const to of [...at, bytes.length]) {
        yield bytes.subarray(from, to);
        from = to;
      }
    })();

  const stream =
    ': connected\n\n' +
    'id: 1-0\nevent: line\ndata: {"step":"build","stream":"stdout","line":"héllo"}\n\n' +
    ': heartbeat\n\n' +
    'id: 1-1\r\nevent: line\r\ndata: {"step":"build","stream":"stderr","line":"a: b"}\r\n\r\n' +
    'event: end\ndata: {"status":"Succeeded"}\n\n';

  const expected = [
    { id: '1-0', event: 'line', data: '{"step":"build","stream":"stdout","line":"héllo"}' },
    { id: '1-1', event: 'line', data: '{"step":"build","stream":"stderr","line":"a: b"}' },
    { id: undefined, event: 'end', data: '{"status":"Succeeded"}' },
  ];

  it('yields the events in order and drops comments', async () => {
    expect(await collect(sseEvents(cut(stream, [])))).toEqual(expected);
  });

  it('reassembles events split anywhere, even inside a UTF-8 character', async () => {
    const bytes = Buffer.byteLength(stream);
    for (let at = 1; at < bytes; at++) {
      expect(await collect(sseEvents(cut(stream, [at])))).toEqual(expected);
    }
    const everyByte = Array.from({ length: bytes - 1 }, (_, i) => i + 1);
    expect(await collect(sseEvents(cut(stream, everyByte)))).toEqual(expected);
  });

  it('never yields an event cut off by a dropped connection', async () => {
    const partial = 'id: 1-0\nevent: line\ndata: {"step":"a","line":"x"}\n\nid: 1-1\nevent: line\ndata: {"step":"a","li';
    expect(await collect(sseEvents(cut(partial, [])))).toEqual([{ id: '1-0', event: 'line', data: '{"step":"a","line":"x"}' }]);
  });

  it('joins multi-line data', async () => {
    expect(await collect(sseEvents(cut('data: a\ndata: b\n\n', [])))).toEqual([{ id: undefined, event: undefined, data: 'a\nb' }]);
  });
});

describe('tables', () => {
  const now = new Date('2026-05-01T12:10:00Z');
  const run = (over: Partial<RunDocument>): RunDocument => ({
    runId: 'k1',
    status: 'Queued',
    createdAt: '2026-05-01T12:00:00.123Z',
    startedAt: null,
    finishedAt: null,
    steps: [],
    outputImages: [],
    dependencies: [],
    task: null,
    trigger: { type: 'Manual' },
    platform: 'linux/amd64',
    pool: 'default',
    queueTtl: 3600,
    attempt: 0,
    worker: null,
    ...over,
  });

  it('pads each column to its widest cell and trims the line ends', () => {
    expect(formatTable(['A', 'LONG HEADER', 'C'], [['xxxx', 'y', ''], ['z', '', 'w']])).toBe('A     LONG HEADER  C\nxxxx  y\nz                  w\n');
  });

  it('lists runs with id, status, task, trigger, created and duration', () => {
    const text = formatRunsTable(
      [
        run({ runId: 'k12', status: 'Running', task: 'nightly', trigger: { type: 'Timer', timer: 't1', schedule: '0 3 * * *', timezone: 'UTC', scheduledFor: '2026-05-01T12:00:00Z' }, startedAt: '2026-05-01T12:05:55Z' }),
        run({ runId: 'k3', status: 'Succeeded', startedAt: '2026-05-01T12:00:01Z', finishedAt: '2026-05-01T12:00:03.5Z' }),
        run({ runId: 'k2' }),
      ],
      now,
    );
    expect(text.split('\n')).toEqual([
      'RUN  STATUS     TASK     TRIGGER  CREATED (UTC)        DURATION',
      'k12  Running    nightly  Timer    2026-05-01 12:00:00  4m05s',
      'k3   Succeeded  -        Manual   2026-05-01 12:00:00  2.5s',
      'k2   Queued     -        Manual   2026-05-01 12:00:00  -',
      '',
    ]);
  });

  it('formats durations and times', () => {
    expect(formatDuration('2026-05-01T00:00:00Z', '2026-05-01T00:00:00.4Z', now)).toBe('0.4s');
    expect(formatDuration('2026-05-01T00:00:00Z', '2026-05-01T02:03:59Z', now)).toBe('2h03m');
    expect(formatDuration(null, null, now)).toBe('-');
    expect(formatTime('2026-05-01T12:00:00+02:00')).toBe('2026-05-01 10:00:00');
    expect(formatTime(null)).toBe('-');
  });

  it('prefixes log lines with the step id, widening the column for longer ids', () => {
    const out = sink();
    const print = makeLinePrinter(out.stream);
    print('a', 'one');
    print('build-image', 'two');
    print('a', 'three');
    expect(out.text()).toBe('a    | one\nbuild-image | two\na           | three\n');
  });
});

describe('trigger flags', () => {
  const SECRET = 'a-webhook-secret-0123';

  /** `kiln task create|update` flags as commander parses them. */
  function flagsOf(argv: string[]): TriggerFlags {
    const cmd = taskSettings(new Command('create'))
      .exitOverride()
      .configureOutput({ writeErr: () => undefined });
    cmd.parse(argv, { from: 'user' });
    return cmd.opts<TriggerFlags>();
  }

  /** The triggers a request sends for these flags on top of `base`. */
  function triggersFor(argv: string[], base?: TriggersInput, env: NodeJS.ProcessEnv = {}): TriggersInput | undefined {
    const { edit, problems } = readTriggerFlags(flagsOf(argv), env);
    expect(problems).toEqual([]);
    return applyTriggerEdit(base, edit);
  }

  /** What the server stores for a task with context https://example.com/web.git#main. */
  const stored = (): TaskTriggers => ({
    source: { enabled: true, events: ['commit'], branch: 'main', paths: { include: ['**'], exclude: ['docs/**'] }, pollInterval: 60 },
    baseImage: { enabled: true, type: 'Runtime', pollInterval: 0 },
    timers: [
      { name: 't1', schedule: '0 3 * * *', timezone: 'Asia/Tokyo', enabled: false },
      { name: 'weekly', schedule: '0 4 * * 1', timezone: 'UTC', enabled: true },
    ],
  });

  it('sends no triggers without trigger flags (the server fills the defaults), and keeps a --triggers file as it is', () => {
    expect(triggersFor(['-f', 'acb.yaml', '--timeout', '600'])).toBeUndefined();
    const file: TriggersInput = { baseImage: { enabled: false } };
    expect(triggersFor([], file)).toBe(file);
  });

  it('maps every trigger flag to its field', () => {
    const argv = [
      '--pull-request-trigger-enabled',
      '--branch', 'release/*',
      '--include-path', 'src/**', '--include-path', 'lib/**',
      '--exclude-path', 'docs/**',
      '--webhook-secret', SECRET,
      '--git-poll-interval', '60',
      '--base-image-trigger-enabled', 'true',
      '--base-image-trigger-type', 'All',
      '--base-image-poll-interval', '0',
      '--schedule', '0 3 * * *', '--schedule', '*/15 * * * *',
      '--timezone', 'Europe/Paris',
    ];
    expect(triggersFor(argv)).toEqual({
      source: { enabled: true, events: ['commit', 'pullrequest'], branch: 'release/*', paths: { include: ['src/**', 'lib/**'], exclude: ['docs/**'] }, webhookSecret: SECRET, pollInterval: 60 },
      baseImage: { enabled: true, type: 'All', pollInterval: 0 },
      timers: [
        { name: 't1', schedule: '0 3 * * *', timezone: 'Europe/Paris' },
        { name: 't2', schedule: '*/15 * * * *', timezone: 'Europe/Paris' },
      ],
    });
  });

  it('turns source events on and off; the source trigger is on exactly when an event is left', () => {
    expect(triggersFor(['--commit-trigger-enabled', 'false'])).toEqual({ source: { enabled: false } });
    expect(triggersFor(['--commit-trigger-enabled=false', '--pull-request-trigger-enabled', 'TRUE'])).toEqual({ source: { enabled: true, events: ['pullrequest'] } });
    // A source trigger that is off has no events on: turning one on turns on that one only.
    const off: TriggersInput = { source: { enabled: false, events: ['commit'] } };
    expect(triggersFor(['--pull-request-trigger-enabled'], off)).toEqual({ source: { enabled: true, events: ['pullrequest'] } });
  });

  it('on an update, changes only what the flags name', () => {
    const result = triggersFor(['--base-image-trigger-enabled', 'false', '--schedule', '5 4 * * *', '--exclude-path', 'test/**'], storedTriggers(stored(), undefined, undefined));
    const expected = stored();
    expected.baseImage.enabled = false;
    expected.source.paths.exclude = ['test/**'];
    // t1 gets the new schedule and keeps its time zone and its `enabled`; the other timer stays.
    expected.timers[0].schedule = '5 4 * * *';
    expect(result).toEqual(expected);
  });

  it('adds the timers t1, t2... that a task does not have yet', () => {
    const result = triggersFor(['--schedule', '1 1 * * *', '--schedule', '2 2 * * *'], { timers: [{ name: 't1', schedule: '0 0 * * *', enabled: false }] });
    expect(result?.timers).toEqual([
      { name: 't1', schedule: '1 1 * * *', enabled: false },
      { name: 't2', schedule: '2 2 * * *' },
    ]);
  });

  it('lets the server derive the context defaults again when an update changes the context', () => {
    const moved = storedTriggers(stored(), 'https://example.com/web.git#main', 'https://example.com/web.git#dev:app');
    expect(moved.source).toEqual({ events: ['commit'], paths: { exclude: ['docs/**'] }, pollInterval: 60 });
    expect(moved.timers).toEqual(stored().timers);
    // Settings that are not the old context's defaults stay.
    const own = stored();
    own.source.branch = 'release/*';
    own.source.enabled = false;
    expect(storedTriggers(own, 'https://example.com/web.git#main', 'https://example.com/web.git#dev').source).toMatchObject({ enabled: false, branch: 'release/*' });
    expect(storedTriggers(stored(), 'https://example.com/web.git#main', 'https://example.com/web.git#main')).toEqual(stored());
  });

  it('reads the webhook secret from the flag or, without a value, from $KILN_WEBHOOK_SECRET', () => {
    expect(triggersFor(['--webhook-secret'], undefined, { KILN_WEBHOOK_SECRET: SECRET })).toEqual({ source: { webhookSecret: SECRET } });
    expect(readTriggerFlags(flagsOf(['--webhook-secret']), {}).problems).toEqual(['kiln: --webhook-secret without a value takes $KILN_WEBHOOK_SECRET, which is not set']);
    expect(readTriggerFlags(flagsOf(['--webhook-secret', 'short']), {}).problems).toEqual(['kiln: the webhook secret must have 16 to 256 characters, not 5']);
  });

  it('refuses --timezone without --schedule', () => {
    expect(readTriggerFlags(flagsOf(['--timezone', 'UTC']), {}).problems).toEqual([
      'kiln: --timezone goes with --schedule (one timer: kiln task timer update NAME --timer-name T --timezone TZ)',
    ]);
  });

  it('refuses values that are not booleans, poll intervals or trigger types, naming the flag', () => {
    const refusal = (argv: string[]): string => {
      try {
        flagsOf(argv);
      } catch (err) {
        if (err instanceof CommanderError) return err.message;
        throw err;
      }
      throw new Error(`${argv.join(' ')} was accepted`);
    };
    expect(refusal(['--commit-trigger-enabled', 'yes'])).toBe("error: option '--commit-trigger-enabled [bool]' argument 'yes' is invalid. must be true or false (or no value, for true)");
    expect(refusal(['--git-poll-interval', '1'])).toBe("error: option '--git-poll-interval <seconds>' argument '1' is invalid. must be 0 (off) or 2 to 86400 seconds");
    expect(refusal(['--base-image-poll-interval', '86401'])).toMatch(/must be 0 \(off\) or 2 to 86400 seconds$/);
    expect(refusal(['--base-image-trigger-type', 'runtime'])).toMatch(/Allowed choices are Runtime, All\.$/);
    expect(parseBool('False')).toBe(false);
  });
});

describe('trigger tables', () => {
  const task = (over: Partial<SavedTask>): SavedTask => ({
    name: 'web',
    context: 'https://example.com/web.git#main',
    file: 'acb.yaml',
    platform: 'linux/amd64',
    pool: 'default',
    timeout: 3600,
    concurrency: 0,
    status: 'Enabled',
    triggers: {
      source: { enabled: true, events: ['commit', 'pullrequest'], branch: 'main', paths: { include: ['**'], exclude: ['docs/**'] }, pollInterval: 60 },
      baseImage: { enabled: true, type: 'All', pollInterval: 0 },
      timers: [
        { name: 't1', schedule: '0 3 * * *', timezone: 'Europe/Paris', enabled: true },
        { name: 'weekly', schedule: '0 4 * * 1', timezone: 'UTC', enabled: false },
      ],
    },
    webhookSecretSet: true,
    secretIds: [],
    credentialRegistries: [],
    createdAt: '2026-05-01T12:00:00Z',
    updatedAt: '2026-05-01T12:00:00Z',
    ...over,
  });

  it('kiln task show: the triggers under the settings, with the webhook URL while the source trigger is on', () => {
    const text = formatTaskDetails(task({}), 'http://kiln.example:8080');
    expect(text.split('\n\n')[1].split('\n')).toEqual([
      'source trigger  on: commit, pullrequest',
      'branch          main',
      'paths           include **; exclude docs/**',
      'git poll        every 60s',
      'webhook         POST http://kiln.example:8080/v1/tasks/web/hooks/{github|gitlab|gitea|bitbucket|generic}',
      'webhook secret  set',
      'base image      on: All',
      'image poll      off (registry notifications only)',
      'timers          t1      0 3 * * *  Europe/Paris  enabled',
      '                weekly  0 4 * * 1  UTC           disabled',
      '',
    ]);
    const off = task({ webhookSecretSet: false });
    off.triggers = { ...off.triggers, source: { ...off.triggers.source, enabled: false, pollInterval: 0 }, baseImage: { enabled: false, type: 'Runtime', pollInterval: 300 }, timers: [] };
    const lines = formatTaskDetails(off, 'http://kiln.example:8080').split('\n');
    expect(lines).toEqual(expect.arrayContaining(['source trigger  off', 'git poll        off (webhooks only)', 'webhook secret  not set (webhooks are refused)', 'base image      off', 'image poll      every 300s', 'timers          -']));
    expect(lines.some((l) => /^webhook +POST/.test(l))).toBe(false);
  });

  it('kiln task list: the triggers that are on', () => {
    const lines = formatTasksTable([task({})]).split('\n');
    expect(lines[1]).toBe('web   Enabled  acb.yaml  https://example.com/web.git#main  commit,pullrequest,baseImage,timers(1)  2026-05-01 12:00:00');
  });

  it('kiln task timer list, dependencies, dependents and kiln triggers events', () => {
    expect(
      formatTimersTable([
        { name: 't1', schedule: '0 3 * * *', timezone: 'Europe/Paris', enabled: true, next: '2026-05-02T01:00:00.000Z' },
        { name: 'weekly', schedule: '0 4 * * 1', timezone: 'UTC', enabled: false, next: null },
      ]),
    ).toBe(
      'NAME    SCHEDULE   TIMEZONE      ENABLED  NEXT (UTC)\n' +
        't1      0 3 * * *  Europe/Paris  yes      2026-05-02 01:00:00\n' +
        'weekly  0 4 * * 1  UTC           no       -\n',
    );
    const digest = `sha256:${'a'.repeat(64)}`;
    expect(
      formatDependencies({
        task: 'web',
        baseImages: [
          { image: '127.0.0.1:5000/base:1', kind: 'runtime', digest, runId: 'k7', recordedAt: '2026-05-01T12:00:00Z' },
          { image: 'docker.io/library/golang:1.22', kind: 'buildtime', digest: '', runId: 'k7', recordedAt: '2026-05-01T12:00:00Z' },
        ],
        outputs: ['127.0.0.1:5000/web:k7'],
      }),
    ).toBe(
      'IMAGE                          KIND       DIGEST                                                                   RUN\n' +
        `127.0.0.1:5000/base:1          runtime    ${digest}  k7\n` +
        'docker.io/library/golang:1.22  buildtime  -                                                                        k7\n' +
        '\n' +
        'OUTPUT\n' +
        '127.0.0.1:5000/web:k7\n',
    );
    expect(formatDependentsTable({ image: '127.0.0.1:5000/base:1', dependents: [{ task: 'web', kind: 'runtime', digest, runId: 'k7', recordedAt: '2026-05-01T12:00:00Z' }] })).toBe(
      `TASK  KIND     DIGEST${' '.repeat(digest.length - 'DIGEST'.length + 2)}RUN\nweb   runtime  ${digest}  k7\n`,
    );
    expect(
      formatTriggerEventsTable([
        { id: '2-0', at: '2026-05-01T12:00:05Z', source: 'webhook', task: 'web', action: 'started', runId: 'k8', reason: 'push to main', details: {} },
        { id: '1-0', at: '2026-05-01T12:00:00Z', source: 'registry', action: 'ignored', reason: 'no task depends on it', details: {} },
      ]),
    ).toBe(
      'AT (UTC)             SOURCE    TASK  ACTION   RUN  REASON\n' +
        '2026-05-01 12:00:05  webhook   web   started  k8   push to main\n' +
        '2026-05-01 12:00:00  registry  -     ignored  -    no task depends on it\n',
    );
  });
});
