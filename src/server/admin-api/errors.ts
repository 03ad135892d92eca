import type { FastifyError } from 'fastify';
import { z } from 'zod';
import { AdminInputError } from '../../admin/service.js';
import { StoreConflictError, StoreNotFoundError, StoreUnavailableError } from '../../store/types.js';

/** The stable codes of admin API error bodies; the status follows from the code. */
export type ApiErrorCode = 'INVALID_REQUEST' | 'UNAUTHORIZED' | 'FORBIDDEN' | 'NOT_FOUND' | 'CONFLICT' | 'UNAVAILABLE' | 'INTERNAL';

const STATUS: Record<ApiErrorCode, number> = {
  INVALID_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  UNAVAILABLE: 503,
  INTERNAL: 500,
};

export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly code: ApiErrorCode,
    /** What the client is told; never a secret. */
    message: string,
    /** Another status than the code's own, e.g. 413 or 415 for an INVALID_REQUEST. */
    readonly status: number = STATUS[code],
    /** RFC 6750 `error` attribute of the Bearer challenge (401, 403). */
    readonly bearerError?: 'invalid_token' | 'insufficient_scope',
  ) {
    super(message);
  }
}

/** Turns whatever a handler, hook or Fastify threw into an ApiError; `internal` marks a bug. */
export function toApiError(err: unknown): { error: ApiError; internal: boolean } {
  if (err instanceof ApiError) return { error: err, internal: false };
  if (err instanceof AdminInputError) return { error: new ApiError('INVALID_REQUEST', err.message), internal: false };
  if (err instanceof StoreNotFoundError) return { error: new ApiError('NOT_FOUND', err.message), internal: false };
  if (err instanceof StoreConflictError) return { error: new ApiError('CONFLICT', err.message), internal: false };
  if (err instanceof StoreUnavailableError) {
    return { error: new ApiError('UNAVAILABLE', 'the store is unavailable; try again shortly'), internal: false };
  }
  const fe = err as Partial<FastifyError>;
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    if (fe.statusCode === 404) return { error: new ApiError('NOT_FOUND', 'not found'), internal: false };
    if (fe.statusCode === 413) return { error: new ApiError('INVALID_REQUEST', 'the request body is too large', 413), internal: false };
    if (fe.statusCode === 415) {
      return { error: new ApiError('INVALID_REQUEST', 'request bodies must be application/json', 415), internal: false };
    }
    return { error: new ApiError('INVALID_REQUEST', fe.message ?? 'bad request'), internal: false };
  }
  return { error: new ApiError('INTERNAL', 'internal error'), internal: true };
}

/** A zod failure as one line: where, and what is wrong there (unknown fields first, they explain the rest). */
export function invalidInput(part: 'body' | 'querystring' | 'params', error: z.ZodError): ApiError {
  const issues = [...error.issues].sort((a, b) => Number(b.code === 'unrecognized_keys') - Number(a.code === 'unrecognized_keys'));
  const described = issues.slice(0, 5).map((issue) => {
    const where = [part === 'querystring' ? 'query' : part, ...issue.path.map(String)].join('.');
    let message = issue.message;
    if (issue.code === 'unrecognized_keys') message = `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
    else if (issue.code === 'invalid_type' && / received undefined$/.test(issue.message)) message = `is required (${issue.expected})`;
    return `${where}: ${message}`;
  });
  return new ApiError('INVALID_REQUEST', described.join('; ') || `${part}: invalid`);
}

/** The body of every error, as on the token endpoint (protocol.md §1.5). */
export const errorSchema = z
  .object({
    errors: z.array(z.object({ code: z.string().describe('a stable code: INVALID_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, CONFLICT, UNAVAILABLE or INTERNAL'), message: z.string() })),
    details: z.string().describe('the message again, for clients that read only this'),
  })
  .describe('An error');

export const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'The request is not valid (INVALID_REQUEST): a bad field, name, rule or scope',
  401: 'No valid admin access token (UNAUTHORIZED): missing or malformed header, unknown, revoked or expired token, or an owner who cannot sign in',
  403: 'The access token does not carry the admin scope (FORBIDDEN)',
  404: 'No such user, group, member, rule or token (NOT_FOUND)',
  409: 'The name is taken (CONFLICT)',
  503: 'The store is unavailable (UNAVAILABLE); retry after Retry-After seconds',
};
