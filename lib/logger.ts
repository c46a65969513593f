// One pino logger per process, built in main and passed down; modules take child loggers.
import { pino, type Logger, type Level } from 'pino';

export type { Logger };

export function createLogger(component: string, level: Level = 'info'): Logger {
  return pino({ level, base: { component }, timestamp: pino.stdTimeFunctions.isoTime });
}
