export * from './status';
export * from './run-context';
export * from './task';
export * from './plan';
export * from './image-ref';
export * from './run-result';
export * from './run-record';
export * from './trigger';
