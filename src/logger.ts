import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogConfig } from './config/index.js';

export type { Logger } from 'pino';

/**
 * Keys whose values never reach a log line, wherever they appear. Connection strings are
 * logged only through `redactUrl`, so a password cannot leak through them either.
 */
export const REDACTED_PATHS = [
  'password',
  '*.password',
  'token',
  '*.token',
  'secret',
  '*.secret',
  'apiKey',
  '*.apiKey',
  'databaseUrl',
  '*.databaseUrl',
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
];

/**
 * Creates the process logger: JSON lines by default, human-readable when stdout is a
 * terminal (or WARDEN_LOG_FORMAT=pretty). `destination` lets tests capture the output.
 */
export function createLogger(config: LogConfig, destination?: DestinationStream): Logger {
  const pretty =
    config.format === 'pretty' || (config.format === 'auto' && destination === undefined && process.stdout.isTTY);
  const options = {
    level: config.level,
    base: { service: 'warden' },
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (pretty) {
    return pino({
      ...options,
      transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } },
    });
  }
  return destination === undefined ? pino(options) : pino(options, destination);
}
