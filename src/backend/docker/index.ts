/** The Docker Engine backend: the only code in Kiln that talks to dockerode. */
export { DockerBackend, type BackendLogger, type DockerBackendOptions } from './docker-backend';
export { HELPER_IMAGE } from './helper';
export { SandboxPool, type SandboxPoolOptions } from './sandbox-pool';
export {
  authConfigFor,
  containerName,
  dockerConfigJson,
  networkName,
  registryConfig,
  runLabels,
  toBuildOptions,
  toCreateOptions,
  toPortConfig,
  type BuildOptions,
  type ContainerSpec,
  type CreateOptions,
} from './convert';
export { LineSplitter, LogDemuxer, ProgressStreamError, demuxLines, readProgress, type ProgressMessage } from './streams';
