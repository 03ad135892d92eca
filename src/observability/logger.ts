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

/**
 * The most one write to the log may carry. sonic-boom (pino's stream) writes one buffer per
 * completed write, at most 16 KiB by default: under full load the event loop turns too slowly for
 * that to keep up with the audit trail (one line per token), and the unwritten lines piled up in
 * memory without bound (hundreds of MB in a 5-minute benchmark, performance.md). With 1 MiB a
 * turn carries everything written since the last one.
 */
export const LOG_WRITE_BYTES = 1024 * 1024;

/** stdout, written asynchronously in writes of up to LOG_WRITE_BYTES. */
function stdoutDestination(): pino.DestinationStream {
  return pino.destination({ dest: process.stdout.fd ?? 1, sync: false, maxWrite: LOG_WRITE_BYTES });
}

export function createLogger(options: LoggerOptions = {}, destination?: pino.DestinationStream): Logger {
  const merged: LoggerOptions = {
    level: 'info',
    base: { name: 'sts-docker-auth' },
    timestamp: pino.stdTimeFunctions.isoTime,
    ...options,
    redact: { paths: REDACTED_PATHS, censor: '***' },
  };
  return pino(merged, destination ?? stdoutDestination());
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
