import type { Logger } from './logger.js';

/** One token decision, as the audit trail records it. It never holds a password or a token. */
export interface AuditEvent {
  time: string;
  ip: string | undefined;
  method: string;
  /** `password`, `refresh_token`, or `none` (a GET, or a POST without grant_type). */
  grant_type: string | undefined;
  /** The client asked for a refresh token (offline_token / access_type=offline). */
  offline: boolean | undefined;
  client_id: string | undefined;
  /** The account that was authenticated, or the user name that was tried. */
  account: string | undefined;
  backend: string | undefined;
  service: string | undefined;
  requested: string[];
  granted: string[];
  result: 'issued' | 'unauthorized' | 'locked_out' | 'bad_request' | 'error';
  reason: string;
  duration_ms: number;
}

export interface AuditSink {
  write(event: AuditEvent): void;
}

/** Writes each decision as one structured JSON line through the server's logger. */
export class LogAuditSink implements AuditSink {
  constructor(private readonly logger: Logger) {}
  write(event: AuditEvent): void {
    const level = event.result === 'error' ? 'error' : event.result === 'issued' ? 'info' : 'warn';
    // pino stamps the line with its own time; the event's start time would be a second `time`.
    const { time: _started, ...fields } = event;
    this.logger[level]({ audit: 'token', ...fields }, 'token decision');
  }
}
