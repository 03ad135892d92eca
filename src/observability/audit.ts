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

/**
 * Writes each decision as one structured JSON line through `logger`, which should be an audit
 * logger (`createAuditLogger`): one without pino's redaction pass, which cost 9-14% of the CPU of
 * a token request. Redaction is not needed here because the line is built field by field from the
 * event, never spread: no other key (a `password`, an `authorization` header a caller slipped into
 * the object) can reach it, and no field of AuditEvent holds a secret (see token-route.ts: the
 * user name, never the password; scope strings; backend names; the error's public reason).
 */
export class LogAuditSink implements AuditSink {
  constructor(private readonly logger: Logger) {}
  write(event: AuditEvent): void {
    const level = event.result === 'error' ? 'error' : event.result === 'issued' ? 'info' : 'warn';
    // pino stamps the line with its own time; the event's start time would be a second `time`.
    this.logger[level](
      {
        audit: 'token',
        ip: event.ip,
        method: event.method,
        grant_type: event.grant_type,
        offline: event.offline,
        client_id: event.client_id,
        account: event.account,
        backend: event.backend,
        service: event.service,
        requested: event.requested,
        granted: event.granted,
        result: event.result,
        reason: event.reason,
        duration_ms: event.duration_ms,
      },
      'token decision',
    );
  }
}
