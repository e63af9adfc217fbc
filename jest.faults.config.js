/**
 * The fault suite (test/faults, RELIABILITY.md section 5): real processes killed, stopped and
 * restarted, so its cases run one at a time, after the other tests (`npm test` runs both).
 */
/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test/faults'],
  testMatch: ['**/*.fault.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json' }] },
  maxWorkers: 1,
  globalSetup: '<rootDir>/test/faults/setup.js',
  globalTeardown: '<rootDir>/test/faults/teardown.js',
  reporters: ['default', '<rootDir>/test/summary-reporter.js'],
};
