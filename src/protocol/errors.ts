/**
 * Typed errors with a stable `code`. Only the HTTP error handler (server/errors.ts) turns a code
 * into a status and a body; everything else throws or returns these.
 */
export type ErrorCode =
  | 'INVALID_REQUEST'
  | 'INVALID_SCOPE'
  | 'UNKNOWN_SERVICE'
  | 'UNSUPPORTED_GRANT_TYPE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNAUTHORIZED'
  | 'TOO_MANY_REQUESTS'
  | 'NOT_FOUND'
  | 'UNAVAILABLE'
  | 'INTERNAL';

export class TokenError extends Error {
  constructor(
    readonly code: ErrorCode,
    /** What the client is told. Never contains a secret. */
    message: string,
    /** What only the log and the audit event see. */
    readonly reason: string = message,
  ) {
    super(message);
    this.name = 'TokenError';
  }
}

/** 429: the lockout refuses this login for now; `retryAfter` (seconds) becomes the `Retry-After` header. */
export class TooManyRequestsError extends TokenError {
  constructor(
    message: string,
    reason: string,
    readonly retryAfter: number,
  ) {
    super('TOO_MANY_REQUESTS', message, reason);
    this.name = 'TooManyRequestsError';
  }
}

export const badRequest = (message: string, reason?: string) => new TokenError('INVALID_REQUEST', message, reason);
