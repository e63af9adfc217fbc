/** Deletes every key under `prefix:` (SCAN, never KEYS): what a test left in the shared Redis. */
export { deleteKeys } from '../../bench/shared';
