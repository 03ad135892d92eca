import { formatScopes, type ResourceScope } from './scope.js';

export interface TokenResponseBody {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
  scope?: string;
  refresh_token?: string;
}

/**
 * The body every client parses (protocol.md §1.3): the token under both names because clients
 * prefer different ones, an integer `expires_in`, an RFC 3339 `issued_at`, and on POST the
 * granted scopes.
 */
export function tokenResponse(options: {
  token: string;
  expiresIn: number;
  issuedAtMs: number;
  method: 'GET' | 'POST';
  granted: readonly ResourceScope[];
  refreshToken?: string | undefined;
}): TokenResponseBody {
  const body: TokenResponseBody = {
    token: options.token,
    access_token: options.token,
    expires_in: Math.floor(options.expiresIn),
    issued_at: new Date(options.issuedAtMs).toISOString(),
  };
  if (options.method === 'POST') body.scope = formatScopes(options.granted);
  if (options.refreshToken) body.refresh_token = options.refreshToken;
  return body;
}

export interface ErrorBody {
  errors: Array<{ code: string; message: string }>;
  details: string;
  error?: string;
  error_description?: string;
}

/**
 * Error bodies every client tolerates (protocol.md §1.5): the errcode list that containers/image
 * and oras read, the legacy `details` that docker reads first, and the RFC 6749 fields on POST.
 */
export function errorBody(code: string, message: string, oauthError?: string): ErrorBody {
  const body: ErrorBody = { errors: [{ code, message }], details: message };
  if (oauthError) {
    body.error = oauthError;
    body.error_description = message;
  }
  return body;
}
