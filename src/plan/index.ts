export { compilePlan, mergeEnv, WORKSPACE, type CompileOptions, type CompileResult, type PlanIssue } from './compile';
export { parseBuildArgs, parseContext, type ParsedBuild } from './build-args';
export { scanDockerfile, type DockerfileDeps, type DockerfileScanOptions, type DockerfileStage } from './dockerfile-deps';
