/** A pino-compatible logger (the subset the Docker backend uses). */
export interface BackendLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export const noopLogger: BackendLogger = { info: () => undefined, warn: () => undefined, debug: () => undefined };
