import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { pino } from 'pino';
import { z } from 'zod';
import { LogAuditSink, type AuditEvent, type AuditSink } from './audit.js';
import { createAuditLogger, LOG_WRITE_BYTES, streamOf, type Logger } from './logger.js';

/** The `audit` section: where the audit trail (one JSON line per token decision) goes. */
export const auditSchema = z
  .strictObject({
    stdout: z.boolean().default(true).describe('write the audit lines to stdout, with the server log'),
    file: z
      .string()
      .min(1, 'must not be empty')
      .optional()
      .describe('also (or only, with stdout: false) append them to this file, mode 0640; reopened on SIGUSR2 for log rotation'),
  })
  .refine((section) => section.stdout || section.file !== undefined, {
    path: ['stdout'],
    message: 'is false and no file is set: the audit trail would go nowhere; set audit.file',
  });

export type AuditConfig = z.output<typeof auditSchema>;

/** Where the audit lines go, and the handles the process needs for rotation and shutdown. */
export interface AuditOutput {
  readonly sink: AuditSink;
  /** The file, resolved, when there is one. */
  readonly file: string | undefined;
  /** Reopens the file (after logrotate moved it): lines buffered meanwhile go to the new file. */
  reopen(): void;
  /** Writes out what is buffered and closes the file. */
  close(): Promise<void>;
}

class FanOut implements AuditSink {
  constructor(private readonly sinks: readonly AuditSink[]) {}
  write(event: AuditEvent): void {
    for (const sink of this.sinks) sink.write(event);
  }
}

/**
 * Opens the audit destinations of the config. `logger` is the server log (stdout). The file gets
 * the same JSON lines, written asynchronously through a sonic-boom stream that `reopen()` points
 * at a new file without dropping a line.
 */
export function openAuditOutput(section: AuditConfig, baseDir: string, logger: Logger): AuditOutput {
  const sinks: AuditSink[] = [];
  // The audit trail is not a debug log: it is written whatever level the rest of the log is at,
  // into the server log's own stream (one buffer, so lines never interleave), without redaction.
  if (section.stdout) sinks.push(new LogAuditSink(createAuditLogger(streamOf(logger))));
  if (section.file === undefined) {
    return { sink: sinks[0] as AuditSink, file: undefined, reopen() {}, close: async () => {} };
  }
  const file = isAbsolute(section.file) ? section.file : resolve(baseDir, section.file);
  // Opened once synchronously, so that a missing folder or a permission problem stops the start
  // with the file's name instead of surfacing later as a stream error.
  mkdirSync(dirname(file), { recursive: true });
  closeSync(openSync(file, 'a', 0o640));
  const destination = pino.destination({ dest: file, append: true, mkdir: true, mode: 0o640, sync: false, maxWrite: LOG_WRITE_BYTES });
  destination.on('error', (err: Error) => logger.error({ err, file }, 'cannot write the audit file'));
  sinks.push(new LogAuditSink(createAuditLogger(destination)));
  let closed: Promise<void> | undefined;
  return {
    sink: sinks.length === 1 ? (sinks[0] as AuditSink) : new FanOut(sinks),
    file,
    reopen() {
      if (closed) return;
      destination.reopen();
      logger.info({ file }, 'audit file reopened');
    },
    close() {
      closed ??= new Promise<void>((done) => {
        destination.once('close', () => done());
        destination.end();
      });
      return closed;
    },
  };
}
