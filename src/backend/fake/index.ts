export { FakeBackend, type FakeAttempt, type FakeCall, type FakeBackendOptions } from './fake-backend';
