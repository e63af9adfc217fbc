import type { ValidateFunction } from 'ajv';

/** The task schema's validator, compiled ahead of time (scripts/generate-schema-validator.js). */
declare const validate: ValidateFunction;
export default validate;
