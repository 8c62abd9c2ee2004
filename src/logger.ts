import pino, { type Logger } from 'pino';

/** The process logger: JSON lines on stdout, one field set for every line. */
export function createLogger(level: string, base: Record<string, string> = {}): Logger {
  return pino({
    level,
    base: { service: 'swap-service', ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}
