/**
 * The API's documents, as the console reads them. The types are the service's own (src/domain,
 * the stores' interfaces): the console shows exactly what the API sends, and a renamed field fails
 * the console's typecheck instead of showing blanks. Only types and constant lists come from
 * there; nothing of the server runs in the browser.
 */
export type { RunDocument } from '../../src/domain/run-record';
export type { StepResult, OutputImage, ImageDependencies, DependencyImage } from '../../src/domain/run-result';
export type { RunStatus, StepStatus } from '../../src/domain/status';
export type { RunTrigger, TriggerType } from '../../src/domain/trigger';
export type { SavedTask, Role } from '../../src/runs/store';
export type { TriggerEvent, TriggerAction, TriggerEventSource, BaseImageDependency } from '../../src/triggers/store';
export { RUN_STATUSES } from '../../src/domain/status';
export { TRIGGER_TYPES } from '../../src/domain/trigger';
export { TRIGGER_ACTIONS, TRIGGER_EVENT_SOURCES } from '../../src/triggers/store';

import type { RunDocument } from '../../src/domain/run-record';
import type { RunStatus } from '../../src/domain/status';
import type { Role } from '../../src/runs/store';
import type { BaseImageDependency, TriggerEvent } from '../../src/triggers/store';

/** A page of a list route: newest first; `next` is the cursor of the following page. */
export interface Page<T> {
  items: T[];
  next?: string | null;
}

export type RunPage = Page<RunDocument>;
export type TriggerEventPage = Page<TriggerEvent>;

/** `GET /v1/whoami`: the token's name and role. */
export interface Whoami {
  name: string | null;
  role: Role;
}

/** `GET /v1/tasks/{name}/dependencies`. */
export interface TaskDependencies {
  task: string;
  baseImages: Omit<BaseImageDependency, 'task'>[];
  outputs: string[];
}

/** 202 of a run submission (`POST /v1/tasks/{name}/runs`, `/v1/runs/{id}/rerun`). */
export interface Accepted {
  runId: string;
  status: RunStatus;
  warnings?: string[];
}

/** `event: run` of `GET /v1/runs/events`. */
export interface RunEvent {
  runId: string;
  status: RunStatus;
  task: string | null;
}

/** `event: line` of a followed log; the SSE `id` is its offset. */
export interface LogLine {
  step: string;
  stream: 'stdout' | 'stderr';
  line: string;
}
