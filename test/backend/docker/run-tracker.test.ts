/** The in-process bookkeeping that keeps teardown from racing the work of its run. */
import { RunTracker } from '../../../src/backend/docker/run-tracker';

function deferred(): { promise: Promise<void>; resolve(): void; reject(err: Error): void } {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

test('settle waits for tracked work, failed work included, and for work added meanwhile', async () => {
  const runs = new RunTracker();
  const first = deferred();
  const second = deferred();
  runs.track('r', first.promise).catch(() => undefined);
  let settled = false;
  const settling = runs.settle('r').then(() => (settled = true));
  runs.track('r', second.promise);
  first.reject(new Error('create failed'));
  await new Promise((resolve) => setImmediate(resolve));
  expect(settled).toBe(false);
  second.resolve();
  await settling;
  expect(settled).toBe(true);
  await runs.settle('other'); // nothing tracked: at once
});

test('a run being or having been torn down creates nothing; preparing it again reopens it', () => {
  const runs = new RunTracker();
  runs.assertOpen('r', 'creating');
  runs.beginTeardown('r');
  expect(runs.isClosing('r')).toBe(true);
  expect(() => runs.assertOpen('r', 'creating')).toThrow(expect.objectContaining({ name: 'AbortError' }));
  runs.endTeardown('r');
  expect(runs.isClosing('r')).toBe(false);
  expect(() => runs.assertOpen('r', 'creating')).toThrow('run r is being torn down');
  runs.open('r');
  runs.assertOpen('r', 'creating');
});

test('removals are found by container name until they settle', async () => {
  const runs = new RunTracker();
  const removal = deferred();
  runs.trackRemoval('r', 'kiln-r-s-1', removal.promise);
  expect(runs.removalOf('kiln-r-s-1')).toBe(removal.promise);
  removal.resolve();
  await runs.settle('r');
  expect(runs.removalOf('kiln-r-s-1')).toBeUndefined();
});

test('drainStreams gives up after its time', async () => {
  const runs = new RunTracker();
  const stream = deferred();
  runs.trackStream('r', stream.promise);
  expect(await runs.drainStreams('r', 20)).toBe(false);
  const ended = deferred();
  runs.trackStream('r', ended.promise);
  ended.resolve();
  expect(await runs.drainStreams('r', 1000)).toBe(true);
});
