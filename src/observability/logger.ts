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

/**
 * The logger of the audit trail: the same line format as `createLogger` (level, time, name), on
 * `destination` (pass the server log's stream to share stdout and its buffer), but without the
 * redaction pass. Only for lines built from known, secret-free fields (`LogAuditSink`).
 */
export function createAuditLogger(destination: pino.DestinationStream): Logger {
  return pino({ level: 'info', base: { name: 'sts-docker-auth' }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

/** The stream a logger writes to (for `createAuditLogger`, to share it). */
export function streamOf(logger: Logger): pino.DestinationStream {
  return (logger as unknown as Record<symbol, pino.DestinationStream>)[pino.symbols.streamSym] as pino.DestinationStream;
}
