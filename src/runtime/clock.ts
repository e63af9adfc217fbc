/** Time, passed in so that tests can run the scheduler's waits (delays, timeouts) fast. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms`, or rejects with an AbortError when `signal` aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export function abortError(reason?: unknown): Error {
  const err = new Error(typeof reason === 'string' ? reason : 'aborted');
  err.name = 'AbortError';
  return err;
}

export function isAbortError(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}

function sleepScaled(ms: number, scale: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError());
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms * scale));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) => sleepScaled(ms, 1, signal),
};

/**
 * A clock whose time runs `speedup` times faster than real time: a 5 s retry delay takes 5 ms at
 * 1000x. Durations measured with it are in its own (virtual) milliseconds.
 */
export function fastClock(speedup: number): Clock {
  const origin = Date.now();
  return {
    now: () => origin + (Date.now() - origin) * speedup,
    sleep: (ms, signal) => sleepScaled(ms, 1 / speedup, signal),
  };
}
