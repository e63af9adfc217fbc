export { createApp, registeredRoutes, OPEN_PATHS, type AppDefaults, type AppDeps } from './app';
export { createMetrics, type KilnMetrics } from './metrics';
export type { BuildRequestBody, RunRequestBody, TaskBody, TaskRunRequestBody, TokenRequestBody } from './schemas';
