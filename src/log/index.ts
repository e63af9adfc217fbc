import pino, { type Logger } from 'pino';

export type { Logger };

/** The root logger: JSON lines on stderr (stdout belongs to command output). */
export function createLogger(level = 'info'): Logger {
  return pino({ level, base: undefined }, pino.destination(2));
}
