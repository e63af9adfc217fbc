import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import { SOURCE_EVENTS } from '../domain/trigger';
import { POLICIES } from '../runs/policy';
import { ROLES } from '../runs/store';
import type { TriggersInput } from '../triggers/settings';
import { HttpError } from './problem';

/**
 * JSON Schemas of the request bodies, compiled once. Every object is closed
 * (additionalProperties: false) and every string and list is bounded (RELIABILITY.md, section 3).
 * schemas/openapi.yaml carries the same schemas; a test keeps the two equal.
 */

export const NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$';
/** The task text cap, in characters here; loadTask enforces the same number in bytes. */
export const MAX_TASK_CHARS = 1024 * 1024;

const name = { type: 'string', pattern: NAME_PATTERN } as const;
const taskText = { type: 'string', minLength: 1, maxLength: MAX_TASK_CHARS } as const;
const registry = { type: 'string', minLength: 1, maxLength: 255, pattern: '^[A-Za-z0-9.-]+(:[0-9]{1,5})?$' } as const;
const timeout = { type: 'integer', minimum: 300, maximum: 28800 } as const;
const context = { type: 'string', minLength: 1, maxLength: 4096 } as const;
const values = { type: 'object', maxProperties: 1000 } as const;
const set = {
  type: 'object',
  maxProperties: 1000,
  propertyNames: { minLength: 1, maxLength: 256 },
  additionalProperties: { type: 'string', maxLength: 65536 },
} as const;
const glob = { type: 'string', minLength: 1, maxLength: 255 } as const;
/** Seconds between polls; 0 = off (settings refuse 1). */
const pollInterval = { type: 'integer', minimum: 0, maximum: 86400 } as const;
const globs = { type: 'array', maxItems: 50, items: glob } as const;
const timer = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'schedule'],
  properties: {
    name,
    schedule: { type: 'string', minLength: 1, maxLength: 100 },
    timezone: { type: 'string', minLength: 1, maxLength: 64 },
    enabled: { type: 'boolean' },
  },
} as const;
const secrets = {
  type: 'object',
  maxProperties: 100,
  propertyNames: { pattern: '^[A-Za-z0-9_.-]{1,128}$' },
  additionalProperties: { type: 'string', maxLength: 65536 },
} as const;
const credentials = {
  type: 'array',
  maxItems: 20,
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['registry', 'username', 'password'],
    properties: {
      registry,
      username: { type: 'string', maxLength: 1024 },
      password: { type: 'string', maxLength: 8192 },
    },
  },
} as const;

export const RUN_REQUEST_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['task'],
  properties: { task: taskText, values, set, secrets, credentials, registry, timeout, context },
} as const;

export const BUILD_REQUEST_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['tags'],
  properties: {
    tags: { type: 'array', minItems: 1, maxItems: 20, items: { type: 'string', minLength: 1, maxLength: 512 } },
    dockerfile: { type: 'string', minLength: 1, maxLength: 1024 },
    buildArgs: {
      type: ['object', 'array'],
      maxProperties: 200,
      additionalProperties: { type: 'string', maxLength: 65536 },
      maxItems: 200,
      items: { type: 'string', pattern: '^[^=]+=', maxLength: 65536 },
    },
    target: { type: 'string', minLength: 1, maxLength: 256 },
    noPush: { type: 'boolean' },
    registry,
    timeout,
    context,
    credentials,
  },
} as const;

export const TASK_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name,
    task: taskText,
    file: { type: 'string', minLength: 1, maxLength: 1024 },
    context,
    values,
    secrets,
    credentials,
    registry,
    platform: { type: 'string', maxLength: 64, pattern: '^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9._-]+)?$' },
    pool: name,
    timeout,
    concurrency: { type: 'integer', minimum: 0, maximum: 1000 },
    status: { enum: ['Enabled', 'Disabled'] },
    policy: { enum: [...POLICIES] },
    limits: {
      type: 'object',
      additionalProperties: false,
      properties: {
        memory: { type: 'string', pattern: '^[0-9]{1,12}[bkmgBKMG]?$' },
        cpus: { type: 'number', exclusiveMinimum: 0, maximum: 1024 },
        pids: { type: 'integer', minimum: 16, maximum: 1048576 },
      },
    },
    triggers: {
      type: 'object',
      additionalProperties: false,
      properties: {
        source: {
          type: 'object',
          additionalProperties: false,
          properties: {
            enabled: { type: 'boolean' },
            events: { type: 'array', maxItems: 2, uniqueItems: true, items: { enum: [...SOURCE_EVENTS] } },
            branch: glob,
            paths: {
              type: 'object',
              additionalProperties: false,
              properties: { include: globs, exclude: globs },
            },
            webhookSecret: { type: 'string', minLength: 16, maxLength: 256 },
            pollInterval,
          },
        },
        baseImage: {
          type: 'object',
          additionalProperties: false,
          properties: {
            enabled: { type: 'boolean' },
            type: { enum: ['Runtime', 'All'] },
            pollInterval,
          },
        },
        timers: { type: 'array', maxItems: 20, items: timer },
      },
    },
  },
} as const;

export const TIMER_REQUEST_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['schedule'],
  properties: { schedule: timer.properties.schedule, timezone: timer.properties.timezone, enabled: timer.properties.enabled },
} as const;

export const TASK_RUN_REQUEST_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: { values, set, secrets, context },
} as const;

export const TOKEN_REQUEST_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'role'],
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 100 },
    role: { enum: [...ROLES] },
  },
} as const;

/** The body schemas by their name in the OpenAPI document's components. */
export const BODY_SCHEMAS = {
  RunRequest: RUN_REQUEST_SCHEMA,
  BuildRequest: BUILD_REQUEST_SCHEMA,
  TaskBody: TASK_SCHEMA,
  TaskRunRequest: TASK_RUN_REQUEST_SCHEMA,
  TimerRequest: TIMER_REQUEST_SCHEMA,
  TokenRequest: TOKEN_REQUEST_SCHEMA,
} as const;

export interface RunRequestBody {
  task: string;
  values?: Record<string, unknown>;
  set?: Record<string, string>;
  secrets?: Record<string, string>;
  credentials?: { registry: string; username: string; password: string }[];
  registry?: string;
  timeout?: number;
  context?: string;
}

export interface BuildRequestBody {
  tags: string[];
  dockerfile?: string;
  buildArgs?: Record<string, string> | string[];
  target?: string;
  noPush?: boolean;
  registry?: string;
  timeout?: number;
  context?: string;
  credentials?: RunRequestBody['credentials'];
}

export interface TaskBody {
  name: string;
  task?: string;
  file?: string;
  context?: string;
  values?: Record<string, unknown>;
  secrets?: Record<string, string>;
  credentials?: { registry: string; username: string; password: string }[];
  registry?: string;
  platform?: string;
  pool?: string;
  timeout?: number;
  concurrency?: number;
  status?: 'Enabled' | 'Disabled';
  policy?: 'trusted' | 'restricted';
  limits?: { memory?: string; cpus?: number; pids?: number };
  triggers?: TriggersInput;
}

export interface TimerRequestBody {
  schedule: string;
  timezone?: string;
  enabled?: boolean;
}

export interface TaskRunRequestBody {
  values?: Record<string, unknown>;
  set?: Record<string, string>;
  secrets?: Record<string, string>;
  context?: string;
}

export interface TokenRequestBody {
  name: string;
  role: (typeof ROLES)[number];
}

// Not allErrors (RELIABILITY.md: a bounded amount of work per request); no $data; no coercion or
// defaults, which would change the body behind the caller's back.
const ajv = new Ajv({ strict: true, allowUnionTypes: true });

export const validators = {
  run: ajv.compile<RunRequestBody>(RUN_REQUEST_SCHEMA),
  build: ajv.compile<BuildRequestBody>(BUILD_REQUEST_SCHEMA),
  task: ajv.compile<TaskBody>(TASK_SCHEMA),
  taskRun: ajv.compile<TaskRunRequestBody>(TASK_RUN_REQUEST_SCHEMA),
  timer: ajv.compile<TimerRequestBody>(TIMER_REQUEST_SCHEMA),
  token: ajv.compile<TokenRequestBody>(TOKEN_REQUEST_SCHEMA),
};

/** The body as `T`, or a 400 naming the first problem. */
export function checkBody<T>(validate: ValidateFunction<T>, body: unknown): T {
  if (validate(body)) return body;
  throw new HttpError(400, describe(validate.errors?.[0]), { type: 'urn:kiln:problem:invalid-body' });
}

function describe(error: ErrorObject | undefined): string {
  if (!error) return 'the body is not valid';
  const where = error.instancePath ? error.instancePath.slice(1).replace(/\//g, '.') : 'the body';
  switch (error.keyword) {
    case 'additionalProperties':
      return `${where}: unknown property "${String(error.params.additionalProperty)}"`;
    case 'required':
      return `${where}: missing property "${String(error.params.missingProperty)}"`;
    case 'propertyNames':
      return `${where}: property name "${String(error.params.propertyName)}" is not allowed`;
    default:
      return `${where} ${error.message ?? 'is not valid'}`;
  }
}
