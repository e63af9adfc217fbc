#!/usr/bin/env node
import { main } from '../cli/main';
import { createLogger } from '../log';
import { localOwner } from '../runs/local-owner';

// The only place that picks concrete classes: the Docker backend (DOCKER_HOST picks the engine).
// It is loaded on first use: dockerode takes ~0.3 s to load, which validate and render never need.
main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  now: () => new Date(),
  cwd: process.cwd(),
  createBackend: async () => {
    const { DockerBackend } = await import('../backend/docker/index.js');
    return new DockerBackend({ logger: createLogger(process.env.KILN_LOG_LEVEL ?? 'warn'), owner: localOwner() });
  },
  startService: async (options) => {
    const { startService } = await import('./service.js');
    return startService(options, process.env, createLogger(process.env.KILN_LOG_LEVEL ?? 'info'));
  },
  untilStopped: () =>
    new Promise((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    }),
  forceExit: (code) => process.exit(code),
  onInterrupt: (handler) => {
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
    return () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    };
  },
}).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`kiln: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
