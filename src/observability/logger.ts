import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

/**
 * Paths redacted from every log line, whatever a caller passes in: no password, token or
 * Authorization header ever reaches a log.
 */
export const REDACTED_PATHS = [
  'password',
  '*.password',
  'token',
  '*.token',
  'access_token',
  'refresh_token',
  '*.refresh_token',
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
];

export function createLogger(options: LoggerOptions = {}, destination?: pino.DestinationStream): Logger {
  const merged: LoggerOptions = {
    level: 'info',
    base: { name: 'sts-docker-auth' },
    timestamp: pino.stdTimeFunctions.isoTime,
    ...options,
    redact: { paths: REDACTED_PATHS, censor: '***' },
  };
  return destination ? pino(merged, destination) : pino(merged);
}
