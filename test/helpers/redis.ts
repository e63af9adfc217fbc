/** Deletes every key under `prefix:` (SCAN, never KEYS): what a test left in the shared Redis. */
export { deleteKeys } from '../../bench/shared';
/** The set-up's Redis on 127.0.0.1:6379, with its password when scripts/services.sh set one. */
export { localRedisOptions, localRedisUrl } from '../../bench/shared';
