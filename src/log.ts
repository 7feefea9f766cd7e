import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Creates the process's one root logger. Called once by the CLI; everything else receives a
 * logger (or a child of it) explicitly, so no module logs as an import side effect.
 */
export function createRootLogger(options: { level: string; role: string; pretty?: boolean }): Logger {
  return pino({
    level: options.level,
    base: { role: options.role, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}

/** A logger that discards everything, for tests and library callers that do not care. */
export const silentLogger: Logger = pino({ level: 'silent' });
