/** How Engine and registry failures are classified (the step's fault or the engine's; worth a retry or not). */
import { BackendError } from '../../../src/backend/types';
import {
  classifyRegistryFailure,
  engineMessage,
  wrapEngineError,
  wrapRegistryError,
  wrapStepError,
} from '../../../src/backend/docker/errors';
import { ProgressStreamError } from '../../../src/backend/docker/streams';

/** An error as docker-modem makes it. */
function modemError(status: number, message: string): Error {
  return Object.assign(new Error(`(HTTP code ${status}) server error - ${message} `), { statusCode: status, json: { message } });
}

function socketError(code: string): Error {
  return Object.assign(new Error(`connect ${code} /var/run/docker.sock`), { code });
}

test.each([
  // [registry message, classification]
  ['unauthorized: authentication required', 'denied'],
  ['denied: requested access to the resource is denied', 'denied'],
  ['manifest for 127.0.0.1:5000/nope:1 not found: manifest unknown: manifest unknown', 'not-found'],
  ['pull access denied for nope, repository does not exist or may require \'docker login\'', 'denied'],
  ['Get "http://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: connection refused', 'unreachable'],
  ['Get "https://r.example/v2/": net/http: request canceled while waiting for connection (Client.Timeout exceeded while awaiting headers)', 'unreachable'],
  ['received unexpected HTTP status: 503 Service Unavailable', 'unreachable'],
  ['toomanyrequests: You have reached your pull rate limit', 'unreachable'],
  ['Get "https://nowhere.invalid/v2/": dial tcp: lookup nowhere.invalid: no such host', 'unreachable'],
  ['something else entirely', 'other'],
])('classifyRegistryFailure(%s) = %s', (message, expected) => {
  expect(classifyRegistryFailure(message)).toBe(expected);
});

test.each([
  // [what failed, action, infrastructure, transient, message fragment]
  [modemError(404, 'manifest for 127.0.0.1:5000/nope:1 not found: manifest unknown'), 'pull', false, false, 'image "127.0.0.1:5000/nope:1" not found in its registry'],
  [new ProgressStreamError('unauthorized: authentication required'), 'push', false, false, 'refused by its registry'],
  [modemError(500, 'Get "http://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: connection refused'), 'pull', false, true, 'unreachable'],
  [new ProgressStreamError('write /var/lib/docker/tmp/x: no space left on device'), 'pull', true, false, 'no space left'],
  [socketError('ECONNREFUSED'), 'push', true, true, 'Docker Engine not reachable'],
  [socketError('ENOENT'), 'pull', true, true, 'Docker Engine not reachable'],
] as const)('wrapRegistryError(%s, %s)', (err, action, infrastructure, transient, fragment) => {
  const wrapped = wrapRegistryError(err, action, '127.0.0.1:5000/nope:1');
  expect(wrapped).toBeInstanceOf(BackendError);
  expect(wrapped).toMatchObject({ infrastructure, transient });
  expect(wrapped.message).toContain(fragment);
  expect((wrapped as BackendError).cause).toBe(err);
});

test.each([
  // [error, infrastructure]
  [modemError(400, 'invalid reference format'), false],
  [modemError(404, 'No such container: x'), false],
  [modemError(500, 'failed to create task: containerd unavailable'), true],
  [socketError('ECONNREFUSED'), true],
])('wrapEngineError(%s)', (err, infrastructure) => {
  expect(wrapEngineError(err, 'doing it')).toMatchObject({ infrastructure });
});

test.each([
  // [error, infrastructure]: the engine answers 500 to many a bad request of a step
  [modemError(500, 'Cannot mkdir: /etc/passwd is not a directory'), false],
  [modemError(500, 'driver failed programming external connectivity: bind: address already in use'), false],
  [modemError(500, 'mkdir /var/lib/docker/overlay2/x: no space left on device'), true],
  [socketError('ECONNRESET'), true],
])('wrapStepError(%s)', (err, infrastructure) => {
  expect(wrapStepError(err, 'creating it')).toMatchObject({ infrastructure });
});

test('an error is wrapped once', () => {
  const once = wrapEngineError(modemError(500, 'boom'), 'first');
  expect(wrapEngineError(once, 'second')).toBe(once);
  const aborted = Object.assign(new Error('aborted'), { name: 'AbortError' });
  expect(wrapRegistryError(aborted, 'push', 'x')).toBe(aborted);
});

test('engineMessage strips docker-modem\'s prefix', () => {
  expect(engineMessage(new Error('(HTTP code 409) unexpected - removal of container x is already in progress '))).toBe(
    'removal of container x is already in progress',
  );
  expect(engineMessage(modemError(404, 'No such image: a'))).toBe('No such image: a');
});
