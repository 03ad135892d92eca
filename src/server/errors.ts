import type { FastifyError, FastifyReply } from 'fastify';
import { TokenError, TooManyRequestsError, type ErrorCode } from '../protocol/errors.js';
import { errorBody } from '../protocol/response.js';
import { StoreUnavailableError } from '../store/types.js';
import { BackendUnavailableError } from '../authn/errors.js';

const STATUS: Record<ErrorCode, number> = {
  INVALID_REQUEST: 400,
  INVALID_SCOPE: 400,
  UNKNOWN_SERVICE: 400,
  UNSUPPORTED_GRANT_TYPE: 400,
  UNSUPPORTED_MEDIA_TYPE: 400,
  PAYLOAD_TOO_LARGE: 413,
  UNAUTHORIZED: 401,
  TOO_MANY_REQUESTS: 429,
  NOT_FOUND: 404,
  UNAVAILABLE: 503,
  INTERNAL: 500,
};

const OAUTH_ERROR: Partial<Record<ErrorCode, string>> = {
  INVALID_REQUEST: 'invalid_request',
  INVALID_SCOPE: 'invalid_scope',
  UNKNOWN_SERVICE: 'invalid_request',
  UNSUPPORTED_GRANT_TYPE: 'unsupported_grant_type',
  UNSUPPORTED_MEDIA_TYPE: 'invalid_request',
  PAYLOAD_TOO_LARGE: 'invalid_request',
  UNAUTHORIZED: 'invalid_grant',
};

export function statusOf(code: ErrorCode): number {
  return STATUS[code];
}

/** Turns anything thrown on the token road into a TokenError, hiding internals from the client. */
export function toTokenError(err: unknown): TokenError {
  if (err instanceof TokenError) return err;
  const fe = err as Partial<FastifyError>;
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return new TokenError('UNSUPPORTED_MEDIA_TYPE', 'POST bodies must be application/x-www-form-urlencoded');
    }
    if (fe.statusCode === 404) return new TokenError('NOT_FOUND', 'not found');
    if (fe.statusCode === 413) return new TokenError('PAYLOAD_TOO_LARGE', 'request body is too large');
    return new TokenError('INVALID_REQUEST', fe.message ?? 'bad request');
  }
  if (err instanceof StoreUnavailableError) {
    // A store outage is ours, not the client's: 503, never 401, so clients retry instead of
    // telling the user their password is wrong.
    return new TokenError('UNAVAILABLE', 'the credential store is unavailable; try again shortly', err.message);
  }
  if (err instanceof BackendUnavailableError) {
    return new TokenError('UNAVAILABLE', `the ${err.backend} backend is unavailable; try again shortly`, err.message);
  }
  return new TokenError('INTERNAL', 'internal error', err instanceof Error ? err.message : String(err));
}

/** The one place a code becomes a status and a body. 401 carries its own challenge. */
export function sendError(reply: FastifyReply, error: TokenError, realm: string, isPost: boolean): FastifyReply {
  const status = STATUS[error.code];
  if (status === 401) reply.header('www-authenticate', `Basic realm=${JSON.stringify(realm)}, charset="UTF-8"`);
  if (status === 503) reply.header('retry-after', '5');
  if (error instanceof TooManyRequestsError) reply.header('retry-after', String(error.retryAfter));
  const body = errorBody(error.code, error.message, isPost ? OAUTH_ERROR[error.code] : undefined);
  return reply.code(status).header('cache-control', 'no-store').send(body);
}
