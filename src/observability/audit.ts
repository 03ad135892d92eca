import { pino } from 'pino';
import { isoTime } from '../protocol/iso-time.js';
import { streamOf, type Logger } from './logger.js';

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

const LEVEL_VALUES = { info: 30, warn: 40, error: 50 } as const;
type AuditLevel = keyof typeof LEVEL_VALUES;

/** The parts of a pino logger's line that do not change from one line to the next. */
interface LinePieces {
  stream: pino.DestinationStream;
  /** `{"level":30` and the others, as pino writes them. */
  starts: Record<AuditLevel, string>;
  /** pino's timestamp function (`,"time":"…"`); the ISO one is replaced by a cheaper equal one. */
  time: () => string;
  /** The logger's bindings, `,"name":"sts-docker-auth"`. */
  bindings: string;
  /** `,"msg":"token decision"}` and the line end. */
  end: string;
}

const quote = (value: string): string => JSON.stringify(value);

/**
 * Writes each decision as one structured JSON line through `logger`, which should be an audit
 * logger (`createAuditLogger`): one without pino's redaction pass, which cost 9-14% of the CPU of
 * a token request. Redaction is not needed here because the line is built field by field from the
 * event, never spread: no other key (a `password`, an `authorization` header a caller slipped into
 * the object) can reach it, and no field of AuditEvent holds a secret (see token-route.ts: the
 * user name, never the password; scope strings; backend names; the error's public reason).
 *
 * The line is written straight into the logger's stream, in pino's format with the logger's own
 * level prefix, time function, bindings and line end: handing pino an object to walk cost about
 * 2.6 us per line, the string written here about 1 us (performance.md). A stream that needs pino's
 * metadata (pino.multistream routes by level) gets the line through the logger instead.
 */
export class LogAuditSink implements AuditSink {
  private readonly pieces: LinePieces | undefined;

  constructor(private readonly logger: Logger) {
    const stream = streamOf(logger);
    const internals = logger as unknown as Record<symbol, unknown>;
    const needsMetadata = (stream as unknown as Record<symbol, unknown>)[pino.symbols.needsMetadataGsym] === true;
    const levels = internals[pino.symbols.lsCacheSym] as Record<number, string> | undefined;
    const time = internals[pino.symbols.timeSym] as (() => string) | undefined;
    if (needsMetadata || !levels || !time) return;
    this.pieces = {
      stream,
      starts: { info: levels[30] as string, warn: levels[40] as string, error: levels[50] as string },
      time: time === pino.stdTimeFunctions.isoTime ? () => `,"time":"${isoTime(Date.now())}"` : time,
      bindings: internals[pino.symbols.chindingsSym] as string,
      end: `,${quote(internals[pino.symbols.messageKeySym] as string)}:${quote('token decision')}${internals[pino.symbols.endSym] as string}`,
    };
  }

  write(event: AuditEvent): void {
    const level: AuditLevel = event.result === 'error' ? 'error' : event.result === 'issued' ? 'info' : 'warn';
    const { pieces } = this;
    if (!pieces) {
      this.logger[level](fieldsOf(event), 'token decision');
      return;
    }
    if (LEVEL_VALUES[level] < this.logger.levelVal) return;
    // The keys and their order of fieldsOf(); an undefined field is left out, as JSON.stringify does.
    let line = `${pieces.starts[level]}${pieces.time()}${pieces.bindings},"audit":"token"`;
    if (event.ip !== undefined) line += `,"ip":${quote(event.ip)}`;
    line += `,"method":${quote(event.method)}`;
    if (event.grant_type !== undefined) line += `,"grant_type":${quote(event.grant_type)}`;
    if (event.offline !== undefined) line += `,"offline":${event.offline ? 'true' : 'false'}`;
    if (event.client_id !== undefined) line += `,"client_id":${quote(event.client_id)}`;
    if (event.account !== undefined) line += `,"account":${quote(event.account)}`;
    if (event.backend !== undefined) line += `,"backend":${quote(event.backend)}`;
    if (event.service !== undefined) line += `,"service":${quote(event.service)}`;
    line += `,"requested":${JSON.stringify(event.requested)},"granted":${JSON.stringify(event.granted)}`;
    line += `,"result":${quote(event.result)},"reason":${quote(event.reason)},"duration_ms":${JSON.stringify(event.duration_ms)}`;
    pieces.stream.write(line + pieces.end);
  }
}

/** The line's fields, in order; pino stamps the line with its own time (the event's would be a second `time`). */
function fieldsOf(event: AuditEvent): Record<string, unknown> {
  return {
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
  };
}
